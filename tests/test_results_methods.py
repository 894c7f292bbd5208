"""docs/RESULTS.md's Companion methods section (issue #13): every method alone, with uniform and with AMR, paired
against uniform by seed, at equal measured FLOPs; and the methods' points on the Pareto plot."""

import json
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.colors import to_rgba

from amr.analysis import plots, stats
from amr.methods.registry import METHODS
from amr.runner import named_variants
from experiments import results_methods, results_page
from tests.support import summaries
from tests.support.summaries import JITTER, SEEDS, U_AF, U_FINAL

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REC = named_variants.METHODS_AMR  # the AMR the methods are combined with
U_NEW = np.array([2.0 + 0.003 * k for k in SEEDS])


def _runs(af, final, new=U_NEW, **kw):
    return summaries.runs(af, final, new, **kw)


_entry = summaries.entry


def _runs_of(amr_shift=-0.02, ewc_flops=10.0, amr_ewc_seeds=SEEDS):
    """none, uniform, amr, the methods' AMR; ewc alone, with uniform, with amr and the methods' AMR (its final
    loss shifted by `amr_shift` from uniform's); l2sp alone and with uniform only."""
    return {
        "none": _runs(2 * U_AF, U_FINAL + 0.1),
        "uniform": _runs(U_AF, U_FINAL),
        "amr": _runs(U_AF + JITTER, U_FINAL + JITTER),
        REC: _runs(0.9 * U_AF, U_FINAL - JITTER),
        "none+ewc": _runs(1.5 * U_AF, U_FINAL + 0.05 + JITTER),
        "uniform+ewc": _runs(0.8 * U_AF, U_FINAL - 0.001 + JITTER, flops=ewc_flops),
        "amr+ewc": _runs(0.8 * U_AF - JITTER, U_FINAL + 0.004 + JITTER, seeds=amr_ewc_seeds),
        f"{REC}+ewc": _runs(0.7 * U_AF, U_FINAL + amr_shift + JITTER, new=U_NEW + 0.01),
        "none+l2sp": _runs(1.9 * U_AF, U_FINAL + 0.09),
        "uniform+l2sp": _runs(U_AF - JITTER, U_FINAL + 0.002 - JITTER),
    }


def _bench(**kw):
    return _entry(_runs_of(**kw))


def _row(lines, bench_entry_label):
    """The cells after method and entry of a methods table row, by column name."""
    (row,) = [x for x in lines if f"| {bench_entry_label} |" in x and x.startswith("| ")]
    cells = [c.strip() for c in row[2:-2].split(" | ")]
    return dict(zip(("method", "entry", *results_methods.COLUMNS), cells))


def test_method_of_names_the_method_and_the_combination():
    assert results_methods.method_of("amr+tail+ewc") == ("ewc", "amr+tail")
    assert results_methods.method_of("none+ewc") == ("ewc", "none")
    assert results_methods.method_of("amr+tail+ema_adaptive") == ("ema_adaptive", "amr+tail")
    assert results_methods.method_of("amr+ewc+tail") == ("ewc", "amr+tail")
    for name in ("uniform", "amr+tail", "uniform@4/32", "tilted@-2", "uniform@split:mir"):
        assert results_methods.method_of(name) is None


@settings(max_examples=100, deadline=None)
@given(
    base=st.sampled_from(("none", "uniform", "amr", "mir")),
    others=st.lists(
        st.sampled_from([n for n in named_variants.VARIANTS if n not in results_methods.METHOD_NAMES]),
        max_size=3,
        unique=True,
    ),
    method=st.sampled_from(results_methods.METHOD_NAMES),
    at=st.integers(0, 3),
)
def test_method_of_finds_the_method_anywhere_in_a_stack(base, others, method, at):
    names = list(others)
    names.insert(min(at, len(names)), method)
    assert results_methods.method_of("+".join([base, *names])) == (method, "+".join([base, *others]))


