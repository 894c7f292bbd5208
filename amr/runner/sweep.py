"""Strategies x seeds x benchmarks at equal FLOPs, summarised with 95% intervals over seeds.

The engine behind `experiments/compare.py`: every (benchmark, strategy, seed) run is a
`train_and_evaluate` run in <workdir>/<benchmark>, so an interrupted sweep resumes where it
stopped. `run_sweep` writes the combined JSON (schema in docs/RESULTS.md) and its markdown
table; benchmarks not in this sweep are kept from the existing file.

Besides the strategies, a sweep runs the entries of `amr.runner.variants`: uniform at other replay
shares (the frontier, `uniform@4/32`; any `<strategy>@<k>/<n>` in `strategies` too) and, for every
strategy whose runs trimmed new rows, uniform at that strategy's split (`uniform@split:<strategy>`).
Each benchmark's entry carries `amr.analysis.evidence`'s regime checks, power analysis and
same-split comparisons.

The benchmarks themselves are configs, which live in the repository, not in the installed
package: the caller passes `get_config(name, smoke) -> ConfigDict` (experiments/compare.py
passes `configs.benchmarks.get`).
"""

from __future__ import annotations

import copy
import json
import os

from amr.analysis import evidence, provenance, report
from amr.analysis import stats as seed_stats
from amr.replay import registry
from amr.runner import config_check, sweep_workers, variants
from amr.runner.experiment import train_and_evaluate

# The sweep's default strategies: the registered ones minus task_balanced, which the published
# comparison leaves out, and tilted, which runs as the headroom grid (any registered name can be passed).
STRATEGIES = tuple(s for s in registry.STRATEGIES if s not in ("task_balanced", "tilted"))
REFERENCE = "uniform"


def benchmark_config(get_config, name: str, strategies, seeds, smoke: bool, shard=None):
    """`get_config(name, smoke)` with this sweep's strategies, reference baseline and seeds.

    `shard=(i, n)` keeps the i-th of every n seeds (`amr.runner.sweep_workers`: one worker's share)."""
    config = get_config(name, smoke=smoke)
    config.strategies = tuple(strategies)
    config.baseline = REFERENCE if REFERENCE in strategies else ""
    if seeds is not None:
        config.seeds = tuple(int(s) for s in seeds)
    if shard is not None:
        i, n = shard
        config.seeds = tuple(config.seeds)[i::n]
    return config


def variant_config(config, variant: variants.Variant):
    """The benchmark's config running only `variant.strategy`, with the variant's overrides applied."""
    c = copy.deepcopy(config)
    c.strategies, c.baseline = (variant.strategy,), ""
    for key, value in variant.overrides.items():
        parent, _, last = key.rpartition(".")
        config_check.lookup(c, key)  # ConfigError naming a key the config does not have
        (config_check.lookup(c, parent) if parent else c)[last] = value
    return c


def summarize_benchmark(workdir: str, config, tasks, ran=()) -> dict:
    """The benchmark's sweep entry: per strategy and variant entry (`ran`) its summary and paired comparison
    with uniform, the data and code checks, and the evidence (regime checks, power, same-split controls)."""
    per = {s: seed_stats.load_runs(workdir, s, config.seeds) for s in config.strategies}
    for v in ran:
        per[v.name] = seed_stats.load_runs(variants.workdir(workdir, v), v.strategy, config.seeds)
    meta = {v.name: v.meta for v in ran}
    entry = {
        "tasks": list(tasks),
        "seeds": [int(s) for s in config.seeds],
        "config": json.loads(config.to_json_best_effort()),
        "strategies": {},
    }
    for s, runs in per.items():
        e = seed_stats.summarize(runs)
        if s in meta:
            e["variant"] = meta[s]
        if s != REFERENCE and REFERENCE in per:
            e["vs_" + REFERENCE] = seed_stats.paired(runs, per[REFERENCE])
        entry["strategies"][s] = e
    if REFERENCE in per:
        entry["regime"] = seed_stats.regime(per[REFERENCE])
    entry["data"] = provenance.check_runs(per, workdir)  # DataMismatch when a seed's runs saw different data
    entry["same_data"] = seed_stats.same_initial_losses(per)
    entry["same_code"] = provenance.same_code(per)  # one clean commit for every run, variants included
    entry.update(evidence.benchmark_evidence(entry))
    return entry


NEW = seed_stats.NEW_TASK_LOSS


