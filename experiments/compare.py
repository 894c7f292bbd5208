"""Strategies x seeds x benchmarks at equal FLOPs, with 95% intervals over seeds.

    python -m experiments.compare                      # the full sweep (a few hours on 2 CPU cores)
    python -m experiments.compare --benchmarks=digits --strategies=uniform,amr
    python -m experiments.compare --smoke --workdir=/tmp/smoke --out=/tmp/smoke/results.json

Every (benchmark, strategy, seed) run is a `train_and_evaluate` run in
<workdir>/<benchmark>, so an interrupted sweep resumes where it stopped: finished runs
are loaded, an unfinished one continues from its checkpoint. Writes the combined JSON
(`--out`, default docs/results.json; benchmarks not in this sweep are kept from the
existing file) and prints the markdown table, also written next to the JSON.

Besides the strategies: uniform at replay shares 1, 2, 4 and 8 of 32 (`--frontier`; an entry
`<strategy>@<k>/<n>` in `--strategies` runs any strategy at share k/n), and uniform at the split of
every strategy that trims new rows to pay for its selection (`--same_split`), and the headroom grid: fixed
allocations of the replay rows over past tasks (`--headroom`, `tilted@<tilt>`; the best of the grid is an
optimistic reference for any task-level allocation). An entry `<strategy>+<name>` runs a named variant of
`amr/runner/named_variants.py` (e.g. `amr+steady`), one idea at a time, paired with uniform by seed; names
stack (`amr+tail+ewc`: the methods' AMR with EWC), and two that set one key to different values fail before any run.

`--workers=2` splits the seeds over two processes pinned to their own cores (on this 2-core CPU host about
1.5x the runs per hour; `amr/runner/sweep_workers.py`), summarises each benchmark into `--out` as soon as every
worker has finished it, then all runs here as one sweep; with
`--split=entries` each worker runs every seed of every other entry instead, so an entry's programs compile in
one worker, not in each (a sweep of many entries, such as the companion methods').

Strategies: `none` (naive fine-tuning, the lower reference), `uniform` (the strong
baseline), `amr`, `mir` (classic replay selection, at equal FLOPs) and `joint` (training on
all data seen so far, the upper reference, over budget by design).
"""

import os
import sys
import time

from absl import app, flags, logging

_CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _CHECKOUT)  # configs/ from a checkout

from amr.runner import compile_cache, sweep, sweep_workers, variants  # noqa: E402
from configs import benchmarks  # noqa: E402

_BENCH = flags.DEFINE_list("benchmarks", list(benchmarks.BENCHMARKS), "Benchmarks to run (configs/benchmarks.py).")
_STRATEGIES = flags.DEFINE_list("strategies", list(sweep.STRATEGIES), "Strategies to run on every benchmark.")
_SEEDS = flags.DEFINE_list("seeds", None, "Seeds (default: each benchmark config's seeds).")
_WORKDIR = flags.DEFINE_string("workdir", "runs/compare", "Root of the per-benchmark workdirs.")
_OUT = flags.DEFINE_string("out", "docs/results.json", "The combined JSON; a markdown table is written next to it.")
_SMOKE = flags.DEFINE_bool("smoke", False, "One seed and a few steps per benchmark (CI).")
_FRONTIER = flags.DEFINE_list(
    "frontier",
    [str(k) for k in variants.FRONTIER_SHARES],
    "Uniform's replay shares in 32nds of the batch (the frontier; with uniform among the strategies; '' for none).",
)
_HEADROOM = flags.DEFINE_list(
    "headroom",
    [f"{t:g}" for t in variants.HEADROOM_TILTS],
    "Task tilts of the headroom grid: fixed allocations over past tasks (with uniform; '' for none).",
)
_WORKERS = flags.DEFINE_integer(
    "workers", 1, "Worker processes, each pinned to its own cores, splitting the seeds (amr.runner.sweep_workers)."
)
_SHARD = flags.DEFINE_string("shard", "", "i/n: this worker's share of the sweep (set by --workers; see --split).")
_SPLIT = flags.DEFINE_string(
    "split",
    "seeds",
    "How --workers share the sweep: 'seeds' (every worker runs every entry on every n-th seed) or 'entries' (every "
    "n-th entry on all seeds, so each entry compiles in one worker only; for sweeps of many entries).",
)
_SAME_SPLIT = flags.DEFINE_bool(
    "same_split", True, "Add uniform at the new/replay split of every strategy that trims new rows (with uniform)."
)


