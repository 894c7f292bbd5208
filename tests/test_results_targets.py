"""docs/RESULTS.md's Targets section: issue #12's targets per (benchmark, AMR entry), what the selection adds."""

import copy
import json
import os

import hypothesis
import numpy as np
import pytest
from hypothesis import strategies as st

from amr.analysis import evidence, stats
from amr.runner import named_variants, sweep, variants
from experiments import results_page, update_readme
from tests.support import summaries
from tests.support.summaries import JITTER, U_AF, U_FINAL

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REC, TWIN = named_variants.RECOMMENDED_AMR, named_variants.RECOMMENDED_TWIN
# uniform's per-seed average forgetting and final average loss; a seed-dependent jitter so intervals are not 0
DEFAULT_SHARE = 2 / 32  # uniform's default share; its new-task loss is 2.0, as every entry's unless said otherwise
# uniform's other shares: {name: (share, new-task loss, average forgetting as a multiple of uniform's)}; the
# recommended AMR (new-task loss 2.0, less forgetting than uniform) lies below this frontier
FRONTIER = {"uniform@1/32": (1 / 32, 1.99, 1.3), "uniform@8/32": (8 / 32, 2.02, 0.3)}
MIR_SHIFT = 0.03  # mir's final loss over uniform's: above the recommended AMR's in every case below


_runs = summaries.runs


_entry = summaries.entry


def _bench(ratio=0.85, final_shift=-0.01, twin_ratio=0.95, rec_new=2.0, frontier=FRONTIER, mir_shift=MIR_SHIFT):
    """uniform, none, amr (no gain), the recommended AMR at `ratio` x uniform's forgetting and new-task loss
    `rec_new` with its final loss shifted by `final_shift`, its twin at `twin_ratio`, uniform's `frontier` entries
    and mir (final loss shifted by `mir_shift` from uniform's; not run when None)."""
    runs = {
        "uniform": _runs(U_AF, U_FINAL),
        "none": _runs(2 * U_AF, U_FINAL + 0.1),
        "amr": _runs(U_AF + JITTER, U_FINAL + JITTER),
        REC: _runs(ratio * U_AF + JITTER, U_FINAL + final_shift + JITTER, new=rec_new),
        TWIN: _runs(twin_ratio * U_AF - JITTER, U_FINAL - JITTER),
    }
    runs.update({name: _runs(k * U_AF, U_FINAL, new=new) for name, (_, new, k) in frontier.items()})
    if mir_shift is not None:
        runs["mir"] = _runs(1.1 * U_AF, U_FINAL + mir_shift)
    entry = _entry(runs)
    entry["config"] = {"replay": {"fraction": DEFAULT_SHARE}}
    for name, (share, _, _) in frontier.items():
        entry["strategies"][name]["variant"] = {"kind": "frontier", "base": "uniform", "replay_fraction": share}
    return entry


def _cells(lines, bench, entry):
    """The cells after benchmark and entry of a Targets table row, by column name."""
    prefix = f"| {bench} | {results_page._label(entry)} | "
    (row,) = [x for x in lines if x.startswith(prefix)]
    return dict(zip(results_page.TARGET_COLUMNS, [c.strip() for c in row[len(prefix) : -2].split(" | ")]))


def test_the_recommended_default_and_its_twin_are_named_variants():
    assert REC == "amr+tail+fresh+steady+sources+anchored" and TWIN == "uniform+tail"
    a, b = variants.parse_named(REC, sweep.STRATEGIES), variants.parse_named(TWIN, sweep.STRATEGIES)
    assert (a.strategy, b.strategy) == ("amr", "uniform")
    # only the selection differs: the overrides the twin lacks configure the bandit, its arms and its reward's
    # reference, which uniform never consults
    selection = {"bandit.aggregate", "bandit.normalize", "bandit.new_arms", "replay.arm_labels"}
    selection |= {"replay.clusters_per_task", "replay.reference"}
    assert {k: v for k, v in a.overrides.items() if k not in selection} == b.overrides
    assert set(a.overrides) - set(b.overrides) == selection
    assert named_variants.twin("amr+back") == "uniform+back"
    with pytest.raises(ValueError, match="not a named variant"):
        named_variants.twin("amr")


