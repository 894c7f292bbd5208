"""Across-seed statistics: the one place where per-seed numbers become means, spreads and intervals.

Every table and JSON file of the project reads its statistics from here: the README table
(`report.summary_table`), a workdir's `results.json` (`runner.experiment.aggregate` ->
`strategy_entry`), and the sweep JSON behind docs/RESULTS.md (`summarize`, `paired`).
They all show the same statistic, mean ± the half-width of the 95% Student-t interval over
seeds; the sample standard deviation (ddof=1) sits next to it.

    >>> d = describe([0.20, 0.22, 0.24])
    >>> round(d["mean"], 4), round(d["std"], 4), round(d["ci95"], 4)
    (0.22, 0.02, 0.0497)

Comparisons with a reference strategy are paired by seed (same data split, init and
new-task order), which removes the seed-to-seed spread both strategies share.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from typing import Any

import numpy as np
from scipy import stats as sps

from amr.analysis import forgetting, provenance
from amr.io import run_files

CONFIDENCE = 0.95
POWER, ALPHA, RELATIVE_EFFECT = 0.80, 0.05, 0.10  # the power analysis: detect 10% of uniform's forgetting
MIN_SEEDS = 10  # the floor on paired seeds per benchmark, whatever the power analysis says
NEW_TASK_LOSS = forgetting.NEW_TASK_LOSS  # over tasks 2..T: the new-task loss comparisons use
METRICS = ("avg_forgetting", "max_forgetting", "new_task_loss", NEW_TASK_LOSS, "final_avg_loss")
# Metrics of one run that `strategy_entry` (results.json) averages; fwt is None without init losses.
RUN_METRICS = ("avg_forgetting", "max_forgetting", "final_avg_loss", "new_task_loss", NEW_TASK_LOSS, "bwt", "fwt")


# ---------------------------------------------------------------- one sample of per-seed values


def _sample(values) -> np.ndarray:
    try:
        v = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as e:
        raise ValueError(f"values must be numeric: {e}") from None
    if v.shape[0] == 0:
        raise ValueError("values must hold at least one value")
    return v


def mean(values) -> float:
    """Mean over seeds."""
    return float(np.mean(_sample(values)))


def std(values) -> float:
    """Sample standard deviation over seeds (ddof=1); 0.0 for a single value."""
    v = _sample(values)
    return float(np.std(v, ddof=1)) if v.shape[0] > 1 else 0.0


def ci95(values) -> float:
    """Half-width of the 95% Student-t confidence interval of the mean.

    `t_{0.975, n-1} * std(ddof=1) / sqrt(n)`; 0.0 for a single value. Non-finite values
    propagate (a diverged seed gives nan, not a silently narrow interval).
    """
    v = _sample(values)
    n = v.shape[0]
    if n == 1:
        return 0.0
    return float(sps.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * np.std(v, ddof=1) / math.sqrt(n))


def describe(values) -> dict[str, Any]:
    """`{"mean", "std", "ci95", "n", "values"}` of one metric's per-seed values."""
    v = _sample(values)
    return {"mean": mean(v), "std": std(v), "ci95": ci95(v), "n": int(v.shape[0]), "values": v.tolist()}


def paired_difference(a, b) -> dict[str, Any]:
    """Seed-paired difference `a - b`: its describe(), whether its 95% interval excludes 0, and
    the two-sided p-value of the paired t-test (`scipy.stats.ttest_rel`; nan below 2 pairs)."""
    a, b = _sample(a), _sample(b)
    if a.shape != b.shape:
        raise ValueError(f"paired values must have the same length, got {a.shape[0]} and {b.shape[0]}")
    d = describe(a - b)
    p = math.nan
    if d["n"] > 1:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)  # identical pairs: a 0/0 statistic
            p = float(sps.ttest_rel(a, b).pvalue)
    d["excludes_zero"] = bool(d["n"] > 1 and abs(d["mean"]) > d["ci95"])
    d["p_value"] = p
    return d


def with_metrics(run: dict[str, Any]) -> dict[str, Any]:
    """`run` with the metrics of `forgetting.forgetting_metrics` its file lacks (runs written before a metric
    existed) computed from its loss matrix; recorded values are never replaced."""
    missing = [k for k in (*METRICS, "forgetting_per_task") if k not in run]
    if not missing or "loss_matrix" not in run:
        return run
    derived = forgetting.forgetting_metrics(run["loss_matrix"])
    return {**run, **{k: derived[k] for k in missing}}


