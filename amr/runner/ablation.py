"""Ablations of AMR: one knob at a time on one benchmark, everything else at the defaults.

The engine behind `experiments/ablate.py`. Each point is a `train_and_evaluate` run of
`amr` (plus `uniform` where the knob moves the baseline too, and at the defaults) in
<root>/<benchmark>/<point>; points with the same effective config share a workdir, and an
interrupted sweep resumes.

The benchmark configs live in the repository, not in the installed package: the caller
passes `get_config(name, smoke) -> ConfigDict` (experiments/ablate.py passes
`configs.benchmarks.get`).
"""

from __future__ import annotations

import json
import os

from amr.analysis import plots, report
from amr.analysis import stats as seed_stats
from amr.runner import config_check
from amr.runner.experiment import train_and_evaluate

# name -> (x-axis label, [(point label, {config key: value})], strategies at every point)
_EMA = [(f"EMA α={a}", {"bandit.estimator": "ema", "bandit.alpha": a}) for a in (0.1, 0.3, 0.7)]
_WINDOW = [(f"window W={w}", {"bandit.estimator": "window", "bandit.window": w}) for w in (4, 16, 64)]
ABLATIONS = {
    "tau": ("Boltzmann temperature τ", [(str(t), {"bandit.tau": t}) for t in (0.25, 0.5, 1.0, 2.0, 4.0)], ("amr",)),
    "estimator": ("reward estimate", _EMA + _WINDOW, ("amr",)),
    "clusters": (
        "clusters per task (1 = task arms)",
        [(str(k), {"replay.clusters_per_task": k}) for k in (1, 2, 4, 8)],
        ("amr",),
    ),
    "chunk": (
        "chunk size S (steps between bandit updates)",
        [(str(s), {"train.chunk_size": s}) for s in (2, 8, 40)],
        ("amr",),
    ),
    "reward": ("reward", [(r, {"replay.reward": r}) for r in ("loss", "loss_increase")], ("amr",)),
    "probes": (
        "probe rows per chunk (paid by trimming new rows)",
        [(str(p), {"replay.probe_samples": p}) for p in (0, 8, 32)],
        ("amr",),
    ),
    "fraction": (
        "replay fraction of the batch",
        [(f"{n}/32", {"replay.fraction": n / 32}) for n in (1, 2, 3)],
        ("uniform", "amr"),
    ),
    "zero_cost": (
        "zero-cost trimming (with 32 probes and 4 clusters per task)",
        [
            (f"zero_cost={z}", {"replay.zero_cost": z, "replay.probe_samples": 32, "replay.clusters_per_task": 4})
            for z in (True, False)
        ],
        ("amr",),
    ),
}


def _set(config, key, value):
    parent, _, last = key.rpartition(".")
    (config_check.lookup(config, parent) if parent else config)[last] = value


def point_config(get_config, bench: str, overrides: dict, strategies, seeds, smoke: bool):
    """`get_config(bench, smoke)` with `overrides` (dotted keys) applied, and the point's strategies and seeds."""
    config = get_config(bench, smoke=smoke)
    for key, value in overrides.items():
        try:
            config_check.lookup(config, key)
        except config_check.ConfigError:
            raise ValueError(f"ablation override {key!r}: no such config key") from None
        _set(config, key, value)
    if smoke and config.train.steps_per_task % config.train.chunk_size:
        config.train.steps_per_task = 2 * config.train.chunk_size
    config.strategies = tuple(strategies)
    config.baseline = "uniform" if "uniform" in strategies else ""
    if seeds is not None:
        config.seeds = tuple(int(s) for s in seeds)
    return config


def point_name(get_config, bench: str, overrides: dict, smoke: bool) -> str:
    """A workdir name from the overrides that differ from the defaults ('default' when none do)."""
    base = get_config(bench, smoke=smoke)
    changed = {k: v for k, v in sorted(overrides.items()) if config_check.lookup(base, k) != v}
    if not changed:
        return "default"
    return ",".join(f"{k.split('.')[-1]}={v}" for k, v in changed.items())


def run_point(get_config, bench, overrides, strategies, seeds, smoke, root, progress: bool = True) -> dict:
    name = point_name(get_config, bench, overrides, smoke)
    if name == "default":
        strategies = ("uniform", "amr")  # the reference line of every plot
    config = point_config(get_config, bench, overrides, strategies, seeds, smoke)
    workdir = os.path.join(root, bench, name)
    train_and_evaluate(config, workdir, progress=progress)
    runs = {s: seed_stats.load_runs(workdir, s, config.seeds) for s in strategies}
    out = {"workdir": name, "overrides": overrides}
    for s, rs in runs.items():
        out[s] = seed_stats.summarize(rs)
        out[s].pop("loss_matrix_mean")
    if "uniform" in runs and "amr" in runs:
        out["amr"]["vs_uniform"] = seed_stats.paired(runs["amr"], runs["uniform"])
    return out


def run_ablations(
    bench: str, ablations, seeds, root: str, out: str, smoke: bool = False, progress: bool = True, *, get_config
) -> dict:
    """Runs (or resumes) the ablations on `bench`; writes `out` and one plot per ablation; returns `out`'s dict.

    `get_config(name, smoke=...)` returns a benchmark's config (ValueError for an unknown name)."""
    for a in ablations:
        if a not in ABLATIONS:
            raise ValueError(f"ablations: unknown ablation {a!r}; expected some of {sorted(ABLATIONS)}")
    for a in ablations:  # bad keys fail here, before any run
        for _, overrides in ABLATIONS[a][1]:
            point_config(get_config, bench, overrides, ("amr",), seeds, smoke)
    results = {}
    if os.path.exists(out):
        with open(out, encoding="utf-8") as f:
            results = json.load(f)
    default = run_point(get_config, bench, {}, ("uniform", "amr"), seeds, smoke, root, progress)
    entry = results.setdefault("benchmarks", {}).setdefault(bench, {})
    for abl in ablations:
        xlabel, points, strategies = ABLATIONS[abl]
        print(f"== ablation {abl} on {bench}", flush=True)
        rows = [
            dict(label=label, **run_point(get_config, bench, ov, strategies, seeds, smoke, root, progress))
            for label, ov in points
        ]
        entry[abl] = {
            "xlabel": xlabel,
            "points": rows,
            "uniform_default": default["uniform"]["avg_forgetting_mean"],
            "amr_default": default["amr"]["avg_forgetting_mean"],
        }
        results["machine"] = report.machine_description()
        report.write_json_atomic(out, results)
        plot_ablation(bench, abl, entry[abl], os.path.dirname(os.path.abspath(out)))
    return results


def plot_ablation(bench: str, abl: str, entry: dict, out_dir: str) -> str:
    labels = [p["label"] for p in entry["points"]]
    mean = [p["amr"]["avg_forgetting_mean"] for p in entry["points"]]
    ci = [p["amr"]["avg_forgetting_ci95"] for p in entry["points"]]
    baselines = {"uniform (defaults)": entry["uniform_default"]}
    if all("uniform" in p for p in entry["points"]):  # the knob moves the baseline too: show it per point
        baselines = {}
        mean_u = [p["uniform"]["avg_forgetting_mean"] for p in entry["points"]]
        for label, m in zip(labels, mean_u):
            baselines[f"uniform at {label}"] = m
    return plots.plot_ablation(
        labels,
        mean,
        ci,
        os.path.join(out_dir, f"ablation_{bench}_{abl}.png"),
        xlabel=entry["xlabel"],
        ylabel="AMR average forgetting (mean ± 95% CI)",
        title=f"{bench}: {abl}",
        baselines=baselines,
    )