def test_target_met_on_one_benchmark_and_missed_on_subpop_by_its_stricter_ratio():
    """The same runs (0.85x uniform's forgetting) meet the 0.9x target on text and miss the 0.8x one on subpop."""
    benchmarks = {"text": _bench(), "subpop": _bench()}
    text, subpop = (
        results_page.targets("text", benchmarks["text"], REC),
        results_page.targets("subpop", benchmarks["subpop"], REC),
    )
    assert text["ratio"] == pytest.approx(0.85, abs=0.01) and text["ratio_target"] == 0.9
    assert text["met"] and text["missed"] == [] and text["never_worse"] and text["final_lower"]
    assert subpop["ratio_target"] == 0.8 and not subpop["met"] and subpop["missed"] == ["forgetting"]
    assert subpop["never_worse"]  # missing the ratio is not being worse than uniform
    lines = results_page.targets_section(benchmarks)
    assert _cells(lines, "text", REC)["target met"] == "yes"
    assert _cells(lines, "text", REC)["ratio target"] == "≤ 0.9"
    assert _cells(lines, "subpop", REC)["target met"] == "**no**"
    assert _cells(lines, "subpop", REC)["ratio target"] == "≤ 0.8"
    assert _cells(lines, "text", "amr")["target met"] == "**no**"  # amr: no gain over uniform
    missed = [x for x in lines if x.startswith(f"- `{REC}` (recommended):")]
    assert missed == [f"- `{REC}` (recommended): **misses the targets on subpop (forgetting)**; meets them on text."]


def test_flipping_the_final_loss_differences_fails_the_target():
    """Negative control: the same forgetting gain with a final loss above uniform's by as much misses the target."""
    good, bad = _bench(final_shift=-0.01), _bench(final_shift=+0.01)
    assert results_page.targets("text", good, REC)["met"]
    r = results_page.targets("text", bad, REC)
    assert not r["met"] and r["missed"] == ["final loss"] and r["final"]["mean"] == pytest.approx(0.01)
    cells = _cells(results_page.targets_section({"text": bad}), "text", REC)
    assert cells["final loss lower"] == "**no**" and cells["target met"] == "**no**"
    assert cells["final avg loss paired Δ ± CI95"].startswith("**+0.0100 ± ")  # bold: the interval excludes 0


def test_significantly_more_forgetting_than_uniform_is_named():
    worse = _bench(ratio=1.2)
    r = results_page.targets("digits", worse, REC)
    assert not r["never_worse"] and "forgetting" in r["missed"]
    lines = results_page.targets_section({"digits": worse})
    assert _cells(lines, "digits", REC)["never worse"] == "**no**"
    assert any(
        "**forgets significantly more than uniform on digits**" in x for x in lines if x.startswith(f"- `{REC}`")
    )


