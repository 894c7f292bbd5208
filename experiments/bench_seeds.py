"""N seeds of one strategy's replay chunk run one after another against one vmapped program.

`sequential`: the strategy's chunk (as a run calls it on its last task) once per seed, N programs
per round. `vmapped`: the same chunk built with `seed_axis=True`, one program over the stacked
states of the N seeds (`amr.train.chunk.stack_seeds`). Same rows, same number of chunks; inputs on
device before the clock starts; medians over interleaved rounds after compile. `gflops_per_s` is the
measured ledger's FLOPs of one chunk (XLA's cost analysis) times N over the seconds, beside one large
matmul's rate (`gflops_per_s_matmul_1024`): how close one seed's program already is to what the machine
can do. Vmapping pays where one seed leaves the machine idle (dispatch-bound: small models on an
accelerator). On XLA:CPU a seed axis becomes a batch dimension of the same small kernels, which run at the
same rate per FLOP, so the speed-up there is about 1 even far below the matmul rate.

Prints ONE JSON object on stdout:
    python -m experiments.bench_seeds [--seeds 8] [--config configs/digit_styles.py] [--strategy uniform]
Key: vmapped_speedup = sequential seconds / vmapped seconds for the same N seeds' chunks.
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
import numpy as np  # noqa: E402

from amr.runner.experiment import prepare  # noqa: E402
from amr.train import chunk as step_lib  # noqa: E402
from amr.train.strategy import make_strategy  # noqa: E402
from experiments.bench_overhead import device_chunks, initial_state, load_config, log  # noqa: E402


def matmul_gflops_per_s(n: int = 1024, reps: int = 5) -> float:
    """The machine's arithmetic throughput on one large f32 matmul (the ceiling vmapping could reach)."""
    a = jax.numpy.ones((n, n), jax.numpy.float32)
    f = jax.jit(lambda x: x @ x)
    jax.block_until_ready(f(a))
    best = min(_timed(lambda: f(a)) for _ in range(reps))
    return 2 * n**3 / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - start


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="configs/digit_styles.py")
    ap.add_argument("--strategy", default="uniform", choices=("uniform", "amr", "none"))
    ap.add_argument("--seeds", type=int, default=8, help="seeds N (>= 2)")
    ap.add_argument("--chunks", type=int, default=4, help="chunks per seed per round")
    ap.add_argument("--reps", type=int, default=5, help="timed rounds (median; >= 3)")
    args = ap.parse_args(argv)
    if args.seeds < 2 or args.reps < 3 or args.chunks < 1:
        ap.error("--seeds must be >= 2, --reps >= 3, --chunks >= 1")
    cfg = load_config(args.config)
    ctx = prepare(cfg)
    strategy = make_strategy(ctx, args.strategy)
    t_last = len(ctx.tasks) - 1
    plan, single = strategy.for_task(t_last)
    spec = step_lib.ChunkSpec(cfg.train.chunk_size, plan.new_batch, plan.replay_batch, plan.probe_samples)
    vmapped = step_lib.make_chunk_fn(ctx.model, strategy.tx, strategy.policy, ctx.mesh, spec, seed_axis=True)
    N = args.seeds
    inputs = [device_chunks(ctx, plan.new_batch, spec.steps, args.chunks, seed=s) for s in range(N)]
    stacked_inputs = [
        tuple(step_lib.shard_seed_batches(ctx.mesh, np.stack([np.asarray(inputs[s][c][k]) for s in range(N)]))
              for k in (0, 1))
        for c in range(args.chunks)
    ]  # fmt: skip
    states = [initial_state(ctx, strategy, seed=s) for s in range(N)]
    stacked = step_lib.replicate(ctx.mesh, step_lib.stack_seeds([jax.device_get(s) for s in states]))

    def run_sequential():
        for s in range(N):
            for new, ids in inputs[s]:
                states[s], _ = single(states[s], new, ids, ctx.memory)
        return states

    def run_vmapped():
        nonlocal stacked
        for new, ids in stacked_inputs:
            stacked, _ = vmapped(stacked, new, ids, ctx.memory)
        return stacked

    log(f"compiling ({N} seeds, {args.chunks} chunks of S={spec.steps})")
    _timed(run_sequential), _timed(run_vmapped)  # compile
    seq, vm = [], []
    for _ in range(args.reps):  # interleaved
        seq.append(_timed(run_sequential))
        vm.append(_timed(run_vmapped))
    t_seq, t_vm = statistics.median(seq), statistics.median(vm)
    chunk_flops = strategy.chunk_cost(t_last).total
    print(
        json.dumps(
            {
                "benchmark": "bench_seeds",
                "config": args.config,
                "strategy": args.strategy,
                "seeds": N,
                "chunks_per_seed": args.chunks,
                "steps_per_chunk": spec.steps,
                "rows_per_step": plan.new_batch + plan.replay_batch,
                "sequential_s": t_seq,
                "vmapped_s": t_vm,
                "vmapped_speedup": t_seq / t_vm,
                "chunk_flops": chunk_flops,
                "gflops_per_s_sequential": chunk_flops * N * args.chunks / t_seq / 1e9,
                "gflops_per_s_vmapped": chunk_flops * N * args.chunks / t_vm / 1e9,
                "gflops_per_s_matmul_1024": matmul_gflops_per_s(),
                "devices": ctx.num_devices,
                "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "jax": jax.__version__},
                "load1_at_start": os.getloadavg()[0],
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