def _or_na(x):
    return "n/a" if x is None else x  # results files written before the key existed


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
                    "new": _or_na(e.get(f"{NEW}_mean")),
                    "new_ci": e.get(f"{NEW}_ci95"),
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
                (("new", "new_ci"), "new-task loss (tasks 2..T)"),
                (("final", "final_ci"), "final avg loss"),
                ("flops", "total FLOPs"),
                ("vs", f"vs {REFERENCE}: ratio (paired Δ ± CI95)"),
            ],
        )
        tasks = " → ".join(entry["tasks"])
        parts.append(f"### {bench}: {tasks} (seeds {entry['seeds']}; mean ± 95% CI over seeds)\n\n{table}")
    return "\n\n".join(parts) + "\n"


def _plan_entries(strategies, configs, frontier, headroom=()) -> dict:
    """{benchmark: [Variant]}: each `<strategy>@<k>/<n>` and `<strategy>+<name>` entry and, with uniform, the frontier and the headroom
    grid; validated."""
    shares = [variants.parse_share(s, STRATEGIES) for s in strategies if "@" in s]
    shares += [variants.parse_named(s, STRATEGIES) for s in strategies if "@" not in s and variants.is_variant(s)]
    grid = variants.headroom(headroom)
    out = {}
    for bench, config in configs.items():
        with_uniform = REFERENCE in config.strategies
        found = (variants.frontier(config, frontier) + grid if with_uniform else []) + shares
        out[bench] = list({v.name: v for v in found}.values())
        for v in out[bench]:
            variants.check(variant_config(config, v), v)  # a bad override fails before any run
    return out


def _run_variant(config, bench_dir: str, variant, progress: bool) -> None:
    print(f"   {variant.name} -> {variants.workdir(bench_dir, variant)}", flush=True)
    c = variant_config(config, variant)
    variants.check(c, variant)
    train_and_evaluate(c, variants.workdir(bench_dir, variant), progress=progress)


def _same_split_controls(config, bench_dir: str, progress: bool, named=()) -> list:
    """Runs uniform at the split of every strategy, and of every named entry of `named`, whose finished runs
    trimmed new rows (a named entry's control keeps its replay share and schedule); returns the variants."""
    trimming = [(s, seed_stats.load_runs(bench_dir, s, config.seeds), None) for s in config.strategies]
    trimming += [
        (v.name, seed_stats.load_runs(variants.workdir(bench_dir, v), v.strategy, config.seeds), v.overrides)
        for v in named
    ]
    ran = []
    for name, runs, overrides in trimming:
        v = variants.same_split(name, runs, overrides)
        if v is not None:
            _run_variant(config, bench_dir, v, progress)
            variants.check_split(v, seed_stats.load_runs(variants.workdir(bench_dir, v), v.strategy, config.seeds))
            ran.append(v)
    return ran


def _named(entries) -> list:
    """The named entries (`amr+tail+probes`) among a benchmark's variants."""
    return [v for v in entries if v.meta.get("kind") == evidence.NAMED]


SPLITS = ("seeds", "entries")


def check_split(split: str) -> None:
    """ValueError naming `split` unless it is one of SPLITS (how workers share a sweep)."""
    if split not in SPLITS:
        raise ValueError(f"split: {split!r} is not one of {SPLITS}")


def _with_strategies(config, strategies: tuple):
    """A copy of `config` running only `strategies`; its baseline kept if among them (a config's baseline must be)."""
    c = copy.deepcopy(config)
    c.strategies = strategies
    c.baseline = config.baseline if config.baseline in strategies else ""
    return c


def _run_entry_shard(config, bench_dir: str, entries, shard, same_split: bool, progress: bool) -> None:
    """Worker i of n (`split="entries"`): every seed of the i-th of every n entries, in the sweep's order
    (plain strategies, then the frontier, headroom and named entries), and the same-split controls of its
    plain strategies and named entries. One worker compiles an entry's programs once for all its seeds."""
    i, n = shard
    names = list(config.strategies) + [v.name for v in entries]
    mine = set(names[i::n])
    c = _with_strategies(config, tuple(s for s in config.strategies if s in mine))
    if c.strategies:
        train_and_evaluate(c, bench_dir, progress=progress)
    for v in entries:
        if v.name in mine:
            _run_variant(config, bench_dir, v, progress)
    if same_split and REFERENCE in config.strategies:
        _same_split_controls(c, bench_dir, progress, named=[v for v in _named(entries) if v.name in mine])


def staggered(units: list, shard) -> list:
    """`units` rotated by worker i's share of n: worker 0 starts at the first, worker 1 of 2 at the middle.

    Workers of `split="seeds"` run the same entries on different seeds. In the same order they would compile
    each entry's programs at the same time, and neither finds the other's in the shared compilation cache;
    rotated, each compiles its first 1/n of the entries and, from then on, mostly reads what another worker
    compiled (`amr.runner.compile_cache`). The results do not depend on the order."""
    i, n = shard
    k = (i * len(units)) // n
    return list(units[k:]) + list(units[:k])