def test_paired_deltas_are_the_seed_paired_differences_against_uniform():
    entry = _bench()
    r = results_methods.row(entry, f"{REC}+ewc")
    diff = (U_FINAL - 0.02 + JITTER) - U_FINAL
    assert r["final_vs"]["mean"] == pytest.approx(diff.mean())
    assert r["final_vs"]["ci95"] == pytest.approx(stats.ci95(diff))
    assert r["final_vs"]["excludes_zero"] and r["final_vs"]["seeds"] == SEEDS
    assert r["forgetting_vs"]["mean"] == pytest.approx(np.mean(-0.3 * U_AF))
    assert r[stats.NEW_TASK_LOSS][0] == pytest.approx(np.mean(U_NEW + 0.01))
    assert r["flops_ratio"] == pytest.approx(1.0) and r["flops_ok"]


def test_the_section_names_the_best_combination_and_the_target_met():
    entry = _bench()
    lines = results_methods.methods_section({"text": entry})
    text = "\n".join(lines)
    assert lines[0] == "## Companion methods (issue #13)"
    assert f"- Best combination on text (lowest final average loss of the method entries): `{REC}+ewc`" in text
    g = results_methods.summary("text", entry)
    assert g["target_met"] and [r["entry"] for r in g["wins"]] == [f"{REC}+ewc"]  # amr+ewc is above uniform
    assert f"**met** by `{REC}+ewc` (Δ -0.0200 ± " in text
    assert f"- **text**: best `{REC}+ewc`; target met." in text
    cells = _row(lines, f"`{REC}+ewc`")
    assert cells["method"] == "ewc" and cells["seeds"] == "10" and cells["Δ excludes 0"] == "yes"
    assert cells["final avg loss Δ vs uniform"].startswith("**-0.0200 ± ")  # bold: excludes 0
    assert cells["FLOPs / naive"] == "1.000"
    assert _row(lines, "`uniform`")["final avg loss Δ vs uniform"] == "—"  # uniform against itself
    # rows: the references, then per method in METHODS' order (l2sp, ewc, ...) its entries, a missing one too
    order = [x.split(" | ")[1] for x in lines if x.startswith("| ") and "`" in x.split(" | ")[1]]
    assert order == [
        "`none`", "`uniform`", "`amr`", f"`{REC}`",
        "`none+l2sp`", "`uniform+l2sp`", f"`{REC}+l2sp`",
        "`none+ewc`", "`uniform+ewc`", "`amr+ewc`", f"`{REC}+ewc`",
    ]  # fmt: skip


def test_the_recommended_amr_is_a_reference_row_labelled_apart_from_the_methods_amr():
    """The recommended AMR, when it ran, follows the methods' AMR among the reference rows and alone carries the
    label; a method stacked on it is still an AMR combination. Negative control: without it, no row is labelled."""
    rec = named_variants.RECOMMENDED_AMR
    assert rec != REC  # the recommended AMR moved on after the methods' sweep
    runs = _runs_of()
    runs[rec] = _runs(0.85 * U_AF, U_FINAL - 2 * JITTER)
    lines = results_methods.methods_section({"text": _entry(runs)})
    refs = [x.split(" | ")[1] for x in lines if x.startswith("| —")]
    assert refs == ["`none`", "`uniform`", "`amr`", f"`{REC}`", f"`{rec}` (recommended)"]
    assert results_methods.method_of(f"{rec}+ewc") == ("ewc", rec)
    without = results_methods.methods_section({"text": _bench()})
    assert not any("(recommended)" in x for x in without)


