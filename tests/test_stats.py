"""Tests for amr/analysis/stats.py: the one source of across-seed statistics and the files built on it."""

import json
import math

import numpy as np
import pytest
from scipy import stats as sps

from amr.analysis import report, stats
from amr.runner import experiment

# t_{0.975, df} from printed statistical tables (scipy-free reference).
T_TABLE = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 9: 2.262, 29: 2.045}


@pytest.mark.parametrize("n", sorted(k + 1 for k in T_TABLE))
def test_ci95_matches_t_table(n):
    values = np.arange(n, dtype=np.float64) ** 1.5
    expected = T_TABLE[n - 1] * np.std(values, ddof=1) / math.sqrt(n)
    assert stats.ci95(values) == pytest.approx(expected, rel=2e-4)


def _t_quantile_975(df):
    """Scipy-free t quantile: integrate the t density (Simpson) and bisect."""
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def upper_tail(t):  # P(T > t), truncated at t + 2000 (the rest is < 1e-6 of it)
        x = np.linspace(t, t + 2000.0, 400_001)
        pdf = np.exp(log_c - (df + 1) / 2 * np.log1p(x * x / df))
        h = x[1] - x[0]
        return h / 3 * (pdf[0] + pdf[-1] + 4 * pdf[1:-1:2].sum() + 2 * pdf[2:-1:2].sum())

    lo, hi = 0.0, 20.0
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if upper_tail(mid) > 0.025 else (lo, mid)
    return (lo + hi) / 2


@pytest.mark.parametrize("df", [2, 5, 12])
def test_ci95_matches_numerical_reference_and_scipy(df):
    values = np.random.default_rng(df).normal(size=df + 1)
    n = df + 1
    expected = _t_quantile_975(df) * np.std(values, ddof=1) / math.sqrt(n)
    assert stats.ci95(values) == pytest.approx(expected, rel=1e-4)
    scipy_ref = sps.t.interval(0.95, df, loc=0.0, scale=sps.sem(values))[1]
    assert stats.ci95(values) == pytest.approx(scipy_ref, rel=1e-10)


def test_edge_cases():
    assert stats.ci95([0.3]) == 0.0 and stats.std([0.3]) == 0.0
    assert stats.ci95([0.3, 0.3, 0.3]) == 0.0
    assert math.isnan(stats.ci95([0.3, math.nan]))
    for f in (stats.mean, stats.std, stats.ci95, stats.describe):
        with pytest.raises(ValueError, match="values"):
            f([])
    with pytest.raises(ValueError, match="numeric"):
        stats.mean(["a"])


def test_describe():
    d = stats.describe([0.20, 0.22, 0.24])
    assert d["mean"] == pytest.approx(0.22) and d["std"] == pytest.approx(0.02) and d["n"] == 3
    assert d["ci95"] == pytest.approx(T_TABLE[2] * 0.02 / math.sqrt(3), rel=2e-4)
    assert d["values"] == [0.20, 0.22, 0.24]


def test_paired_difference_matches_scipy_ttest_rel():
    rng = np.random.default_rng(0)
    b = rng.normal(1.0, 0.3, size=6)
    a = b - 0.1 + rng.normal(0.0, 0.05, size=6)
    d = stats.paired_difference(a, b)
    res = sps.ttest_rel(a, b)
    lo, hi = res.confidence_interval(0.95)
    assert d["mean"] == pytest.approx(np.mean(a - b))
    assert d["ci95"] == pytest.approx((hi - lo) / 2, rel=1e-10)
    assert d["p_value"] == pytest.approx(res.pvalue)
    assert d["excludes_zero"] == (hi < 0 or lo > 0) == (res.pvalue < 0.05)
    same = stats.paired_difference([0.2, 0.3], [0.2, 0.3])  # no difference: no interval, p is nan, no warning
    assert same["mean"] == 0.0 and same["ci95"] == 0.0 and not same["excludes_zero"]
    one = stats.paired_difference([0.2], [0.3])
    assert math.isnan(one["p_value"]) and not one["excludes_zero"]
    with pytest.raises(ValueError, match="same length"):
        stats.paired_difference([0.1, 0.2], [0.1])


