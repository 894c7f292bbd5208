"""Strategies x seeds x benchmarks at equal FLOPs, summarised with 95% intervals over seeds.

The engine behind `experiments/compare.py`: every (benchmark, strategy, seed) run is a
`train_and_evaluate` run in <workdir>/<benchmark>, so an interrupted sweep resumes where it
stopped. `run_sweep` writes the combined JSON (schema in docs/RESULTS.md) and its markdown
table; benchmarks not in this sweep are kept from the existing file.

The benchmarks themselves are configs, which live in the repository, not in the installed
package: the caller passes `get_config(name, smoke) -> ConfigDict` (experiments/compare.py
passes `configs.benchmarks.get`).
"""

from __future__ import annotations

import json
import os

from amr.analysis import provenance, report
from amr.analysis import stats as seed_stats
from amr.replay import registry
from amr.runner.experiment import train_and_evaluate

# The sweep's default strategies: the registered ones minus task_balanced, which the published
# comparison leaves out (any registered name can be passed explicitly).
STRATEGIES = tuple(s for s in registry.STRATEGIES if s != "task_balanced")
REFERENCE = "uniform"


def benchmark_config(get_config, name: str, strategies, seeds, smoke: bool):
    """`get_config(name, smoke)` with this sweep's strategies, reference baseline and seeds."""
    config = get_config(name, smoke=smoke)
    config.strategies = tuple(strategies)
    config.baseline = REFERENCE if REFERENCE in strategies else ""
    if seeds is not None:
        config.seeds = tuple(int(s) for s in seeds)
    return config


def summarize_benchmark(workdir: str, config, tasks) -> dict:
    per = {s: seed_stats.load_runs(workdir, s, config.seeds) for s in config.strategies}
    entry = {
        "tasks": list(tasks),
        "seeds": [int(s) for s in config.seeds],
        "config": json.loads(config.to_json_best_effort()),
        "strategies": {},
    }
    for s, runs in per.items():
        e = seed_stats.summarize(runs)
        if s != REFERENCE and REFERENCE in per:
            e["vs_" + REFERENCE] = seed_stats.paired(runs, per[REFERENCE])
        entry["strategies"][s] = e
    if REFERENCE in per:
        entry["regime"] = seed_stats.regime(per[REFERENCE])
    entry["data"] = provenance.check_runs(per, workdir)  # DataMismatch when a seed's runs saw different data
    entry["same_data"] = seed_stats.same_initial_losses(per)
    return entry


def _ratio(x) -> str:
    return "n/a" if x is None or x != x else f"{x:.2f}×"  # undefined when the reference does not forget


def markdown(results: dict) -> str:
    parts = []
    for bench, entry in results["benchmarks"].items():
        rows = []
        for s, e in entry["strategies"].items():
            vs = e.get("vs_" + REFERENCE)
            rows.append(
                {
                    "strategy": s + ("" if e["within_budget"] else " (over budget)"),
                    "af": e["avg_forgetting_mean"],
                    "af_ci": e["avg_forgetting_ci95"],
                    "mf": e["max_forgetting_mean"],
                    "mf_ci": e["max_forgetting_ci95"],
                    "new": e["new_task_loss_mean"],
                    "new_ci": e["new_task_loss_ci95"],
                    "final": e["final_avg_loss_mean"],
                    "final_ci": e["final_avg_loss_ci95"],
                    "flops": f"{e['flops_total']:.3g}",
                    "vs": "—"
                    if not vs
                    else (
                        f"{_ratio(vs['forgetting_ratio'])} (Δ {vs['forgetting_diff_mean']:+.4f} "
                        f"± {vs['forgetting_diff_ci95']:.4f})"
                    ),
                }
            )
        table = report.markdown_table(
            rows,
            [
                ("strategy", "strategy"),
                (("af", "af_ci"), "avg forgetting"),
                (("mf", "mf_ci"), "max forgetting"),
                (("new", "new_ci"), "new-task loss"),
                (("final", "final_ci"), "final avg loss"),
                ("flops", "total FLOPs"),
                ("vs", f"vs {REFERENCE}: ratio (paired Δ ± CI95)"),
            ],
        )
        tasks = " → ".join(entry["tasks"])
        parts.append(f"### {bench}: {tasks} (seeds {entry['seeds']}; mean ± 95% CI over seeds)\n\n{table}")
    return "\n\n".join(parts) + "\n"


def run_sweep(
    benches, strategies, seeds, workdir: str, out: str, smoke: bool = False, progress: bool = True, *, get_config
) -> dict:
    """Runs (or resumes) every benchmark and writes `out` and its markdown table; returns the combined dict.

    `get_config(name, smoke=...)` returns a benchmark's config (ValueError for an unknown name)."""
    for s in strategies:
        if s not in registry.STRATEGIES:
            raise ValueError(f"strategies: unknown strategy {s!r}; expected some of {registry.STRATEGIES}")
    configs = {b: benchmark_config(get_config, b, strategies, seeds, smoke) for b in benches}  # bad names fail first
    results = {"benchmarks": {}}
    if os.path.exists(out):
        with open(out, encoding="utf-8") as f:
            results = json.load(f)
    for bench, config in configs.items():
        bench_dir = os.path.join(workdir, bench)
        print(f"== {bench}: {config.strategies} x seeds {config.seeds} -> {bench_dir}", flush=True)
        finished = train_and_evaluate(config, bench_dir, progress=progress)
        results["benchmarks"][bench] = summarize_benchmark(bench_dir, config, finished["tasks"])
        results["machine"] = report.machine_description()
        results["environment"] = provenance.environment()
        report.write_json_atomic(out, results)  # after every benchmark: nothing finished is lost
    with open(os.path.splitext(out)[0] + ".md", "w", encoding="utf-8") as f:
        f.write(markdown(results))
    return results