def test_what_the_selection_adds_is_the_seed_paired_difference_with_the_twin():
    entry = _bench()
    d = results_page.selection_adds(entry)
    a, b = 0.85 * U_AF + JITTER, 0.95 * U_AF - JITTER
    assert d["forgetting"]["mean"] == pytest.approx(np.mean(a - b))
    assert d["forgetting"]["ci95"] == pytest.approx(stats.ci95(a - b))
    assert d["final_loss"]["mean"] == pytest.approx(np.mean(-0.01 + 2 * JITTER))
    assert d["schedule_alone"]["mean"] == pytest.approx(np.mean(-0.05 * U_AF - JITTER))
    table = results_page.selection_table({"text": entry, "styles": {"strategies": {"uniform": {}}}})
    assert f"| text | {results_page._delta(d['forgetting'])} | {results_page._delta(d['final_loss'])} | 10 |" in table
    assert "| styles | — | — | — | — | — | — | — |" in table
    # the twin and the recommended AMR at uniform's new-task loss; negative control: 2.5% above it is bold
    assert f"| {results_page._delta(d['schedule_alone'])} | +0.00% → +0.00% |" in table
    late = results_page.selection_table({"text": _bench(rec_new=2.05)})
    assert "| +0.00% → **+2.50%** |" in late
    # both at uniform's new-task loss, where the frontier's least forgetting is uniform's own
    m = entry["strategies"]["uniform"]["avg_forgetting_mean"]
    twin, rec = d["twin_frontier"], d["frontier"]
    assert twin["below"] and twin["margin"] == pytest.approx(entry["strategies"][TWIN]["avg_forgetting_mean"] - m)
    assert rec["below"] and rec["margin"] == pytest.approx(entry["strategies"][REC]["avg_forgetting_mean"] - m)
    (text_row,) = [line for line in table.splitlines() if line.startswith("| text |")]
    assert text_row.endswith(
        f"| yes ({twin['margin']:+.4f}, at `uniform`; below in 100% of seed resamples) "
        f"| yes ({rec['margin']:+.4f}, at `uniform`; below in 100% of seed resamples) |"
    )
    # negative control: a twin that forgets more than uniform at the same new-task loss is above the frontier
    above = results_page.selection_adds(_bench(twin_ratio=1.1))["twin_frontier"]
    assert not above["below"] and above["margin"] > 0
    assert "| **no** (+" in results_page.selection_table({"text": _bench(twin_ratio=1.1)})
    assert "at `uniform`; below in 0% of seed resamples) |" in results_page.selection_table(
        {"text": _bench(twin_ratio=1.1)}
    )


def test_results_without_the_recommended_entry_or_per_seed_final_loss_still_render(tmp_path):
    old = _bench()
    for name in (REC, TWIN):
        del old["strategies"][name]
    stripped = copy.deepcopy(_bench())
    for e in stripped["strategies"].values():
        del e["final_avg_loss_per_seed"]
    lines = results_page.targets_section({"text": old, "digits": stripped})
    assert set(_cells(lines, "text", REC).values()) == {"—"}  # recorded before the recommended entry existed
    assert "| text | — | — | — | — |" in "\n".join(lines)
    cells = _cells(lines, "digits", REC)
    assert cells["final avg loss paired Δ ± CI95"] == "n/a" and cells["target met"] == "**no**"
    assert results_page.targets("digits", stripped, REC)["missed"] == [
        "final loss (not recorded)",
        "final loss vs MIR (not recorded)",  # mir ran, but its per-seed final losses were not recorded
    ]
    text = results_page.page({"benchmarks": {"text": old, "digits": stripped}}, None, str(tmp_path))
    assert "## Targets" in text and "### What the selection adds" in text


def test_the_committed_results_render():
    with open(os.path.join(ROOT, "docs", "results.json"), encoding="utf-8") as f:
        results = json.load(f)
    lines = results_page.targets_section(results["benchmarks"])
    for bench, entry in results["benchmarks"].items():
        for name in results_page.AMR_ENTRIES:
            cells = _cells(lines, bench, name)
            assert (cells["target met"] == "—") == (name not in entry["strategies"])


# uniform's frontier of a benchmark with new-task loss not monotone in the share (as on styles, where it is 0.5979,
# 0.5985, 0.5972, 0.5979 by share): (label, new-task loss, average forgetting)
STYLES_LIKE = [
    ("uniform@1/32", 0.5979, 0.091),
    ("uniform@2/32", 0.5985, 0.085),
    ("uniform", 0.5972, 0.072),
    ("uniform@8/32", 0.5979, 0.011),
]


