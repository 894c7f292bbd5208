"""docs/results/POWER.md (experiments/power_page.py): the AMR entries at the seeds the power analysis asks for."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from amr.analysis import evidence, stats
from amr.runner import named_variants
from experiments import power_page
from tests.support import summaries
from tests.support.summaries import JITTER, U_AF, U_FINAL

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REC, TWIN = named_variants.RECOMMENDED_AMR, named_variants.RECOMMENDED_TWIN


def _results(rec_ratio=0.6, amr_shift=0.0):
    runs = {
        "uniform": summaries.runs(U_AF, U_FINAL),
        "amr": summaries.runs(U_AF + amr_shift + JITTER, U_FINAL + JITTER),
        REC: summaries.runs(rec_ratio * U_AF + JITTER, U_FINAL - 0.01 + JITTER),
        TWIN: summaries.runs(0.7 * U_AF - JITTER, U_FINAL - JITTER),
    }
    return {"benchmarks": {"text": summaries.entry(runs)}}


def test_the_paired_rows_are_the_seed_paired_differences():
    results = _results()
    s = results["benchmarks"]["text"]["strategies"]
    table = power_page.paired_rows(results["benchmarks"])
    rec_u = evidence.paired(s[REC], s["uniform"])
    assert rec_u["mean"] == pytest.approx(np.mean(-0.4 * U_AF + JITTER))
    (row,) = [line for line in table.splitlines() if line.startswith("| text |")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:2] == ["text", "10"]
    assert cells[4] == f"**{rec_u['mean']:+.4f} ± {rec_u['ci95']:.4f}**"  # REC − uniform, significant
    # negative control: amr at uniform's forgetting plus a symmetric jitter is not significant, so not bold
    amr_u = evidence.paired(s["amr"], s["uniform"])
    assert not amr_u["excludes_zero"] and cells[2] == f"{amr_u['mean']:+.4f} ± {amr_u['ci95']:.4f}"


def _with_frontier(results):
    """`results` with uniform at 8/32 (new-task loss 2.02, 0.3x uniform's forgetting) beside uniform at 2/32."""
    entry = results["benchmarks"]["text"]
    entry["config"] = {"replay": {"fraction": 2 / 32}}
    wide = stats.summarize(summaries.runs(0.3 * U_AF, U_FINAL, new=2.02))
    wide["variant"] = {"kind": "frontier", "base": "uniform", "replay_fraction": 0.25}
    entry["strategies"]["uniform@8/32"] = wide
    return results


def test_the_frontier_section_places_both_entries_at_the_extended_seeds():
    assert power_page.frontier_rows(_results()["benchmarks"]) is None  # no frontier ran: no section
    assert "## Against uniform's frontier" not in power_page.page(_results(), "power.json")
    results = _with_frontier(_results())
    table = power_page.frontier_rows(results["benchmarks"])
    (row,) = [line for line in table.splitlines() if line.startswith("| text |")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "10"
    # both lie at uniform's new-task loss with less forgetting than uniform in every seed: below in every resample
    assert cells[2].startswith("yes (") and cells[3].endswith("; below in 100% of seed resamples)")
    # negative control: a recommended AMR forgetting more than uniform at its new-task loss is above in every one
    worse = _with_frontier(_results(rec_ratio=1.4))
    (row,) = [line for line in power_page.frontier_rows(worse["benchmarks"]).splitlines() if "| text |" in line]
    assert row.endswith("; below in 0% of seed resamples) |") and "| **no** (+" in row
    page = power_page.page(results, "power.json")
    assert "## Against uniform's frontier at these seeds" in page and " --frontier=8 " in page


def test_a_missing_entry_is_a_dash_and_the_page_renders(tmp_path):
    results = _results()
    del results["benchmarks"]["text"]["strategies"][TWIN]
    row = power_page.paired_rows(results["benchmarks"]).splitlines()[-1]
    assert row.endswith("| — | — |")  # REC − TWIN: the twin did not run
    page = power_page.page(results, "power.json")
    assert "| text | `amr` |" in page and f"| text | `{REC}` |" in page
    assert "Code: not recorded for these runs." in page
    assert f"--benchmarks=text --strategies=uniform,amr,{REC} --seeds=0,1,2,3,4,5,6,7,8,9 " in page


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "experiments.power_page", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_the_cli_writes_the_page_and_names_a_missing_results_file(tmp_path):
    path, out = tmp_path / "power.json", tmp_path / "POWER.md"
    path.write_text(json.dumps(_results()))
    done = _cli(f"--results={path}", f"--out={out}")
    assert done.returncode == 0, done.stderr
    assert out.read_text().startswith("# The AMR entries at the seeds the power analysis asks for")
    missing = _cli(f"--results={tmp_path / 'absent.json'}", f"--out={tmp_path / 'other.md'}")
    assert missing.returncode != 0 and "absent.json" in missing.stderr and not (tmp_path / "other.md").exists()