def _describe_metric(runs, key: str) -> dict[str, Any]:
    """describe() of one metric over runs; mean/std/ci95 None when a run has no value (e.g. one task)."""
    vals = [r.get(key) for r in runs]
    if any(v is None for v in vals):
        return {"mean": None, "std": None, "ci95": None, "n": len(vals), "values": vals}
    return describe(vals)


def mean_over_seeds(arrays) -> list:
    """Element-wise mean of equally shaped per-seed arrays (loss matrices), as nested lists."""
    return np.mean(np.asarray(arrays, dtype=np.float64), axis=0).tolist()


def _mean_flops(runs) -> dict[str, float]:
    return {k: mean([r["flops"][k] for r in runs]) for k in runs[0]["flops"]}


# ---------------------------------------------------------------- entries of the results files


def strategy_entry(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Seeds of one strategy -> its `results.json` entry (see `runner.experiment.aggregate`).

    Means of `RUN_METRICS` (over the seeds that have a value; None when none has), the
    seed-averaged loss matrix and FLOPs, and for average forgetting its std, 95% CI and
    per-seed values."""
    if not runs:
        raise ValueError("runs: no finished runs to aggregate")
    runs = [with_metrics(r) for r in runs]
    out: dict[str, Any] = {
        "seeds": [r["seed"] for r in runs],
        "loss_matrix": mean_over_seeds([r["loss_matrix"] for r in runs]),
    }
    for k in RUN_METRICS:
        vals = [r[k] for r in runs if r.get(k) is not None]
        out[k] = mean(vals) if vals else None
    af = describe([r["avg_forgetting"] for r in runs])
    out["avg_forgetting_std"] = af["std"]
    out["avg_forgetting_ci95"] = af["ci95"]
    out["avg_forgetting_per_seed"] = [r["avg_forgetting"] for r in runs]
    out["forgetting_per_task"] = mean_over_seeds([r["forgetting_per_task"] for r in runs])
    out["flops"] = _mean_flops(runs)
    out["within_budget"] = all(r["within_budget"] for r in runs)
    out["naive_task_flops"] = runs[0]["naive_task_flops"]
    out["plan"] = runs[0]["plan"]
    out["skipped_steps"] = int(sum(r["skipped_steps"] for r in runs))
    shares = [r["replay_share"] for r in runs if r.get("replay_share") is not None]
    if shares:  # the replay share runs actually used (replay.share may vary it; older runs lack it)
        out["replay_share"] = mean(shares)
    if all("source_forgetting" in r for r in runs):
        out["source_forgetting"] = source_forgetting_mean(runs)
    return out


def source_forgetting_mean(runs: list[dict[str, Any]]) -> dict[str, float | None]:
    """{source: mean forgetting over seeds} of a mixture stream's runs (None for a source still being trained)."""
    return {
        n: mean([r["source_forgetting"][n] for r in runs]) if runs[0]["source_forgetting"][n] is not None else None
        for n in runs[0]["sources"]
    }


def load_runs(workdir: str, strategy: str, seeds) -> list[dict[str, Any]]:
    """The finished runs `<workdir>/runs/<strategy>_seed<k>.json` of `train_and_evaluate`, each with the
    `wall_seconds` of its `.seconds` file when there is one."""
    runs = []
    for seed in seeds:
        path = run_files.run_file(workdir, strategy, seed)
        with open(path, encoding="utf-8") as f:
            runs.append(json.load(f))
        if os.path.exists(path + run_files.SECONDS_SUFFIX):
            with open(path + run_files.SECONDS_SUFFIX, encoding="utf-8") as f:
                runs[-1].setdefault("wall_seconds", json.load(f)["wall_seconds"])
    return runs


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-seed results of one strategy -> the sweep entry: mean, std and ci95 of each metric, FLOPs, budget check."""
    if not runs:
        raise ValueError("runs: no finished runs to summarize")
    runs = [with_metrics(r) for r in runs]
    out: dict[str, Any] = {"seeds": [int(r["seed"]) for r in runs]}
    for k in METRICS:
        d = _describe_metric(runs, k)
        out[f"{k}_mean"] = d["mean"]
        out[f"{k}_ci95"] = d["ci95"]
        out[f"{k}_std"] = d["std"]
        out[f"{k}_per_seed"] = d["values"]
    out["flops_total"] = mean([r["flops"]["total"] for r in runs])
    out["flops"] = _mean_flops(runs)
    out["within_budget"] = bool(all(r["within_budget"] for r in runs))
    ratios = [r["budget_ratio"] for r in runs if r.get("budget_ratio") is not None]
    out["budget_ratio_max"] = max(ratios) if ratios else None  # measured FLOPs / naive's, worst seed
    seconds = [r["wall_seconds"] for r in runs if r.get("wall_seconds") is not None]
    out["wall_seconds_total"] = sum(seconds) if len(seconds) == len(runs) else None  # runs recorded before: None
    out["loss_matrix_mean"] = mean_over_seeds([r["loss_matrix"] for r in runs])
    per_task = np.asarray([r["forgetting_per_task"] for r in runs], np.float64).reshape(len(runs), -1)
    out["forgetting_per_task_mean"] = per_task.mean(axis=0).tolist()
    out["forgetting_per_task_ci95"] = [ci95(col) for col in per_task.T]
    out["skipped_steps"] = int(sum(r.get("skipped_steps", 0) for r in runs))
    out["plan"] = runs[0].get("plan")  # the split of the last task: new / replay / trimmed rows per step
    shares = [r.get("replay_share") for r in runs]
    if all(s is not None for s in shares):  # the replay share the runs realised (replay.share may vary it)
        out["replay_share"] = mean(shares)
    if all("source_forgetting" in r for r in runs):
        out["source_forgetting"] = source_forgetting_mean(runs)
    return out


def paired(runs: list[dict[str, Any]], reference: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Seed-paired comparison of `runs` against `reference` (None when no seed is shared).

    Average forgetting: ratio of means, paired difference with its 95% interval and p-value. New-task
    loss: `new_task_loss_rel` over the whole diagonal (as before) and, over tasks 2..T,
    `new_task_loss_excl_first_rel` and its paired difference (None when the runs have a single task)."""
    ref = {int(r["seed"]): with_metrics(r) for r in reference}
    pairs = [(with_metrics(r), ref[int(r["seed"])]) for r in runs if int(r["seed"]) in ref]
    if not pairs:
        return None
    diff = paired_difference([a["avg_forgetting"] for a, _ in pairs], [b["avg_forgetting"] for _, b in pairs])
    mine = mean([a["avg_forgetting"] for a, _ in pairs])
    theirs = mean([b["avg_forgetting"] for _, b in pairs])
    new_mine = mean([a["new_task_loss"] for a, _ in pairs])
    new_theirs = mean([b["new_task_loss"] for _, b in pairs])
    out = {
        "seeds": [int(a["seed"]) for a, _ in pairs],
        "forgetting_ratio": mine / theirs if theirs > 0 else float("nan"),
        "forgetting_diff_mean": diff["mean"],
        "forgetting_diff_ci95": diff["ci95"],
        "forgetting_diff_std": diff["std"],
        "forgetting_diff_p": diff["p_value"],
        "diff_ci_excludes_zero": diff["excludes_zero"],
        "new_task_loss_rel": new_mine / new_theirs - 1.0,
        "lower_on_seeds": int(np.sum(np.asarray(diff["values"]) < 0)),
        f"{NEW_TASK_LOSS}_rel": None,
        f"{NEW_TASK_LOSS}_diff_mean": None,
        f"{NEW_TASK_LOSS}_diff_ci95": None,
    }
    if all(a.get(NEW_TASK_LOSS) is not None and b.get(NEW_TASK_LOSS) is not None for a, b in pairs):
        a_new, b_new = [a[NEW_TASK_LOSS] for a, _ in pairs], [b[NEW_TASK_LOSS] for _, b in pairs]
        d_new = paired_difference(a_new, b_new)
        out[f"{NEW_TASK_LOSS}_rel"] = mean(a_new) / mean(b_new) - 1.0
        out[f"{NEW_TASK_LOSS}_diff_mean"] = d_new["mean"]
        out[f"{NEW_TASK_LOSS}_diff_ci95"] = d_new["ci95"]
    return out


def regime(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Whether a strategy still forgets clearly: mean avg forgetting over 5x its seed std."""
    af = describe([r["avg_forgetting"] for r in runs])
    sd = af["std"] if af["n"] > 1 else float("nan")  # one seed has no spread to compare with
    return {
        "avg_forgetting_mean": af["mean"],
        "avg_forgetting_std": sd,
        "forgetting_over_std": af["mean"] / sd if sd > 0 else float("nan"),
        "clearly_forgets": bool(af["n"] > 1 and af["mean"] > 5 * sd),
    }


def same_initial_losses(per_strategy: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Whether every strategy saw the same held-out data: same seed -> same init losses on every task.

    Data built from the environment (the `licenses` text domain reads installed packages) can
    change between runs made at different times; this names the tasks where it did. Runs that
    record data digests are checked first: differing digests raise `provenance.DataMismatch`."""
    provenance.check_runs(per_strategy, "same_initial_losses")
    by_seed: dict[int, list] = {}
    for runs in per_strategy.values():
        for r in runs:
            by_seed.setdefault(int(r["seed"]), []).append(np.asarray(r["init_losses"], np.float64))
    differ = sorted({int(j) for rows in by_seed.values() for row in rows[1:] for j in np.flatnonzero(row != rows[0])})
    return {"ok": not differ, "tasks_that_differ": differ}


# ---------------------------------------------------------------- power of the paired comparison


def paired_t_power(n: int, effect: float, sd: float, alpha: float = ALPHA) -> float:
    """Power of the two-sided paired t-test with `n` pairs to detect a mean difference `effect` when the
    differences have standard deviation `sd`: P(|T| > t_{1-alpha/2, n-1}) with T ~ noncentral t(n - 1,
    effect / (sd / sqrt(n))) (`scipy.stats.nct`, not the normal approximation)."""
    if n < 2:
        raise ValueError(f"n: the paired t-test needs at least 2 pairs, got {n}")
    if not (sd > 0 and math.isfinite(sd)):
        raise ValueError(f"sd: must be a positive finite number, got {sd}")
    df, nc = n - 1, abs(effect) / (sd / math.sqrt(n))
    t_crit = sps.t.ppf(1.0 - alpha / 2, df)
    return float(sps.nct.sf(t_crit, df, nc) + sps.nct.cdf(-t_crit, df, nc))


def pairs_for_power(effect: float, sd: float, power: float = POWER, alpha: float = ALPHA, max_n: int = 100_000):
    """The fewest pairs (>= 2) whose paired t-test reaches `power`; None when `effect` is 0 or it takes
    more than `max_n`. Power grows with n, so doubling then bisection finds it."""
    if effect == 0 or not math.isfinite(effect):
        return None
    if sd == 0:
        return 2
    if paired_t_power(2, effect, sd, alpha) >= power:
        return 2
    lo, hi = 2, 4  # power(lo) < target
    while paired_t_power(hi, effect, sd, alpha) < power:
        lo, hi = hi, 2 * hi
        if hi > 2 * max_n:
            return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if paired_t_power(mid, effect, sd, alpha) < power else (lo, mid)
    return hi if hi <= max_n else None


def power_analysis(a, reference, relative_effect: float = RELATIVE_EFFECT) -> dict[str, Any]:
    """Seeds needed to detect `relative_effect` x the reference's mean with 80% power at alpha 0.05.

    `a`, `reference`: per-seed average forgetting, paired by position (e.g. AMR's and uniform's). The paired
    sd is the observed sd of `a - reference`; below 2 pairs there is none and `seeds_needed` is None."""
    a, b = _sample(a), _sample(reference)
    if a.shape != b.shape:
        raise ValueError(f"paired values must have the same length, got {a.shape[0]} and {b.shape[0]}")
    n, ref_mean = int(a.shape[0]), mean(b)
    sd = std(a - b) if n > 1 else None
    effect = relative_effect * ref_mean
    needed = pairs_for_power(effect, sd) if sd is not None else None
    return {
        "paired_sd": sd,
        "reference_mean": ref_mean,
        "relative_effect": relative_effect,
        "effect": effect,
        "alpha": ALPHA,
        "power": POWER,
        "seeds_needed": needed,
        "seeds_run": n,
        "power_at_seeds_run": paired_t_power(n, effect, sd) if n > 1 and sd and effect else None,
        "enough_seeds": bool(needed is not None and n >= max(needed, MIN_SEEDS)),
    }


def _paired_values(runs, reference, key: str = "avg_forgetting") -> tuple[list, list, list]:
    ref = {int(r["seed"]): r for r in reference}
    pairs = [(r, ref[int(r["seed"])]) for r in runs if int(r["seed"]) in ref]
    return [int(a["seed"]) for a, _ in pairs], [a[key] for a, _ in pairs], [b[key] for _, b in pairs]


def power_of_runs(runs, reference) -> dict[str, Any] | None:
    """`power_analysis` of two strategies' finished runs, paired by seed (None when no seed is shared)."""
    seeds, a, b = _paired_values(runs, reference)
    return {**power_analysis(a, b), "seeds": seeds} if seeds else None