def test_no_amr_combination_beating_uniform_is_said_with_the_numbers():
    """Negative control: the same table with the recommended AMR + EWC above uniform's final loss misses the target,
    and the line names the closest AMR combination with its paired Δ."""
    entry = _bench(amr_shift=+0.01)
    g = results_methods.summary("text", entry)
    assert g["target_met"] is False and not g["wins"]
    text = "\n".join(results_methods.methods_section({"text": entry}))
    assert "**not met**: no AMR combination has a lower final average loss than uniform" in text
    d = results_methods.row(entry, "amr+ewc")["final_vs"]
    assert d["mean"] == pytest.approx(0.004) and d["ci95"] == pytest.approx(stats.ci95(JITTER))
    assert f"the closest is `amr+ewc` (Δ +0.0040 ± {d['ci95']:.4f} over 10 seeds)" in text
    assert "- **text**: best `uniform+ewc`; target **not met**." in text


def test_without_an_amr_combination_the_target_is_not_met():
    """Negative control: methods alone and with uniform only; the target is missed because no AMR combination ran."""
    runs = {k: v for k, v in _runs_of().items() if not k.startswith("amr+")}
    text = "\n".join(results_methods.methods_section({"text": _entry(runs)}))
    assert "- **text**: best `uniform+ewc`; target **not met**." in text
    assert "**not met**: no AMR combination (`amr+<method>` or `amr+tail+<method>`) was run." in text
    assert "`amr+tail+ewc` not run" in text and "`amr+tail+l2sp` not run" in text
    no_uniform = {
        "seeds": SEEDS,
        "strategies": {k: stats.summarize(v) for k, v in _runs_of().items() if k != "uniform"},
    }
    text = "\n".join(results_methods.methods_section({"text": no_uniform}))
    assert f"- **text**: best `{REC}+ewc`; target **cannot be checked**." in text
    assert "**cannot be checked**: no `uniform` entry." in text
    assert "- Missing: `uniform` not run; " in text


def test_an_entry_above_naive_flops_is_flagged():
    """Negative control: uniform+ewc at 1.02x naive's measured FLOPs is flagged; 1.004x is within the tolerance. An
    AMR combination above naive's FLOPs can be neither the best nor the target's win."""
    over = results_methods.methods_section({"text": _bench(ewc_flops=10.2)})
    assert _row(over, "`uniform+ewc`")["FLOPs / naive"] == "**1.020 (above naive)**"
    assert "- FLOPs: **above naive fine-tuning's measured FLOPs (or over budget): `uniform+ewc` (1.020×)**." in over
    runs = _runs_of()
    runs[f"{REC}+ewc"] = [dict(r, flops={"total": 10.3, "train_new": 8.0}) for r in runs[f"{REC}+ewc"]]
    g = results_methods.summary("text", _entry(runs))
    # above naive's FLOPs, the only AMR win is no win and not the best: the target is missed, the row still shown
    assert g["target_met"] is False and not g["wins"] and g["best"]["entry"] == "uniform+ewc"
    text = "\n".join(results_methods.methods_section({"text": _entry(runs)}))
    assert (
        f"the closest is `{REC}+ewc` (Δ -0.0200 ± 0.0005 over 10 seeds; **above naive's FLOPs or over budget**)" in text
    )
    assert "- **text**: best `uniform+ewc`; target **not met**." in text
    within = results_methods.methods_section({"text": _bench(ewc_flops=10.04)})
    assert _row(within, "`uniform+ewc`")["FLOPs / naive"] == "1.004"
    assert "- FLOPs: every method entry within 1.005× naive fine-tuning's measured FLOPs." in within


def test_missing_entries_methods_and_seeds_are_reported():
    entry = _bench(amr_ewc_seeds=[k for k in SEEDS if k not in (3, 7)])
    lines = results_methods.methods_section({"text": entry, "digits": _entry({"uniform": _runs(U_AF, U_FINAL)})})
    text = "\n".join(lines)
    cells = _row(lines, "`amr+ewc`")
    assert cells["seeds"] == "8 (**missing 3, 7**)"
    assert results_methods.row(entry, "amr+ewc")["final_vs"]["seeds"] == [0, 1, 2, 4, 5, 6, 8, 9]
    missing = _row(lines, f"`{REC}+l2sp`")
    assert missing["seeds"] == "**not run**" and set(list(missing.values())[3:]) == {"—"}
    others = ", ".join(m for m in METHODS if m not in ("ewc", "l2sp"))
    assert f"- Missing: `{REC}+l2sp` not run; `amr+ewc` lacks seed(s) 3, 7; methods not run on text: {others}." in text
    assert "- No method entries on: digits." in text and "### digits" not in text  # shown only where they ran