_COMPILE_CACHE = flags.DEFINE_string(
    "compile_cache",
    compile_cache.AUTO,
    "Persistent XLA compilation cache shared by the sweep's workers: 'auto' = <workdir>/compile_cache, '' = JAX's "
    "own setting, or a directory. A cache set through JAX_COMPILATION_CACHE_DIR wins.",
)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)
    compile_cache.enable(compile_cache.resolve(_COMPILE_CACHE.value, _WORKDIR.value))
    try:
        shard = sweep_workers.parse_shard(_SHARD.value)
        sweep.check_split(_SPLIT.value)  # before any worker starts
        if _WORKERS.value < 1:
            raise ValueError(f"workers: {_WORKERS.value} must be at least 1")
        if _WORKERS.value > 1:
            sweep_workers.clear_done(_WORKDIR.value, _WORKERS.value, _BENCH.value)
            sweep_workers.run_workers(
                "experiments.compare",
                sys.argv[1:],
                _WORKERS.value,
                _WORKDIR.value,
                path=_CHECKOUT,  # from any directory: the workers import experiments.compare from this checkout
                on_poll=(early := _EarlySummaries(_BENCH.value, _WORKERS.value)),
            )
            collected = sweep_workers.collect(_WORKDIR.value, _WORKERS.value)
            print(f"   workers done ({early.elapsed()}); collected {collected} finished runs", flush=True)
        results = _sweep(_BENCH.value, shard)
    except ValueError as err:
        raise app.UsageError(str(err)) from None
    print(sweep.markdown(results))


def _sweep(benches, shard) -> dict:
    return sweep.run_sweep(
        benches,
        _STRATEGIES.value,
        _SEEDS.value,
        _WORKDIR.value,
        _OUT.value,
        _SMOKE.value,
        get_config=benchmarks.get,
        frontier=[int(k) for k in _FRONTIER.value if k],
        same_split=_SAME_SPLIT.value,
        headroom=[float(t) for t in _HEADROOM.value if t],
        shard=shard,
        split=_SPLIT.value,
    )


class _EarlySummaries:
    """While the workers run: each benchmark every worker has finished is collected and summarised into --out
    at once (a long sweep's finished benchmarks can be committed before the rest ends). The final summary
    after the workers redoes all of them; one that fails here is reported and left to it."""

    def __init__(self, benches, workers: int):
        self.pending, self.workers = list(benches), workers
        self.started = time.monotonic()

    def elapsed(self) -> str:
        """Wall time since the workers started (a benchmark's place in the sweep's time budget)."""
        return (
            f"{(time.monotonic() - self.started) / 60:.1f} min after the workers started, {time.strftime('%H:%M:%S')}"
        )

    def __call__(self) -> None:
        done = sweep_workers.done_benchmarks(_WORKDIR.value, self.workers, self.pending)
        if done:
            sweep_workers.collect(_WORKDIR.value, self.workers)  # once for all of them: it copies every finished run
        for bench in done:
            self.pending.remove(bench)
            try:
                _sweep([bench], None)
            except Exception as err:  # noqa: BLE001 (the workers go on; the final summary retries it)
                print(f"   {bench}: summary before the end failed ({err!r}); the final summary retries", flush=True)
                continue
            print(f"   {bench}: every worker finished; summarised into {_OUT.value} ({self.elapsed()})", flush=True)


if __name__ == "__main__":
    app.run(main)
