"""The scanned chunk against a Python loop of jitted single steps (same S steps, same strategy).

`scan`: one call of the strategy's chunk function over S steps (`lax.scan` inside one
jit: presample, S train steps, observe). `loop`: S calls of the same function built with
`ChunkSpec(steps=1)` (presample, 1 step, observe per call), each fed its step's rows; the
host dispatches S programs instead of one. Both on the quickstart config's model, batch
and memory (see bench_overhead); inputs on device before the clock starts; medians over
interleaved rounds after compile.

Prints ONE JSON object on stdout:
    python -m experiments.bench_loop [--reps 20] [--strategy amr] [--config configs/quickstart.py]
Key: scan_speedup = loop seconds / scan seconds for the same S steps.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # configs/ from a checkout

import jax  # noqa: E402

from amr.runner.experiment import prepare  # noqa: E402
from amr.train import chunk as step_lib  # noqa: E402
from amr.train.strategy import make_strategy  # noqa: E402
from experiments.bench_overhead import device_chunks, initial_state, load_config, log  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="configs/quickstart.py")
    ap.add_argument("--strategy", default="amr", choices=("amr", "uniform", "none"))
    ap.add_argument("--reps", type=int, default=20, help="timed rounds (median; >= 5)")
    ap.add_argument("--warmup", type=int, default=2)
    args = ap.parse_args(argv)
    if args.reps < 5:
        ap.error("--reps must be >= 5")
    cfg = load_config(args.config)
    ctx = prepare(cfg)
    S = cfg.train.chunk_size
    strategy = make_strategy(ctx, args.strategy)
    plan, scan_fn = strategy.for_task(len(ctx.tasks) - 1)  # what a run uses on its last task
    step_fn = step_lib.make_chunk_fn(
        ctx.model,
        strategy.tx,
        strategy.policy,
        ctx.mesh,
        step_lib.ChunkSpec(1, plan.new_batch, plan.replay_batch, plan.probe_samples),
    )
    chunks = device_chunks(ctx, plan.new_batch, S, 4)
    steps = [[(new[s : s + 1], ids[s : s + 1]) for s in range(S)] for new, ids in chunks]  # device slices, [1, B]
    steps = jax.block_until_ready(steps)
    state = {"scan": initial_state(ctx, strategy), "loop": initial_state(ctx, strategy)}

    def run_scan(i):
        new, ids = chunks[i % len(chunks)]
        start = time.perf_counter()
        state["scan"], m = scan_fn(state["scan"], new, ids, ctx.memory)
        jax.block_until_ready((state["scan"], m))
        return time.perf_counter() - start

    def run_loop(i):
        start = time.perf_counter()
        for new, ids in steps[i % len(steps)]:
            state["loop"], m = step_fn(state["loop"], new, ids, ctx.memory)
        jax.block_until_ready((state["loop"], m))
        return time.perf_counter() - start

    log(f"compiling scan (S={S}) and single step ...")
    for i in range(args.warmup):
        run_scan(i), run_loop(i)
    times = {"scan": [], "loop": []}
    for r in range(args.reps):
        for name in ("scan", "loop") if r % 2 == 0 else ("loop", "scan"):
            times[name].append((run_scan if name == "scan" else run_loop)(r))
    scan_s, loop_s = statistics.median(times["scan"]), statistics.median(times["loop"])
    print(
        json.dumps(
            {
                "scan_speedup": loop_s / scan_s,
                "scan_s": scan_s,
                "loop_s": loop_s,
                "steps": S,
                "strategy": args.strategy,
                "batch": {"new": plan.new_batch, "replay": plan.replay_batch},
                "reps": args.reps,
                "devices": ctx.num_devices,
                "backend": jax.default_backend(),
                "config": args.config,
                "jax": jax.__version__,
                "python": platform.python_version(),
            }
        )
    )


if __name__ == "__main__":
    main()