def test_a_comparison_over_fewer_seeds_than_the_entry_says_so():
    """uniform without seed 9: every Δ is over the 9 seeds both have, and says so; uniform's row names the gap."""
    runs = _runs_of()
    runs["uniform"] = runs["uniform"][:-1]
    lines = results_methods.methods_section({"text": _entry(runs)})
    assert _row(lines, f"`{REC}+ewc`")["final avg loss Δ vs uniform"].endswith(" (9 paired seeds)")
    assert _row(lines, "`uniform`")["seeds"] == "9 (**missing 9**)"


def test_without_method_entries_there_is_no_section(tmp_path):
    assert results_methods.methods_section({"text": _entry({"uniform": _runs(U_AF, U_FINAL)})}) == []
    with open(os.path.join(ROOT, "docs", "results.json"), encoding="utf-8") as f:
        committed = json.load(f)
    if not any(results_methods.method_entries(e) for e in committed["benchmarks"].values()):
        assert results_methods.methods_section(committed["benchmarks"]) == []


def test_the_page_carries_the_section_and_the_pareto_plot_groups_the_methods(tmp_path, monkeypatch):
    figures = {}
    save = plots._save

    def keep(fig, path):
        figures[os.path.basename(path)] = fig
        return save(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    entry = _bench()
    entry["config"] = {"replay": {"fraction": 0.0625}}
    text = results_page.page({"benchmarks": {"text": entry}}, None, str(tmp_path))
    assert "## Companion methods (issue #13)" in text and "### text: companion methods" in text
    assert text.index("## Companion methods") < text.index("## Power")
    ax = figures["results_text_pareto.png"].axes[0]
    main, side = ax.artists[0], ax.get_legend()  # the strategies' legend, then the methods' beside the axes
    main_labels = [t.get_text() for t in main.get_texts()]
    assert main_labels == ["uniform frontier", "none", "amr", REC]  # no entry per method point
    side_labels = [t.get_text() for t in side.get_texts()]
    assert side_labels == ["ewc", "l2sp", "over none", "over uniform", "over amr", f"over {REC}"]
    points = {c.get_label(): c.lines[0] for c in ax.containers}
    drawn = [c.lines[0] for c in ax.containers if c.get_label() == "_nolegend_"]
    assert len(drawn) == 6  # every method entry is on the plot
    assert all(line.get_markerfacecolor() == "none" for line in drawn)  # hollow: the methods' marker family
    assert all(points[n].get_markerfacecolor() != "none" for n in ("none", "amr", REC))
    by_method = {}
    for line, name in zip(drawn, [n for n in entry["strategies"] if results_methods.method_of(n)]):
        method, combo = results_methods.method_of(name)
        by_method.setdefault(method, set()).add(line.get_marker())
        by_method.setdefault(combo, set()).add(to_rgba(line.get_color()))
    assert all(len(v) == 1 for v in by_method.values())  # one marker per method, one colour per combination
    assert by_method["ewc"] != by_method["l2sp"] and by_method["none"] != by_method["uniform"]
    (none_colour,) = by_method["none"]
    assert none_colour == to_rgba(points["none"].get_color())  # a combination has its own point's colour
    assert by_method["uniform"] == {(0.0, 0.0, 0.0, 1.0)}  # uniform's: the frontier's black
    flops_ax = figures["results_text.png"].axes[0]  # the FLOPs plot groups them the same way
    assert [t.get_text() for t in flops_ax.artists[0].get_texts()] == ["none", "uniform", "amr", REC]
    assert [t.get_text() for t in flops_ax.get_legend().get_texts()] == side_labels


def test_plot_pareto_checks_its_method_groups(tmp_path):
    frontier = [("uniform", (2.0, 0.01, 0.1, 0.01))]
    points = {"uniform+ewc": (2.0, 0.01, 0.08, 0.01)}
    with pytest.raises(ValueError, match="not one of the points"):
        plots.plot_pareto(frontier, points, tmp_path / "p.png", methods={"amr+ewc": ("ewc", "amr")})
    with pytest.raises(ValueError, match=r"must be \(method, combination\)"):
        plots.plot_pareto(frontier, points, tmp_path / "p.png", methods={"uniform+ewc": "ewc"})
    assert os.path.getsize(
        plots.plot_pareto(frontier, points, tmp_path / "p.png", methods={"uniform+ewc": ("ewc", "uniform")})
    )


def test_a_methods_sweep_of_its_own_gets_the_section_with_its_code_data_and_plot(tmp_path):
    """`--methods_results`: the section comes from that file only (its own references), with a Pareto plot per
    benchmark; the main results, which have no method entries, keep their own tables."""
    main = _entry({"uniform": _runs(U_AF, U_FINAL), "none": _runs(2 * U_AF, U_FINAL + 0.1)})
    methods = _bench()
    methods["config"] = {"replay": {"fraction": 0.0625}}
    text = results_page.page({"benchmarks": {"text": main}}, None, str(tmp_path), {"benchmarks": {"subpop": methods}})
    assert "## Companion methods (issue #13)" in text and "### subpop: companion methods" in text
    assert "### text: companion methods" not in text
    assert "a sweep of their own" in text and "- subpop: Code: not recorded" in text
    assert os.path.exists(tmp_path / "results_methods_subpop_pareto.png")
    assert "(results_methods_subpop_pareto.png)" in text
    # negative control: the same page without the methods sweep has no such section
    plain = results_page.page({"benchmarks": {"text": main}}, None, str(tmp_path / "plain"))
    assert "## Companion methods" not in plain


def test_a_methods_sweep_with_mismatched_data_refuses_the_page(tmp_path):
    methods = _bench()
    methods["data"] = {"per_run": {"uniform": {"0": "aa"}, "none": {"0": "bb"}}}  # seed 0's runs: different data
    with pytest.raises(results_page.provenance.DataMismatch):
        results_page.page({"benchmarks": {}}, None, str(tmp_path), {"benchmarks": {"subpop": methods}})


def test_what_a_method_adds_to_its_amr_combination_is_paired_against_that_combination():
    """`amr+tail+ewc` - `amr+tail` by seed: the recommended AMR's final loss is uniform's minus JITTER, the
    combination's uniform's + shift + JITTER, so the method adds shift + 2 JITTER per seed."""
    g = results_methods.summary("text", _bench(amr_shift=-0.02))
    (added,) = [a for a in g["added"] if a["entry"] == f"{REC}+ewc"]
    assert added["combination"] == REC
    want = stats.paired_difference(list(U_FINAL - 0.02 + JITTER), list(U_FINAL - JITTER))
    assert added["delta"]["mean"] == pytest.approx(want["mean"]) and added["delta"]["ci95"] == pytest.approx(
        want["ci95"]
    )
    # amr+ewc's combination is amr itself (U_FINAL + JITTER): it adds +0.004 by seed, an interval excluding 0
    (plain,) = [a for a in g["added"] if a["entry"] == "amr+ewc"]
    assert plain["combination"] == "amr" and plain["delta"]["mean"] == pytest.approx(0.004)
    text = "\n".join(results_methods.methods_section({"text": _bench(amr_shift=-0.02)}))
    assert f"lower with an interval excluding 0: `{REC}+ewc`)" in text
    # negative control: with the method raising the final loss, no combination is said to gain from it
    text = "\n".join(results_methods.methods_section({"text": _bench(amr_shift=+0.01)}))
    assert "none lower with an interval excluding 0)" in text and f"`{REC}+ewc` **+0.0" in text