def test_the_margin_to_a_non_monotone_frontier_by_hand():
    """At new-task loss 0.5975 the segment uniform@1/32-uniform@2/32 lies right of it (infeasible), uniform@2/32-
    uniform reaches it from t = 10/13 on (least forgetting 0.072, at uniform) and uniform-uniform@8/32 up to
    t = 3/7 (forgetting 0.072 - 0.061 * 3/7 = 0.045857): the least is on the last one."""
    reached = 0.072 + (3 / 7) * (0.011 - 0.072)
    r = evidence.frontier_margin(STYLES_LIKE, 0.5975, 0.05)
    assert r["reached"] == pytest.approx(reached) and r["margin"] == pytest.approx(0.05 - reached)  # +0.0041
    assert not r["below"] and r["between"] == ["uniform", "uniform@8/32"]
    assert r["at"]["new_task_loss"] == pytest.approx(0.5975)
    below = evidence.frontier_margin(STYLES_LIKE, 0.5975, 0.04)
    assert below["below"] and below["margin"] == pytest.approx(0.04 - reached)  # -0.0059
    # at 0.5980 every segment is at least partly feasible and the least is uniform@8/32 itself
    at_vertex = evidence.frontier_margin(STYLES_LIKE, 0.5980, 0.02)
    assert at_vertex["reached"] == 0.011 and at_vertex["between"] == ["uniform@8/32"]
    assert at_vertex["margin"] == pytest.approx(0.009) and not at_vertex["below"]
    # a frontier point the frontier itself dominates (uniform@2/32: uniform has less of both) is not below when
    # shifted down a little: "below" is against the whole curve, not against its own point
    assert not evidence.frontier_margin(STYLES_LIKE, 0.5985, 0.080)["below"]


def test_a_dominated_entry_is_above_a_non_monotone_frontier_and_misses_the_target():
    """Negative control through `targets`: the recommended AMR (new-task loss 2.0, 0.85x uniform's forgetting m)
    against shares with new-task loss 1.995, 2.0, 1.99, 2.01 and forgetting 1.3m, m, 0.9m, 0.3m. The segment
    uniform@4/32-uniform@8/32 reaches new-task loss 2.0 at t = 1/2, forgetting 0.6m < 0.85m: dominated, margin
    +0.25m. (Sorted by new-task loss the curve would read m at 2.0, and AMR would wrongly lie below.)"""
    frontier = {
        "uniform@1/32": (1 / 32, 1.995, 1.3),
        "uniform@4/32": (4 / 32, 1.99, 0.9),
        "uniform@8/32": (8 / 32, 2.01, 0.3),
    }
    bench = _bench(frontier=frontier)
    m = bench["strategies"]["uniform"]["avg_forgetting_mean"]
    r = results_page.targets("text", bench, REC)
    f = r["frontier"]
    assert f["frontier"] == ["uniform@1/32", "uniform", "uniform@4/32", "uniform@8/32"]  # share order
    assert f["reached"] == pytest.approx(0.6 * m) and f["margin"] == pytest.approx(0.25 * m)
    assert not f["below"] and f["between"] == ["uniform@4/32", "uniform@8/32"]
    assert r["below_frontier"] is False and not r["met"] and r["missed"] == ["below frontier"]
    cells = _cells(results_page.targets_section({"text": bench}), "text", REC)
    assert cells["below uniform frontier (margin)"] == (
        f"**no** (+{0.25 * m:.4f}, between `uniform@4/32` and `uniform@8/32`; below in 0% of seed resamples)"
    )
    assert cells["target met"] == "**no**"


