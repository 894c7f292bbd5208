"""docs/results/ABLATIONS.md (experiments/ablation_page.py): issue #12's ideas one at a time, each against uniform
at the same replay share."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from amr.analysis import evidence
from amr.runner import named_variants
from experiments import ablation_page
from tests.support import summaries
from tests.support.summaries import JITTER, U_AF, U_FINAL

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REC, TWIN = named_variants.RECOMMENDED_AMR, named_variants.RECOMMENDED_TWIN
NO_FRESH = "amr+tail+steady+sources+anchored"  # the recommended AMR without `fresh`


def _results():
    runs = {
        "uniform": summaries.runs(U_AF, U_FINAL),
        "amr": summaries.runs(U_AF + JITTER, U_FINAL + JITTER),
        "amr+steady": summaries.runs(0.8 * U_AF + JITTER, U_FINAL - 0.01 + JITTER, new=2.02),
        "amr+benefit": summaries.runs(U_AF - JITTER, U_FINAL),  # within noise of uniform
        "amr+controller": summaries.runs(1.2 * U_AF, U_FINAL),
        "amr+tail": summaries.runs(0.6 * U_AF + JITTER, U_FINAL - JITTER),
        TWIN: summaries.runs(0.7 * U_AF, U_FINAL),
        REC: summaries.runs(0.5 * U_AF + JITTER, U_FINAL - 0.02),
        NO_FRESH: summaries.runs(0.55 * U_AF + JITTER, U_FINAL - 0.02),
    }
    entry = summaries.entry(runs)
    for e in entry["strategies"].values():
        e["replay_share"] = 0.0625
    entry["strategies"]["amr+controller"]["replay_share"] = 0.09  # another share, and no frontier to match it
    return {"benchmarks": {"text": entry}}


def _row(table: str, name: str) -> list[str]:
    (row,) = [line for line in table.splitlines() if line.startswith(f"| `{name}` |")]
    return [c.strip() for c in row.strip("|").split("|")]


def test_each_added_idea_is_compared_with_uniform_at_its_share():
    entry = _results()["benchmarks"]["text"]
    s = entry["strategies"]
    assert ablation_page.added(entry) == ["amr+steady", "amr+benefit", "amr+controller", "amr+tail"]
    table = ablation_page.added_table(entry)
    steady = _row(table, "amr+steady")
    d = evidence.paired(s["amr+steady"], s["uniform"])
    assert steady[3] == "`uniform`" and steady[4] == f"{np.mean(0.8 * U_AF + JITTER) / np.mean(U_AF):.3f}"
    assert steady[5] == f"**{d['mean']:+.4f} ± {d['ci95']:.4f}**" and steady[6] == "+1.00%"
    # the schedule's entry is compared with its uniform twin (the same schedule), not with plain uniform
    tail = _row(table, "amr+tail")
    twin_d = evidence.paired(s["amr+tail"], s[TWIN])
    assert tail[3] == f"`{TWIN}`" and tail[5] == f"**{twin_d['mean']:+.4f} ± {twin_d['ci95']:.4f}**"
    # negative control: a difference within noise is not bold
    benefit = _row(table, "amr+benefit")
    assert not benefit[5].startswith("**") and not evidence.paired(s["amr+benefit"], s["uniform"])["excludes_zero"]
    # another realised share and no frontier: no uniform to compare with, so no verdict
    controller = _row(table, "amr+controller")
    assert controller[2] == "2.88/32" and controller[3:6] == ["none at this share", "—", "—"]


def test_the_controller_is_matched_on_the_frontier_when_one_brackets_its_share():
    results = _results()
    entry = results["benchmarks"]["text"]
    s = entry["strategies"]
    s["amr+controller"]["variant"] = {"kind": evidence.NAMED, "overrides": {"replay.share": "controller"}}
    entry["config"] = {"replay": {"fraction": 0.0625}}
    frontier = {"kind": evidence.FRONTIER, "base": "uniform", "replay_fraction": 0.125}
    s["uniform@4/32"] = dict(s["uniform"], replay_share=0.125, variant=frontier)
    ref = ablation_page.reference(entry, "amr+controller")
    assert ref["label"].startswith("uniform's frontier at 2.88/32") and ref["final_loss"] is None
    assert ref["forgetting"]["mean"] == pytest.approx(np.mean(0.2 * U_AF))  # both points forget like uniform here
    assert "--frontier=4 " in ablation_page.page(results, "ablations.json")


def test_an_entry_that_trimmed_new_rows_is_compared_with_uniform_at_its_split():
    results = _results()
    entry = results["benchmarks"]["text"]
    s = entry["strategies"]
    control = "uniform@split:amr+controller"
    s[control] = dict(s["amr+tail"], replay_share=0.09, variant={"kind": evidence.SAME_SPLIT, "of": "amr+controller"})
    ref = ablation_page.reference(entry, "amr+controller")
    d = evidence.paired(s["amr+controller"], s[control])
    assert ref["label"] == f"`{control}`" and ref["forgetting"] == d and ref["final_loss"] is not None
    assert ref["ratio"] == pytest.approx(2.0)  # 1.2x uniform's forgetting against the control's 0.6x
    page = ablation_page.page(results, "ablations.json")
    assert "--same_split=true " in page and f"`{control}`" not in ablation_page.command(results["benchmarks"], "x")


def test_the_verdicts_and_the_removed_ideas():
    results = _results()
    entry = results["benchmarks"]["text"]
    verdicts = ablation_page.verdicts(results["benchmarks"])
    assert _row(verdicts, "amr+steady")[1] == "text"  # significantly less
    assert _row(verdicts, "amr+controller")[4] == "text"  # no uniform at its share
    assert _row(verdicts, "amr+benefit")[3] == "text"  # within noise
    assert ablation_page.removed(entry) == {NO_FRESH: "fresh"}
    row = _row(ablation_page.removed_table(entry), NO_FRESH)
    d = evidence.paired(entry["strategies"][NO_FRESH], entry["strategies"][REC])
    assert row[1].startswith("`fresh`") and row[2] == f"**{d['mean']:+.4f} ± {d['ci95']:.4f}**" and d["mean"] > 0
    assert row[4] == f"`{TWIN}`"


def test_the_figure_has_each_entry_against_uniform_at_its_share():
    results = _results()
    rows, panels = ablation_page.forest(results["benchmarks"])
    names = ["amr+steady", "amr+benefit", "amr+controller", "amr+tail", REC, NO_FRESH]
    assert rows == names[:4] + ["recommended", "recommended − fresh"]
    entry = results["benchmarks"]["text"]
    for name, cell in zip(names, panels["text"]):
        ref = ablation_page.reference(entry, name)
        if ref is None:  # negative control: amr+controller has no uniform at its share, so no point
            assert name == "amr+controller" and cell is None
        else:
            assert cell == (ref["forgetting"]["mean"], ref["forgetting"]["ci95"])
    assert ablation_page.forest({"text": {"strategies": {"uniform": {}, "amr": {}}}}) == ([], {"text": []})


def test_a_sweep_without_variants_renders_no_tables():
    results = _results()
    s = results["benchmarks"]["text"]["strategies"]
    for name in list(s):
        if name not in ("uniform", "amr"):
            del s[name]
    page = ablation_page.page(results, "ablations.json")
    assert "## text" in page and "| entry |" not in page and "Code: not recorded for these runs." in page
    assert "--strategies=uniform,amr --seeds=0,1,2,3,4,5,6,7,8,9 --frontier= " in page


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "experiments.ablation_page", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_cli_writes_the_page_and_names_a_missing_results_file(tmp_path):
    path, out = tmp_path / "ablations.json", tmp_path / "ABLATIONS.md"
    path.write_text(json.dumps(_results()))
    done = _cli(f"--results={path}", f"--out={out}")
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert text.startswith("# Issue #12's ideas one at a time") and "### text: One idea removed" in text
    assert f"]({ablation_page.FIGURE})" in text and (tmp_path / ablation_page.FIGURE).stat().st_size > 0
    missing = _cli(f"--results={tmp_path / 'absent.json'}", f"--out={tmp_path / 'other.md'}")
    assert missing.returncode != 0 and "absent.json" in missing.stderr and not (tmp_path / "other.md").exists()


def test_the_committed_page_is_what_the_committed_results_give():
    """docs/results/ABLATIONS.md is regenerated, never edited: the page from docs/results/ablations.json equals it,
    and a changed run (negative control) changes the page."""
    source = "docs/results/ablations.json"
    with open(os.path.join(ROOT, source), encoding="utf-8") as f:
        results = json.load(f)
    with open(os.path.join(ROOT, "docs", "results", "ABLATIONS.md"), encoding="utf-8") as f:
        committed = f.read()
    assert ablation_page.page(results, source, ablation_page.FIGURE) == committed
    results["benchmarks"]["styles"]["strategies"]["amr+steady"]["avg_forgetting_per_seed"][0] += 0.05
    assert ablation_page.page(results, source, ablation_page.FIGURE) != committed
