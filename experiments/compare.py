"""Strategies x seeds x benchmarks at equal FLOPs, with 95% intervals over seeds.

    python -m experiments.compare                      # the full sweep (a few hours on 2 CPU cores)
    python -m experiments.compare --benchmarks=digits --strategies=uniform,amr
    python -m experiments.compare --smoke --workdir=/tmp/smoke --out=/tmp/smoke/results.json

Every (benchmark, strategy, seed) run is a `train_and_evaluate` run in
<workdir>/<benchmark>, so an interrupted sweep resumes where it stopped: finished runs
are loaded, an unfinished one continues from its checkpoint. Writes the combined JSON
(`--out`, default docs/results.json; benchmarks not in this sweep are kept from the
existing file) and prints the markdown table, also written next to the JSON.

Strategies: `none` (naive fine-tuning, the lower reference), `uniform` (the strong
baseline), `amr`, `mir` (classic replay selection, at equal FLOPs) and `joint` (training on
all data seen so far, the upper reference, over budget by design).
"""

import json
import os
import sys

from absl import app, flags, logging

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # configs/ from a checkout

from amr import report, seed_stats  # noqa: E402
from amr.experiment import train_and_evaluate  # noqa: E402
from configs import benchmarks  # noqa: E402

STRATEGIES = ("none", "uniform", "amr", "mir", "joint")
_BENCH = flags.DEFINE_list("benchmarks", list(benchmarks.BENCHMARKS), "Benchmarks to run (configs/benchmarks.py).")
_STRATEGIES = flags.DEFINE_list("strategies", list(STRATEGIES), "Strategies to run on every benchmark.")
_SEEDS = flags.DEFINE_list("seeds", None, "Seeds (default: each benchmark config's seeds).")
_WORKDIR = flags.DEFINE_string("workdir", "runs/compare", "Root of the per-benchmark workdirs.")
_OUT = flags.DEFINE_string("out", "docs/results.json", "The combined JSON; a markdown table is written next to it.")
_SMOKE = flags.DEFINE_bool("smoke", False, "One seed and a few steps per benchmark (CI).")
_REFERENCE = "uniform"


def benchmark_config(name: str, strategies, seeds, smoke: bool):
    config = benchmarks.get(name, smoke=smoke)
    config.strategies = tuple(strategies)
    config.baseline = _REFERENCE if _REFERENCE in strategies else ""
    if seeds is not None:
        config.seeds = tuple(int(s) for s in seeds)
    return config


def load_runs(workdir: str, strategy: str, seeds) -> list[dict]:
    runs = []
    for seed in seeds:
        with open(os.path.join(workdir, "runs", f"{strategy}_seed{seed}.json"), encoding="utf-8") as f:
            runs.append(json.load(f))
    return runs


def summarize_benchmark(workdir: str, config, tasks) -> dict:
    per = {s: load_runs(workdir, s, config.seeds) for s in config.strategies}
    entry = {"tasks": list(tasks), "seeds": [int(s) for s in config.seeds], "config": json.loads(
        config.to_json_best_effort()), "strategies": {}}
    for s, runs in per.items():
        e = seed_stats.summarize(runs)
        if s != _REFERENCE and _REFERENCE in per:
            e["vs_" + _REFERENCE] = seed_stats.paired(runs, per[_REFERENCE])
        entry["strategies"][s] = e
    if _REFERENCE in per:
        entry["regime"] = seed_stats.regime(per[_REFERENCE])
    return entry


def markdown(results: dict) -> str:
    parts = []
    for bench, entry in results["benchmarks"].items():
        rows = []
        for s, e in entry["strategies"].items():
            vs = e.get("vs_" + _REFERENCE)
            rows.append({
                "strategy": s + ("" if e["within_budget"] else " (over budget)"),
                "af": e["avg_forgetting_mean"], "af_ci": e["avg_forgetting_ci95"],
                "mf": e["max_forgetting_mean"], "mf_ci": e["max_forgetting_ci95"],
                "new": e["new_task_loss_mean"], "new_ci": e["new_task_loss_ci95"],
                "final": e["final_avg_loss_mean"], "final_ci": e["final_avg_loss_ci95"],
                "flops": f"{e['flops_total']:.3g}",
                "vs": "—" if not vs else (f"{vs['forgetting_ratio']:.2f}× (Δ {vs['forgetting_diff_mean']:+.4f} "
                                          f"± {vs['forgetting_diff_ci95']:.4f})"),
            })
        table = report.markdown_table(rows, [
            ("strategy", "strategy"), (("af", "af_ci"), "avg forgetting"), (("mf", "mf_ci"), "max forgetting"),
            (("new", "new_ci"), "new-task loss"), (("final", "final_ci"), "final avg loss"),
            ("flops", "total FLOPs"), ("vs", f"vs {_REFERENCE}: ratio (paired Δ ± CI95)")])
        tasks = " → ".join(entry["tasks"])
        parts.append(f"### {bench}: {tasks} (seeds {entry['seeds']}; mean ± 95% CI over seeds)\n\n{table}")
    return "\n\n".join(parts) + "\n"


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)
    for s in _STRATEGIES.value:
        if s not in STRATEGIES:
            raise app.UsageError(f"--strategies: unknown strategy {s!r}; expected some of {STRATEGIES}")
    configs = {b: benchmark_config(b, _STRATEGIES.value, _SEEDS.value, _SMOKE.value) for b in _BENCH.value}
    results = {"benchmarks": {}}
    if os.path.exists(_OUT.value):
        with open(_OUT.value, encoding="utf-8") as f:
            results = json.load(f)
    for bench, config in configs.items():
        workdir = os.path.join(_WORKDIR.value, bench)
        print(f"== {bench}: {config.strategies} x seeds {config.seeds} -> {workdir}", flush=True)
        out = train_and_evaluate(config, workdir)
        results["benchmarks"][bench] = summarize_benchmark(workdir, config, out["tasks"])
        results["machine"] = report.machine_description()
        report.write_json_atomic(_OUT.value, results)  # after every benchmark: nothing finished is lost
    table = markdown(results)
    with open(os.path.splitext(_OUT.value)[0] + ".md", "w", encoding="utf-8") as f:
        f.write(table)
    print(table)


if __name__ == "__main__":
    app.run(main)
