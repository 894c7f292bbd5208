"""Tests for amr/analysis/evidence.py: regime checks, power per benchmark and same-split controls from a sweep entry."""

import numpy as np
import pytest

from amr.analysis import evidence, stats


def _entry(values, seeds=None):
    seeds = list(range(len(values))) if seeds is None else seeds
    return {"seeds": seeds, "avg_forgetting_per_seed": [float(v) for v in values]}


NAIVE = [0.50, 0.52, 0.49, 0.51]
GOOD_UNIFORM = [0.20, 0.22, 0.19, 0.21]  # 0.41x naive, sd 0.013: both checks pass


def test_regime_checks_pass():
    checks = evidence.regime_checks(_entry(GOOD_UNIFORM), _entry(NAIVE))
    rm, real = checks["replay_matters"], checks["forgetting_is_real"]
    assert rm["pass"] and real["pass"]
    assert rm["ratio"] == pytest.approx(np.mean(GOOD_UNIFORM) / np.mean(NAIVE))
    d = stats.paired_difference(GOOD_UNIFORM, NAIVE)
    assert (rm["diff_mean"], rm["diff_ci95"]) == (d["mean"], d["ci95"]) and rm["diff_excludes_zero"]
    assert real["over_sd"] == pytest.approx(np.mean(GOOD_UNIFORM) / np.std(GOOD_UNIFORM, ddof=1))


@pytest.mark.parametrize(
    "uniform, naive, failing",
    [
        # digits in the first build: uniform 0.96x naive, interval containing 0
        ([0.48, 0.53, 0.47, 0.50], NAIVE, "replay_matters"),
        # low ratio but a paired interval that contains 0 (one seed where replay hurts a lot)
        ([0.05, 0.05, 0.05, 0.90], NAIVE, "replay_matters"),
        # forgetting within noise: mean 0.02, sd 0.012 (< 5x)
        ([0.01, 0.03, 0.005, 0.035], NAIVE, "forgetting_is_real"),
    ],
)
def test_regime_checks_fail(uniform, naive, failing):
    checks = evidence.regime_checks(_entry(uniform), _entry(naive))
    assert not checks[failing]["pass"]


def test_regime_checks_pair_by_seed_and_are_na_without_the_runs():
    shuffled = evidence.regime_checks(_entry(GOOD_UNIFORM[::-1], seeds=[3, 2, 1, 0]), _entry(NAIVE))
    assert shuffled == evidence.regime_checks(_entry(GOOD_UNIFORM), _entry(NAIVE))
    assert evidence.regime_checks(_entry(GOOD_UNIFORM), None)["replay_matters"] is None
    assert evidence.regime_checks(_entry([0.2]), _entry([0.5])) == {"replay_matters": None, "forgetting_is_real": None}
    old = {"seeds": [0, 1], "avg_forgetting_mean": 0.2}  # an entry without per-seed values
    assert evidence.regime_checks(old, old) == {"replay_matters": None, "forgetting_is_real": None}


def test_power_and_same_split_of_a_sweep_entry():
    uniform = [0.30, 0.28, 0.33, 0.29]
    mir = [0.22, 0.21, 0.25, 0.22]  # forgets 0.075 less than uniform on average
    control = [0.25, 0.23, 0.27, 0.245]  # uniform at mir's split: 0.0475 of that gain
    strategies = {
        "uniform": _entry(uniform),
        "amr": _entry([0.29, 0.28, 0.31, 0.30]),
        "mir": _entry(mir),
        "uniform@split:mir": dict(
            _entry(control), variant={"kind": "same_split", "of": "mir", "new_rows": 26, "replay_rows": 2}
        ),
    }
    ev = evidence.benchmark_evidence({"strategies": strategies})
    p = ev["power"]
    assert p["comparison"] == "amr - uniform" and p["seeds"] == [0, 1, 2, 3]
    assert p["seeds_needed"] == stats.power_analysis([0.29, 0.28, 0.31, 0.30], uniform)["seeds_needed"]
    s = ev["same_split"]["mir"]
    assert s["control"] == "uniform@split:mir" and (s["new_rows"], s["replay_rows"]) == (26, 2)
    gain, split = np.mean(np.subtract(mir, uniform)), np.mean(np.subtract(control, uniform))
    assert s["vs_uniform"]["mean"] == pytest.approx(gain)
    assert s["vs_same_split"]["mean"] == pytest.approx(np.mean(np.subtract(mir, control)))
    assert s["split_effect"]["mean"] == pytest.approx(split)
    assert s["explained_fraction"] == pytest.approx(split / gain) and 0.6 < s["explained_fraction"] < 0.7
    # negative control: a control identical to uniform explains none of the gain
    strategies["uniform@split:mir"] = dict(strategies["uniform@split:mir"], **_entry(uniform))
    assert evidence.same_split(strategies)["mir"]["explained_fraction"] == 0.0
    assert evidence.benchmark_evidence({"strategies": {"uniform": _entry(uniform)}})["same_split"] == {}
    assert evidence.power({"uniform": _entry(uniform)}) is None


