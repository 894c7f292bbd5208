"""Ablations of AMR on one benchmark: one knob at a time, everything else at the defaults.

    python -m experiments.ablate                          # all ablations on the default benchmark
    python -m experiments.ablate --ablations=tau,reward --benchmark=text
    python -m experiments.ablate --smoke --workdir=/tmp/abl --out=/tmp/abl/ablations.json

Each point is a `train_and_evaluate` run of `amr` (and `uniform` where the knob changes
the baseline too, or at the defaults) in <workdir>/<benchmark>/<point>, so an interrupted
sweep resumes. Points with the same effective config share a workdir. Writes
`--out` (default docs/ablations.json; other ablations and benchmarks already in it are kept)
and one plot per ablation next to it (ablation_<benchmark>_<name>.png).
"""

import json
import os
import sys

from absl import app, flags, logging

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # configs/ from a checkout

from amr import plots, report, seed_stats  # noqa: E402
from amr.experiment import train_and_evaluate  # noqa: E402
from configs import benchmarks  # noqa: E402

# name -> (x-axis label, [(point label, {config key: value})], strategies at every point)
_EMA = [(f"EMA α={a}", {"bandit.estimator": "ema", "bandit.alpha": a}) for a in (0.1, 0.3, 0.7)]
_WINDOW = [(f"window W={w}", {"bandit.estimator": "window", "bandit.window": w}) for w in (4, 16, 64)]
ABLATIONS = {
    "tau": ("Boltzmann temperature τ", [(str(t), {"bandit.tau": t}) for t in (0.25, 0.5, 1.0, 2.0, 4.0)], ("amr",)),
    "estimator": ("reward estimate", _EMA + _WINDOW, ("amr",)),
    "clusters": ("clusters per task (1 = task arms)",
                 [(str(k), {"replay.clusters_per_task": k}) for k in (1, 2, 4, 8)], ("amr",)),
    "chunk": ("chunk size S (steps between bandit updates)",
              [(str(s), {"train.chunk_size": s}) for s in (2, 8, 32)], ("amr",)),
    "reward": ("reward", [(r, {"replay.reward": r}) for r in ("loss", "loss_increase")], ("amr",)),
    "probes": ("probe rows per chunk (paid by trimming new rows)",
               [(str(p), {"replay.probe_samples": p}) for p in (0, 8, 32)], ("amr",)),
    "fraction": ("replay fraction of the batch",
                 [(f"{n}/32", {"replay.fraction": n / 32}) for n in (1, 2, 3)], ("uniform", "amr")),
    "zero_cost": ("zero-cost trimming (with 32 probes and 4 clusters per task)",
                  [(f"zero_cost={z}", {"replay.zero_cost": z, "replay.probe_samples": 32,
                                       "replay.clusters_per_task": 4}) for z in (True, False)], ("amr",)),
}
_BENCH = flags.DEFINE_string("benchmark", "text", "Benchmark to ablate on (configs/benchmarks.py).")
_ABL = flags.DEFINE_list("ablations", list(ABLATIONS), "Ablations to run.")
_SEEDS = flags.DEFINE_list("seeds", None, "Seeds (default: the benchmark config's seeds).")
_WORKDIR = flags.DEFINE_string("workdir", "runs/ablate", "Root of the per-point workdirs.")
_OUT = flags.DEFINE_string("out", "docs/ablations.json", "Combined ablation JSON; plots are written next to it.")
_SMOKE = flags.DEFINE_bool("smoke", False, "One seed and a few steps (CI).")


def _get(config, key):
    node = config
    for part in key.split("."):
        node = node[part]
    return node


def _set(config, key, value):
    *path, last = key.split(".")
    node = config
    for part in path:
        node = node[part]
    node[last] = value


def point_config(bench: str, overrides: dict, strategies, seeds, smoke: bool):
    config = benchmarks.get(bench, smoke=smoke)
    for key, value in overrides.items():
        try:
            _get(config, key)
        except KeyError:
            raise ValueError(f"ablation override {key!r}: no such config key") from None
        _set(config, key, value)
    if smoke and config.train.steps_per_task % config.train.chunk_size:
        config.train.steps_per_task = 2 * config.train.chunk_size
    config.strategies = tuple(strategies)
    config.baseline = "uniform" if "uniform" in strategies else ""
    if seeds is not None:
        config.seeds = tuple(int(s) for s in seeds)
    return config


def point_name(bench: str, overrides: dict, smoke: bool) -> str:
    """A workdir name from the overrides that differ from the defaults ('default' when none do)."""
    base = benchmarks.get(bench, smoke=smoke)
    changed = {k: v for k, v in sorted(overrides.items()) if _get(base, k) != v}
    if not changed:
        return "default"
    return ",".join(f"{k.split('.')[-1]}={v}" for k, v in changed.items())


def run_point(bench, overrides, strategies, seeds, smoke, root) -> dict:
    name = point_name(bench, overrides, smoke)
    if name == "default":
        strategies = ("uniform", "amr")  # the reference line of every plot
    config = point_config(bench, overrides, strategies, seeds, smoke)
    workdir = os.path.join(root, bench, name)
    train_and_evaluate(config, workdir, progress=True)
    runs = {s: [json.load(open(os.path.join(workdir, "runs", f"{s}_seed{k}.json"), encoding="utf-8"))
                for k in config.seeds] for s in strategies}
    out = {"workdir": name, "overrides": overrides}
    for s, rs in runs.items():
        out[s] = seed_stats.summarize(rs)
        out[s].pop("loss_matrix_mean")
    if "uniform" in runs and "amr" in runs:
        out["amr"]["vs_uniform"] = seed_stats.paired(runs["amr"], runs["uniform"])
    return out


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)
    for a in _ABL.value:
        if a not in ABLATIONS:
            raise app.UsageError(f"--ablations: unknown ablation {a!r}; expected some of {sorted(ABLATIONS)}")
    bench, root = _BENCH.value, _WORKDIR.value
    for _, points, _ in ABLATIONS.values():  # bad keys fail here, before any run
        for _, overrides in points:
            point_config(bench, overrides, ("amr",), _SEEDS.value, _SMOKE.value)
    results = {}
    if os.path.exists(_OUT.value):
        with open(_OUT.value, encoding="utf-8") as f:
            results = json.load(f)
    default = run_point(bench, {}, ("uniform", "amr"), _SEEDS.value, _SMOKE.value, root)
    entry = results.setdefault(bench, {})
    for abl in _ABL.value:
        xlabel, points, strategies = ABLATIONS[abl]
        print(f"== ablation {abl} on {bench}", flush=True)
        rows = [dict(label=label, **run_point(bench, ov, strategies, _SEEDS.value, _SMOKE.value, root))
                for label, ov in points]
        entry[abl] = {"xlabel": xlabel, "points": rows,
                      "uniform_default": default["uniform"]["avg_forgetting_mean"]}
        results["machine"] = report.machine_description()
        report.write_json_atomic(_OUT.value, results)
        plot_ablation(bench, abl, entry[abl], os.path.dirname(os.path.abspath(_OUT.value)))
    print(json.dumps({a: [(p["label"], round(p["amr"]["avg_forgetting_mean"], 4)) for p in entry[a]["points"]]
                      for a in _ABL.value}, indent=1))


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
    return plots.plot_ablation(labels, mean, ci, os.path.join(out_dir, f"ablation_{bench}_{abl}.png"),
                               xlabel=entry["xlabel"], ylabel="AMR average forgetting (mean ± 95% CI)",
                               title=f"{bench}: {abl}", baselines=baselines)


if __name__ == "__main__":
    app.run(main)