def test_an_entry_below_the_frontier_meets_it_with_its_margin():
    bench = _bench()
    m = bench["strategies"]["uniform"]["avg_forgetting_mean"]
    r = results_page.targets("text", bench, REC)
    f = r["frontier"]  # at new-task loss 2.0 the least forgetting is uniform's own (m): share 1/32 forgets more
    assert f["below"] and f["margin"] == pytest.approx(-0.15 * m) and f["between"] == ["uniform"] and r["met"]
    cell = _cells(results_page.targets_section({"text": bench}), "text", REC)["below uniform frontier (margin)"]
    assert cell == f"yes ({-0.15 * m:+.4f}, at `uniform`; below in 100% of seed resamples)"
    bench["strategies"]["amr"]["avg_forgetting_mean"] = m  # amr's point is then uniform's: on the frontier, not below
    amr = results_page.targets("text", bench, "amr")
    assert amr["frontier"]["margin"] == 0 and not amr["frontier"]["below"] and "below frontier" in amr["missed"]


def test_an_entry_left_of_the_whole_frontier_is_below_without_a_margin():
    bench = _bench(rec_new=1.98)  # the frontier's least new-task loss is 1.99
    r = results_page.targets("text", bench, REC)
    f = r["frontier"]
    assert f["below"] and f["margin"] is None and "left of the whole frontier" in f["note"]
    assert r["met"] and r["missed"] == []
    cells = _cells(results_page.targets_section({"text": bench}), "text", REC)
    assert cells["below uniform frontier (margin)"] == "yes (left of the frontier; below in 100% of seed resamples)"


@pytest.mark.parametrize("frontier", [{}, None], ids=["uniform only", "no new-task loss"])
def test_a_frontier_of_fewer_than_two_points_or_without_the_new_task_loss_is_na_and_not_met(frontier):
    bench = _bench(frontier=FRONTIER if frontier is None else frontier)
    if frontier is None:  # a frontier point recorded before the new-task loss over tasks 2..T existed
        del bench["strategies"]["uniform@8/32"][f"{stats.NEW_TASK_LOSS}_mean"]
    r = results_page.targets("text", bench, REC)
    assert r["frontier"] is None and r["below_frontier"] is None
    assert r["met"] is False and r["missed"] == ["below frontier (not recorded)"]
    lines = results_page.targets_section({"text": bench})
    cells = _cells(lines, "text", REC)
    assert cells["below uniform frontier (margin)"] == "n/a" and cells["target met"] == "**no**"
    assert f"- `{REC}` (recommended): **misses the targets on text (below frontier (not recorded))**." in lines


def test_final_loss_at_most_mirs():
    """Below MIR's (Δ -0.04), equal to it (Δ 0: "at most"), above it (negative control, Δ +0.01) and not run."""
    below = results_page.targets("text", _bench(), REC)
    assert below["vs_mir"]["mean"] == pytest.approx(-0.04) and below["mir_ok"] and below["met"]
    cells = _cells(results_page.targets_section({"text": _bench()}), "text", REC)
    assert cells["final avg loss Δ vs `mir` ± CI95"].startswith("**-0.0400 ± ")
    assert cells["final loss ≤ MIR's"] == "yes"

    equal = _bench()
    mir = equal["strategies"]["mir"]
    mir["final_avg_loss_per_seed"] = list(equal["strategies"][REC]["final_avg_loss_per_seed"])
    r = results_page.targets("text", equal, REC)
    assert r["vs_mir"]["mean"] == 0 and r["mir_ok"] and r["met"]

    above = _bench(mir_shift=-0.02)  # mir's final loss 0.02 under uniform's, AMR's 0.01 under: AMR is 0.01 above
    r = results_page.targets("text", above, REC)
    assert r["vs_mir"]["mean"] == pytest.approx(0.01) and r["mir_ok"] is False
    assert not r["met"] and r["missed"] == ["final loss vs MIR"]
    cells = _cells(results_page.targets_section({"text": above}), "text", REC)
    assert cells["final avg loss Δ vs `mir` ± CI95"].startswith("**+0.0100 ± ")
    assert cells["final loss ≤ MIR's"] == "**no**" and cells["target met"] == "**no**"

    absent = _bench(mir_shift=None)
    r = results_page.targets("text", absent, REC)
    assert r["vs_mir"] is None and r["mir_ok"] is None
    assert r["met"] is False and r["missed"] == ["final loss vs MIR (not run)"]
    cells = _cells(results_page.targets_section({"text": absent}), "text", REC)
    assert (cells["final avg loss Δ vs `mir` ± CI95"], cells["final loss ≤ MIR's"]) == ("n/a", "n/a")