def test_power_table_has_a_row_per_amr_entry_it_ran():
    from amr.analysis import evidence_md

    uniform = [0.30, 0.28, 0.33, 0.29]
    steady = [0.25, 0.23, 0.28, 0.24]  # the same gap on every seed: sd ~0, few seeds needed
    noisy = [0.20, 0.30, 0.22, 0.31]  # a noisier gap: more seeds needed
    bench = {"seeds": [0, 1, 2, 3], "strategies": {"uniform": _entry(uniform), "amr": _entry(noisy),
                                                   "amr+tail": _entry(steady)}}  # fmt: skip
    table = evidence_md.power_table({"text": bench}, ("amr", "amr+tail", "amr+absent"))
    rows = [line for line in table.splitlines() if line.startswith("| text")]
    assert [r.split(" | ")[1] for r in rows] == ["`amr`", "`amr+tail`"]  # an entry that did not run has no row
    need = {r.split(" | ")[1]: r.split(" | ")[5] for r in rows}
    assert need["`amr+tail`"] == str(evidence.power(bench["strategies"], of="amr+tail")["seeds_needed"])
    assert int(need["`amr`"]) > int(need["`amr+tail`"])  # negative control: the noisier gap needs more seeds
    assert evidence.power(bench["strategies"], of="amr+tail")["comparison"] == "amr+tail - uniform"


def _point(new, af):
    return {"new_task_loss_excl_first_mean": new, "new_task_loss_excl_first_ci95": 0.01, "avg_forgetting_mean": af,
            "avg_forgetting_ci95": 0.02}  # fmt: skip


def test_pareto_plot_of_a_sweep_entry(tmp_path):
    from amr.analysis import plots

    entry = {
        "config": {"replay": {"fraction": 2 / 32}},
        "strategies": {
            "none": _point(1.0, 0.6),
            "uniform": _point(1.1, 0.3),
            "amr": _point(1.12, 0.27),
            "uniform@8/32": dict(_point(1.3, 0.05), variant={"kind": "frontier", "base": "uniform", "replay_fraction": 0.25}),
            "uniform@1/32": dict(_point(1.05, 0.4), variant={"kind": "frontier", "base": "uniform", "replay_fraction": 1 / 32}),
            "amr@4/32": dict(_point(1.2, 0.1), variant={"kind": "frontier", "base": "amr", "replay_fraction": 0.125}),
        },
    }  # fmt: skip
    frontier, points = evidence.pareto(entry)
    assert [label for label, _ in frontier] == ["uniform@1/32", "uniform (default, 2/32)", "uniform@8/32"]
    assert set(points) == {"none", "amr", "amr@4/32"} and points["amr"] == (1.12, 0.01, 0.27, 0.02)
    path = plots.plot_pareto(frontier, points, tmp_path / "pareto.png", title="digits")
    assert path.endswith("pareto.png") and (tmp_path / "pareto.png").stat().st_size > 1000
    # older results without the new-task loss over tasks 2..T: no plot (the page says n/a), no crash
    old = {"strategies": {"uniform": {"avg_forgetting_mean": 0.3, "new_task_loss_mean": 1.0}}}
    assert evidence.pareto(old) is None
    with pytest.raises(ValueError, match="frontier"):
        plots.plot_pareto([], points, tmp_path / "x.png")
    with pytest.raises(ValueError, match="ci95 >= 0"):
        plots.plot_pareto([("u", (1.0, -0.1, 0.2, 0.0))], {}, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def _share_entry(realised):
    """uniform at 2/32 and 4/32 on 3 seeds, and a varying-share variant at `realised`."""
    e = {
        "config": {"replay": {"fraction": 2 / 32}},
        "strategies": {
            "uniform": {"seeds": [0, 1, 2], "avg_forgetting_per_seed": [0.10, 0.12, 0.11]},
            "uniform@4/32": {
                "seeds": [0, 1, 2],
                "avg_forgetting_per_seed": [0.06, 0.08, 0.07],
                "variant": {"kind": "frontier", "base": "uniform", "replay_fraction": 4 / 32},
            },
            "amr+controller": {
                "seeds": [0, 1, 2],
                "avg_forgetting_per_seed": [0.07, 0.10, 0.08],
                "replay_share": realised,
                "variant": {"kind": "named", "overrides": {"replay.share": "controller"}},
            },
            "amr+steady": {  # fixed share: never share-matched
                "seeds": [0, 1, 2],
                "avg_forgetting_per_seed": [0.1, 0.1, 0.1],
                "replay_share": 2 / 32,
                "variant": {"kind": "named", "overrides": {"bandit.aggregate": "segment"}},
            },
        },
    }
    return e


def test_a_varying_share_is_compared_with_uniform_interpolated_at_its_realised_share():
    m = evidence.share_matched(_share_entry(3 / 32))
    assert set(m) == {"amr+controller"}
    at = np.array([0.08, 0.10, 0.09])  # halfway between the two frontier points, seed by seed
    d = m["amr+controller"]["vs_uniform_at_share"]
    np.testing.assert_allclose(d["mean"], np.mean(np.array([0.07, 0.10, 0.08]) - at))
    np.testing.assert_allclose(m["amr+controller"]["ratio"], 0.25 / 0.27)
    # negative control: read at the default share (no interpolation) the same runs look better than they are
    at_default = evidence.share_matched(_share_entry(2 / 32))["amr+controller"]["vs_uniform_at_share"]
    assert at_default["mean"] < d["mean"]


def test_a_share_outside_the_frontier_is_not_compared():
    assert evidence.share_matched(_share_entry(6 / 32))["amr+controller"]["vs_uniform_at_share"] is None