def _runs(n=3, fwt=True):
    rng = np.random.default_rng(n)
    runs = []
    for seed in range(n):
        L = rng.uniform(0.5, 3.0, (3, 3))
        runs.append(
            {
                "seed": seed,
                "loss_matrix": L.tolist(),
                "avg_forgetting": float(rng.uniform(0.1, 0.4)),
                "max_forgetting": float(rng.uniform(0.4, 0.6)),
                "final_avg_loss": float(rng.uniform(2, 3)),
                "new_task_loss": float(rng.uniform(2, 3)),
                "bwt": float(-rng.uniform(0.1, 0.4)),
                "fwt": float(rng.uniform(0, 1)) if fwt or seed else None,
                "forgetting_per_task": rng.uniform(0, 1, 2).tolist(),
                "flops": {"total": 2.42e12 + seed, "train_new": 2.0e12 / 3, "eval": 7.0},
                "within_budget": True,
                "naive_task_flops": 6.0e11,
                "plan": {"replay_rows": 2},
                "skipped_steps": seed,
            }
        )
    return runs


def _aggregate_before(runs):
    """experiment.aggregate as it was before amr.analysis.stats became its source (the reference)."""
    keys = ("avg_forgetting", "max_forgetting", "final_avg_loss", "new_task_loss", "bwt", "fwt")
    out = {
        "seeds": [r["seed"] for r in runs],
        "loss_matrix": np.mean([r["loss_matrix"] for r in runs], axis=0).tolist(),
    }
    for k in keys:
        vals = [r[k] for r in runs if r.get(k) is not None]
        out[k] = float(np.mean(vals)) if vals else None
    af = [r["avg_forgetting"] for r in runs]
    out["avg_forgetting_std"] = float(np.std(af, ddof=1)) if len(af) > 1 else 0.0
    out["avg_forgetting_per_seed"] = af
    out["flops"] = {k: float(np.mean([r["flops"][k] for r in runs])) for k in runs[0]["flops"]}
    out["within_budget"] = all(r["within_budget"] for r in runs)
    out["naive_task_flops"] = runs[0]["naive_task_flops"]
    out["plan"] = runs[0]["plan"]
    out["skipped_steps"] = int(sum(r["skipped_steps"] for r in runs))
    return out


@pytest.mark.parametrize("n, fwt", [(1, True), (3, True), (3, False), (7, True)])
def test_results_json_entry_keeps_every_key_and_value(n, fwt):
    runs = _runs(n, fwt)
    before, now = _aggregate_before(runs), experiment.aggregate(runs)
    assert now == stats.strategy_entry(runs)
    assert set(now) - set(before) == {"avg_forgetting_ci95", "new_task_loss_excl_first", "forgetting_per_task"}
    for k, v in before.items():  # bit for bit, as results.json writes them
        assert json.dumps(now[k]) == json.dumps(v), k
    assert now["avg_forgetting_ci95"] == stats.ci95([r["avg_forgetting"] for r in runs])
    # these runs predate the key: it is computed from each run's loss matrix (tasks 2..T of the diagonal)
    expected = np.mean([np.mean(np.diag(r["loss_matrix"])[1:]) for r in runs])
    assert now["new_task_loss_excl_first"] == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(now["forgetting_per_task"], np.mean([r["forgetting_per_task"] for r in runs], axis=0))


def test_recorded_metrics_are_never_replaced_by_derived_ones():
    run = _runs(1)[0]
    assert stats.with_metrics(run)["avg_forgetting"] == run["avg_forgetting"]  # not recomputed from the matrix
    derived = stats.with_metrics(run)["new_task_loss_excl_first"]
    assert derived == pytest.approx(np.mean(np.diag(run["loss_matrix"])[1:]))
    recorded = stats.with_metrics(dict(run, new_task_loss_excl_first=7.0))
    assert recorded["new_task_loss_excl_first"] == 7.0 != derived
    one_task = stats.summarize([dict(run, loss_matrix=[[1.0]], forgetting_per_task=[])])  # no task 2: None
    assert (
        one_task["new_task_loss_excl_first_mean"] is None and one_task["avg_forgetting_mean"] == run["avg_forgetting"]
    )