def test_the_section_states_both_new_targets():
    text = " ".join(results_page.targets_section({"text": _bench()}))
    assert "below uniform's frontier" in text and "final average loss at most MIR's" in text
    assert "negative = below" in text and "n/a, and not met" in text


_coord = st.floats(-10, 10, allow_nan=False, allow_infinity=False)
_shift = st.floats(1e-6, 10, allow_nan=False)  # "any positive amount" above float resolution at these magnitudes


@hypothesis.settings(max_examples=200, deadline=None)
@hypothesis.given(points=st.lists(st.tuples(_coord, _coord), min_size=2, max_size=6), pick=st.integers(0, 5), d=_shift)
def test_a_frontier_point_shifted_up_is_never_below_any_frontier(points, pick, d):
    """Any frontier, monotone or not: the point itself reaches the entry's new-task loss with less forgetting."""
    curve = [(f"p{i}", x, y) for i, (x, y) in enumerate(points)]
    _, x, y = curve[pick % len(curve)]
    r = evidence.frontier_margin(curve, x, y + d)
    assert not r["below"] and r["margin"] >= (y + d) - y > 0


@hypothesis.settings(max_examples=200, deadline=None)
@hypothesis.given(
    steps=st.lists(st.tuples(st.floats(1e-3, 1), st.floats(1e-3, 1)), min_size=2, max_size=6),
    start=st.tuples(_coord, _coord),
    pick=st.integers(0, 5),
    d=_shift,
)
def test_a_trade_off_frontier_point_shifted_down_is_below(steps, start, pick, d):
    """A trade-off frontier (new-task loss rising, forgetting falling with the share): every frontier point shifted
    down by d is below, by a margin of -d; the same point shifted up by d at the same new-task loss is not."""
    x, y = start
    curve = []
    for i, (dx, dy) in enumerate(steps):
        curve.append((f"p{i}", x, y))
        x, y = x + dx, y - dy
    _, x, y = curve[pick % len(curve)]
    down, up = evidence.frontier_margin(curve, x, y - d), evidence.frontier_margin(curve, x, y + d)
    assert down["below"] and down["margin"] == pytest.approx(-d, rel=1e-6, abs=1e-9)
    assert not up["below"] and up["margin"] == pytest.approx(d, rel=1e-6, abs=1e-9)


@hypothesis.settings(max_examples=200, deadline=None)
@hypothesis.given(points=st.lists(st.tuples(_coord, _coord), min_size=2, max_size=6), d=_shift)
def test_the_least_forgetting_frontier_point_shifted_down_is_below_any_frontier(points, d):
    """Any frontier, monotone or not: no point of its segments forgets less than its least-forgetting point."""
    curve = [(f"p{i}", x, y) for i, (x, y) in enumerate(points)]
    _, x, y = min(curve, key=lambda c: (c[2], c[1]))
    assert evidence.frontier_margin(curve, x, y - d)["below"]


def test_the_readme_stands_table_leads_with_the_recommended_amr_and_its_twin():
    bench = _bench()
    for name, e in bench["strategies"].items():
        if "+" in name:
            base, variant = named_variants.split(name)
            e["variant"] = {"kind": "named", "base": base, "name": variant}
    bench["strategies"]["amr+steady"] = dict(bench["strategies"]["amr"], variant={"kind": "named"})
    header = update_readme.render_stands({"benchmarks": {"text": bench}}, "x").splitlines()[0].split(" | ")
    assert header[4:7] == [f"`{REC}` (recommended) / uniform", f"`{TWIN}` / uniform", "`amr+steady` / uniform"]
