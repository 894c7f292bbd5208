"""The cost of choosing what to replay: time per chunk of amr, uniform and none at equal batch.

The quickstart config's model and global batch (32 rows; amr and uniform: 30 new + 2
replay, none: 32 new), its chunk of S=8 steps, the strategies' own chunk functions
(`amr.train.strategy.make_strategy`, exactly what a run compiles). The memory holds the first
three tasks' rows as arms (`policy.add_task`), and a few warm-up chunks on the fourth
task's data feed the bandit, so replay really samples and observes. Every chunk's
inputs are on device before the clock starts; each timing is one chunk call up to
`block_until_ready`, after compile. Strategies are timed in interleaved rounds so load
from other processes hits them alike; medians over --reps rounds.

Prints ONE JSON object on stdout:
    python -m experiments.bench_overhead [--reps 30] [--config configs/quickstart.py]
Keys: amr_s, uniform_s, none_s (seconds per chunk), amr_over_uniform (target <= 1.03).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # configs/ from a checkout

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from amr.replay import clustering  # noqa: E402
from amr.runner.experiment import prepare  # noqa: E402
from amr.train import chunk as step_lib  # noqa: E402
from amr.train.state import TrainState  # noqa: E402
from amr.train.strategy import make_strategy  # noqa: E402
from amr.train.streams import next_chunk, task_stream  # noqa: E402

STRATEGIES = ("amr", "uniform", "none")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def load_config(path: str):
    spec = importlib.util.spec_from_file_location("bench_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def initial_state(ctx, strategy, seed: int = 0) -> TrainState:
    """A replicated TrainState whose replay memory holds every task but the last as arms."""
    state = strategy.init_state(seed)  # what a run starts from
    replay = state.replay
    if strategy.name != "none":
        for t in range(len(ctx.tasks) - 1):
            n = len(ctx.tasks[t].train)
            replay = strategy.policy.add_task(
                replay, ctx.offsets[t] + np.arange(n), clustering.per_task_labels(n), t, None, num_clusters=1
            )
    state = state.replace(replay=replay, task=jnp.full((), len(ctx.tasks) - 1, jnp.int32))
    return step_lib.replicate(ctx.mesh, state)


def device_chunks(ctx, new_batch: int, steps: int, count: int, seed: int = 0):
    """`count` chunks of the last task's new rows and ids, already on device: [(new_SxB, ids_SxB)]."""
    t = len(ctx.tasks) - 1
    stream = task_stream(ctx.tasks[t], int(ctx.offsets[t]), new_batch, seed, t)
    out = []
    for _ in range(count):
        new, ids = next_chunk(stream, steps)
        out.append((step_lib.shard_new_batches(ctx.mesh, new), step_lib.shard_new_batches(ctx.mesh, ids)))
    return jax.block_until_ready(out)


class Timed:
    """One strategy's chunk function, state and inputs; `once()` times one chunk call."""

    def __init__(self, ctx, name: str, warmup: int, pool: int):
        self.ctx, self.name = ctx, name
        self.strategy = make_strategy(ctx, name)
        plan, self.fn = self.strategy.for_task(len(ctx.tasks) - 1)  # what a run uses on its last task
        self.state = initial_state(ctx, self.strategy)
        self.inputs = device_chunks(ctx, plan.new_batch, ctx.config.train.chunk_size, pool)
        self.plan, self.calls = plan, 0
        for _ in range(warmup):  # compile + feed the bandit
            self.once()

    def once(self) -> float:
        new, ids = self.inputs[self.calls % len(self.inputs)]
        self.calls += 1
        start = time.perf_counter()
        self.state, metrics = self.fn(self.state, new, ids, self.ctx.memory)
        jax.block_until_ready((self.state, metrics))
        return time.perf_counter() - start


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="configs/quickstart.py")
    ap.add_argument("--reps", type=int, default=30, help="timed chunks per strategy (median; >= 5)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed chunks first (compile, bandit feedback)")
    args = ap.parse_args(argv)
    if args.reps < 5:
        ap.error("--reps must be >= 5")
    cfg = load_config(args.config)
    ctx = prepare(cfg)
    timed = {}
    for name in STRATEGIES:
        log(f"compiling {name} ...")
        timed[name] = Timed(ctx, name, args.warmup, pool=8)
    times = {name: [] for name in STRATEGIES}
    for r in range(args.reps):
        order = STRATEGIES if r % 2 == 0 else STRATEGIES[::-1]
        for name in order:
            times[name].append(timed[name].once())
    med = {name: statistics.median(ts) for name, ts in times.items()}
    out = {
        "amr_s": med["amr"],
        "uniform_s": med["uniform"],
        "none_s": med["none"],
        "amr_over_uniform": med["amr"] / med["uniform"],
        "uniform_over_none": med["uniform"] / med["none"],
        "reps": args.reps,
        "chunk_steps": cfg.train.chunk_size,
        "batch": {n: {"new": t.plan.new_batch, "replay": t.plan.replay_batch} for n, t in timed.items()},
        "devices": ctx.num_devices,
        "backend": jax.default_backend(),
        "config": args.config,
        "jax": jax.__version__,
        "python": platform.python_version(),
        "iqr_s": {n: [float(np.percentile(ts, 25)), float(np.percentile(ts, 75))] for n, ts in times.items()},
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