def test_readme_table_json_and_sweep_show_the_same_interval():
    runs = _runs(4)
    entry = experiment.aggregate(runs)
    sweep_entry = stats.summarize(runs)
    assert entry["avg_forgetting_ci95"] == sweep_entry["avg_forgetting_ci95"]
    assert entry["avg_forgetting_std"] == sweep_entry["avg_forgetting_std"]
    assert entry["avg_forgetting"] == sweep_entry["avg_forgetting_mean"]
    results = {"strategies": {"amr": entry}}
    row = report.summary_table(results).split("\n")[2]
    assert f"{entry['avg_forgetting']:.4f} ± {entry['avg_forgetting_ci95']:.4f}" in row
    # a results.json written before the ci95 key existed: the table computes it from the per-seed values
    old = {k: v for k, v in entry.items() if k != "avg_forgetting_ci95"}
    assert report.summary_table({"strategies": {"amr": old}}).split("\n")[2] == row
    std_row = report.summary_table(results, spread="std").split("\n")[2]
    assert f"{entry['avg_forgetting']:.4f} ± {entry['avg_forgetting_std']:.4f}" in std_row
    assert row != std_row  # negative control: the two spreads are told apart
    with pytest.raises(ValueError, match="spread"):
        report.summary_table(results, spread="sem")


# ---------------------------------------------------------------- power analysis

# Pairs for 80% power, two-sided paired (one-sample) t-test at alpha 0.05, by effect size d = effect / sd:
# Cohen (1988) / G*Power's "means: difference from constant" tables: d = 0.5 -> 34, d = 0.8 -> 15, d = 1 -> 10.
TEXTBOOK_PAIRS = {0.2: 199, 0.5: 34, 0.8: 15, 1.0: 10}


@pytest.mark.parametrize("d, n", sorted(TEXTBOOK_PAIRS.items()))
def test_pairs_for_power_matches_textbook_values(d, n):
    assert stats.pairs_for_power(d * 0.01, 0.01) == n  # the scale of the effect does not matter, only d
    assert stats.paired_t_power(n, d, 1.0) >= 0.8 > stats.paired_t_power(n - 1, d, 1.0)


def test_power_matches_a_simulated_paired_t_test():
    """Rejection rate of scipy's own paired t-test on simulated normal differences at the computed n."""
    rng = np.random.default_rng(0)
    n, d, sims = stats.pairs_for_power(0.5, 1.0), 0.5, 20_000
    diffs = rng.normal(d, 1.0, size=(sims, n))
    t = diffs.mean(axis=1) / (diffs.std(axis=1, ddof=1) / math.sqrt(n))
    rejected = np.mean(np.abs(t) > sps.t.ppf(0.975, n - 1))
    se = math.sqrt(0.8 * 0.2 / sims)
    assert rejected == pytest.approx(stats.paired_t_power(n, d, 1.0), abs=4 * se)
    # negative control: the normal approximation's n, (z_0.975 + z_0.8)^2 / d^2, is too few pairs for d = 1
    z_n = math.ceil((sps.norm.ppf(0.975) + sps.norm.ppf(0.8)) ** 2 / 1.0**2)
    assert z_n == 8 < stats.pairs_for_power(1.0, 1.0) == 10 and stats.paired_t_power(z_n, 1.0, 1.0) < 0.8


