"""A development probe's page (experiments/probe_page.py): every entry against uniform at its share and against
uniform's frontier, over all shares and over the shares up to a cap."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from amr.analysis import evidence
from experiments import probe_page
from tests.support import summaries
from tests.support.summaries import JITTER, U_AF, U_FINAL

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FRONTIER = {"kind": evidence.FRONTIER, "base": "uniform"}


def _entry():
    """uniform at 4/32 and its frontier at 8/32 and 16/32; `amr+s8` at 8/32 (a fixed share) forgets less than
    uniform@8/32 at its new-task loss; `amr+plateau` floats to 6/32 (the frontier interpolated there)."""
    runs = {
        "uniform": summaries.runs(U_AF, U_FINAL, new=2.00),
        "uniform@8/32": summaries.runs(0.5 * U_AF, U_FINAL - 0.02, new=2.01),
        "uniform@16/32": summaries.runs(0.1 * U_AF, U_FINAL - 0.03, new=2.03),
        "amr+s8": summaries.runs(0.4 * U_AF + JITTER, U_FINAL - 0.025, new=2.01),
        "amr+plateau": summaries.runs(0.9 * U_AF + JITTER, U_FINAL, new=2.005),
    }
    entry = summaries.entry(runs)
    s = entry["strategies"]
    entry["config"] = {"replay": {"fraction": 0.125}}
    for name, share in (("uniform", 0.125), ("uniform@8/32", 0.25), ("uniform@16/32", 0.5), ("amr+s8", 0.25)):
        s[name]["replay_share"] = share
    s["amr+plateau"]["replay_share"] = 0.1875
    s["amr+plateau"]["variant"] = {"kind": evidence.NAMED, "overrides": {"replay.share": "plateau"}}
    for k in (8, 16):
        s[f"uniform@{k}/32"]["variant"] = dict(FRONTIER, replay_fraction=k / 32)
    return entry


def _row(table: str, name: str) -> list[str]:
    (row,) = [line for line in table.splitlines() if line.startswith(f"| `{name}` |")]
    return [c.strip() for c in row.strip("|").split("|")]


def test_entries_are_compared_at_their_share_and_against_both_frontiers():
    entry = _entry()
    assert probe_page.probed(entry) == ["amr+s8", "amr+plateau"]  # uniform's own points are the references
    table = probe_page.table(entry, cap=0.25)
    s8 = _row(table, "amr+s8")
    d = evidence.paired(entry["strategies"]["amr+s8"], entry["strategies"]["uniform@8/32"])
    assert s8[1] == "8.00/32" and s8[3] == "`uniform@8/32`"  # a fixed larger share: the frontier point at it
    assert s8[5] == f"**{d['mean']:+.4f} ± {d['ci95']:.4f}**" and s8[6] == "+0.00%"
    assert s8[8].startswith("yes (") and s8[9].startswith("yes (")  # below the 8/32 point, on either frontier
    plateau = _row(table, "amr+plateau")
    assert plateau[3].startswith("uniform's frontier at 6.00/32")
    # negative control: with 16/32 on the frontier, a point at 8/32's forgetting but 16/32's new-task loss is above
    entry["strategies"]["amr+s8"] = summaries.entry(
        {"uniform": summaries.runs(U_AF, U_FINAL), "x": summaries.runs(0.45 * U_AF, U_FINAL, new=2.03)}
    )["strategies"]["x"]
    entry["strategies"]["amr+s8"]["replay_share"] = 0.25
    row = _row(probe_page.table(entry, cap=0.25), "amr+s8")
    assert row[8].startswith("**no** (") and "uniform@16/32" in row[8]
    assert row[9].startswith("yes (-") and "at `uniform@8/32`" in row[9]  # the evidence sweep's frontier: below it
    assert np.isclose(float(probe_page.capped(entry, 0.25)["strategies"]["uniform@8/32"]["replay_share"]), 0.25)
    assert "uniform@16/32" not in probe_page.capped(entry, 0.25)["strategies"]


def test_cli_writes_the_page_and_names_a_bad_cap(tmp_path):
    results = tmp_path / "probe.json"
    results.write_text(json.dumps({"benchmarks": {"styles": _entry()}}))
    out = tmp_path / "probe.md"
    cmd = [sys.executable, "-m", "experiments.probe_page", f"--results={results}", f"--out={out}"]
    done = subprocess.run([*cmd, "--frontier_cap=8"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert "## styles" in text and "shares ≤ 8/32" in text and "--frontier_cap=8`" in text
    assert "](probe_styles_pareto.png)" in text and (tmp_path / "probe_styles_pareto.png").stat().st_size > 0
    out.unlink()
    bad = subprocess.run([*cmd, "--frontier_cap=40"], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode != 0 and "--frontier_cap" in bad.stderr and not out.exists()


@pytest.mark.parametrize("cap", [None, 0.25])
def test_page_without_a_cap_has_one_frontier_column(cap):
    page = probe_page.page({"benchmarks": {"styles": _entry()}}, "probe.json", cap)
    header = [line for line in page.splitlines() if line.startswith("| entry |")][0]
    assert header.count("below") == (1 if cap is None else 2)


def test_no_ratio_against_a_reference_that_forgets_less_than_nothing():
    entry = _entry()
    s = entry["strategies"]
    runs = {"uniform": summaries.runs(U_AF, U_FINAL), "u8": summaries.runs(-0.5 * U_AF, U_FINAL, new=2.01)}
    s["uniform@8/32"] = dict(
        summaries.entry(runs)["strategies"]["u8"], replay_share=0.25, variant=s["uniform@8/32"]["variant"]
    )
    row = _row(probe_page.table(entry, cap=None), "amr+s8")
    assert row[3] == "`uniform@8/32`" and row[4] == "—"  # 0.4x of uniform's at a reference of -0.5x: no ratio
    assert row[5].startswith("**+")  # the paired Δ still says it forgets more than that reference
    # negative control: a reference that forgets a little still gives a ratio
    s["uniform@8/32"] = dict(s["uniform@8/32"], **{"avg_forgetting_per_seed": [0.01] * 10, "avg_forgetting_mean": 0.01})
    assert _row(probe_page.table(entry, cap=None), "amr+s8")[4] != "—"