def _run_staggered(config, bench_dir: str, entries, shard, progress: bool) -> None:
    """A seed shard's plain strategies (one at a time) and entries, in `staggered` order."""
    units = [("plain", s) for s in config.strategies] + [("entry", v) for v in entries]
    for kind, unit in staggered(units, shard):
        if kind == "entry":
            _run_variant(config, bench_dir, unit, progress)
            continue
        train_and_evaluate(_with_strategies(config, (unit,)), bench_dir, progress=progress)


def _is_shard(shard) -> bool:
    """(i, n) with integers 0 <= i < n."""
    ok = isinstance(shard, (tuple, list)) and len(shard) == 2 and all(isinstance(k, int) for k in shard)
    return ok and 0 <= shard[0] < shard[1]


def run_sweep(
    benches,
    strategies,
    seeds,
    workdir: str,
    out: str,
    smoke: bool = False,
    progress: bool = True,
    *,
    get_config,
    frontier=variants.FRONTIER_SHARES,
    same_split: bool = True,
    headroom=variants.HEADROOM_TILTS,
    shard=None,
    split: str = "seeds",
) -> dict:
    """Runs (or resumes) every benchmark and writes `out` and its markdown table; returns the combined dict.

    `get_config(name, smoke=...)` returns a benchmark's config (ValueError for an unknown name).
    `frontier`: uniform's extra replay shares in 32nds of the batch (with uniform among the strategies);
    `same_split`: add uniform at the split of every strategy that trimmed new rows (with uniform);
    `headroom`: the task tilts of the headroom grid (`tilted@<tilt>`, with uniform);
    `shard=(i, n)`: one worker of `amr.runner.sweep_workers`: with `split="seeds"` the i-th of every n seeds
    (summarised like a sweep); with `split="entries"` every seed of the i-th of every n entries (not summarised:
    the caller's sweep summarises all workers' runs)."""
    plain = [s for s in strategies if not variants.is_variant(s)]
    for s in plain:
        if s not in registry.STRATEGIES:
            raise ValueError(f"strategies: unknown strategy {s!r}; expected some of {registry.STRATEGIES}")
    if not plain:
        raise ValueError(f"strategies: at least one plain strategy of {STRATEGIES} besides {list(strategies)}")
    if shard is not None and not _is_shard(shard):
        raise ValueError(f"shard: {shard!r} is not (i, n) with 0 <= i < n")
    check_split(split)
    by_entries = shard is not None and split == "entries"
    seed_shard = None if by_entries else shard
    configs = {
        b: benchmark_config(get_config, b, plain, seeds, smoke, seed_shard) for b in benches
    }  # bad names fail first
    for b in [b for b, c in configs.items() if seed_shard is not None and not c.seeds]:
        print(f"== {b}: no seed in shard {shard[0]}/{shard[1]}; nothing to run", flush=True)
        sweep_workers.mark_done(os.path.join(workdir, b), shard)  # its (empty) share of b is done
        del configs[b]  # a worker of more workers than seeds: nothing to run or summarise
    entries = _plan_entries(strategies, configs, frontier, headroom)
    results = {"benchmarks": {}}
    if os.path.exists(out):
        with open(out, encoding="utf-8") as f:
            results = json.load(f)
    for bench, config in configs.items():
        bench_dir = os.path.join(workdir, bench)
        print(f"== {bench}: {config.strategies} x seeds {config.seeds} -> {bench_dir}", flush=True)
        if by_entries:
            _run_entry_shard(config, bench_dir, entries[bench], shard, same_split, progress)
            sweep_workers.mark_done(bench_dir, shard)
            continue
        if seed_shard is not None and seed_shard[1] > 1:
            _run_staggered(config, bench_dir, entries[bench], seed_shard, progress)
            finished = train_and_evaluate(config, bench_dir, progress=progress)  # loads the runs just made
        else:
            finished = train_and_evaluate(config, bench_dir, progress=progress)
            for v in entries[bench]:
                _run_variant(config, bench_dir, v, progress)
        ran = list(entries[bench])
        if same_split and REFERENCE in config.strategies:
            ran += _same_split_controls(config, bench_dir, progress, named=_named(entries[bench]))
        results["benchmarks"][bench] = summarize_benchmark(bench_dir, config, finished["tasks"], ran)
        results["machine"] = report.machine_description()
        results["environment"] = provenance.environment()
        report.write_json_atomic(out, results)  # after every benchmark: nothing finished is lost
        if shard is not None:
            sweep_workers.mark_done(bench_dir, shard)  # after its runs and summary: the caller may summarise b
    with open(os.path.splitext(out)[0] + ".md", "w", encoding="utf-8") as f:
        f.write(markdown(results))
    return results