def test_power_analysis_of_paired_seeds():
    uniform = np.array([0.25, 0.24, 0.26, 0.23, 0.27])
    amr = uniform + np.array([-0.02, 0.0, -0.03, -0.01, 0.01])
    p = stats.power_analysis(amr, uniform)
    sd = np.std(amr - uniform, ddof=1)
    assert p["paired_sd"] == pytest.approx(sd) and p["effect"] == pytest.approx(0.1 * 0.25)
    n = p["seeds_needed"]
    assert stats.paired_t_power(n, 0.025, sd) >= 0.8 > stats.paired_t_power(n - 1, 0.025, sd)
    assert p["seeds_run"] == 5 and not p["enough_seeds"]  # fewer than 10 seeds is never enough
    noisier = stats.power_analysis(uniform + 3 * (amr - uniform), uniform)  # 3x the paired sd: ~9x the seeds
    assert noisier["seeds_needed"] > 5 * n
    one = stats.power_analysis([0.2], [0.3])
    assert one["paired_sd"] is None and one["seeds_needed"] is None and not one["enough_seeds"]
    assert stats.pairs_for_power(0.0, 0.1) is None  # no effect to detect
    with pytest.raises(ValueError, match="same length"):
        stats.power_analysis([0.1, 0.2], [0.1])
    with pytest.raises(ValueError, match="sd"):
        stats.paired_t_power(5, 0.1, 0.0)
    runs = [{"seed": s, "avg_forgetting": float(v)} for s, v in enumerate(amr)]
    refs = [{"seed": s, "avg_forgetting": float(v)} for s, v in enumerate(uniform)][::-1]  # paired by seed, not order
    assert stats.power_of_runs(runs, refs)["seeds_needed"] == n


def test_paired_compares_the_new_task_loss_over_tasks_two_to_t():
    def run(seed, diag):
        L = np.full((3, 3), 2.0)
        np.fill_diagonal(L, diag)
        return {"seed": seed, "avg_forgetting": 0.2, "new_task_loss": float(np.mean(diag)), "loss_matrix": L.tolist()}

    a = [run(0, [9.0, 1.0, 1.0]), run(1, [9.0, 1.2, 1.0])]
    b = [run(0, [1.0, 1.1, 1.1]), run(1, [1.0, 1.1, 1.1])]
    p = stats.paired(a, b)
    diffs = [1.0 - 1.1, 1.1 - 1.1]  # task 1 (9.0 against 1.0) does not count
    assert p["new_task_loss_excl_first_diff_mean"] == pytest.approx(np.mean(diffs))
    assert p["new_task_loss_excl_first_diff_ci95"] == pytest.approx(stats.ci95(diffs))
    assert p["new_task_loss_excl_first_rel"] == pytest.approx(1.05 / 1.1 - 1.0)
    assert p["new_task_loss_rel"] > 0  # negative control: the whole diagonal is dominated by task 1


def test_sweep_entry_budget_ratio_wall_time_and_sources():
    runs = _runs(3)
    entry = stats.summarize(runs)
    assert entry["budget_ratio_max"] is None and entry["wall_seconds_total"] is None  # runs recorded before the keys
    for r, ratio, secs in zip(runs, (0.99, 1.0000002, 0.5), (10.0, 12.5, 7.5)):
        r.update(budget_ratio=ratio, wall_seconds=secs)
        r.update(sources=["a", "b"], source_forgetting={"a": secs / 100, "b": None})
    entry = stats.summarize(runs)
    assert entry["budget_ratio_max"] == 1.0000002 and entry["wall_seconds_total"] == pytest.approx(30.0)
    assert entry["source_forgetting"] == {"a": pytest.approx(0.1), "b": None}
    del runs[0]["wall_seconds"]  # one run without a time: no total, never a partial sum
    assert stats.summarize(runs)["wall_seconds_total"] is None


def test_the_sweep_entry_carries_the_realised_replay_share_only_when_every_run_has_it():
    runs = _runs(3)
    assert "replay_share" not in stats.summarize(runs)  # runs written before the share was recorded
    for k, r in enumerate(runs):
        r["replay_share"] = 0.05 + 0.01 * k
    assert stats.summarize(runs)["replay_share"] == pytest.approx(0.06)
    del runs[1]["replay_share"]  # negative control: one run without it gives no mean
    assert "replay_share" not in stats.summarize(runs)
