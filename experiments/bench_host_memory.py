"""Chunk time with host-resident memory against device-resident memory; device bytes per stored sample.

Quickstart model and data (configs/quickstart.py), strategy amr, the last task training while
the earlier tasks are replayable. Both placements run in the same process, their chunks
interleaved (device, host, device, ...) so machine load hits both alike; each chunk is timed
from its host-side preparation (new batch, and for host mode fetching the prefetched replay
rows) until its outputs are ready. Host mode uses `memory.staleness` (default 1: the rows of
chunk c+1 load while chunk c trains). Median of `--chunks` timed chunks after `--warmup`.

Prints one JSON object:
  host_over_device         median host chunk time / median device chunk time (target <= 1.1)
  device_bytes_per_sample  bytes of per-sample device arrays of host mode's replay state (target <= 8)
  device_mode_bytes_per_sample, device_chunk_s, host_chunk_s (medians), *_chunk_times_s (raw), ...

    python experiments/bench_host_memory.py [--chunks 9] [--warmup 2] [--staleness 1] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402

from amr.compute import ledger as budget  # noqa: E402
from amr.runner.experiment import prepare  # noqa: E402
from amr.train import chunk as step_lib  # noqa: E402
from amr.train.loop import Run  # noqa: E402
from amr.train.strategy import make_strategy  # noqa: E402
from amr.train.streams import next_chunk, task_stream  # noqa: E402
from configs import quickstart  # noqa: E402


def per_sample_bytes(replay_state, capacity: int) -> int:
    """Bytes per stored sample: every device array of the replay state with one entry per sample."""
    return sum(x.dtype.itemsize for x in jax.tree.leaves(replay_state) if x.ndim >= 1 and x.shape[0] == capacity)


class Side:
    """One placement, set up as a run on its last task: earlier tasks are arms (and shards)."""

    def __init__(self, placement: str, staleness: int, workers: int, workdir: str):
        cfg = quickstart.get_config()
        cfg.seeds = (0,)
        cfg.memory.placement, cfg.memory.staleness, cfg.memory.workers = placement, staleness, workers
        self.ctx = ctx = prepare(cfg)
        strategy = make_strategy(ctx, "amr")
        self.run = Run(ctx, strategy, 0, os.path.join(workdir, "ckpt"), memory_dir=os.path.join(workdir, "memory"))
        self.capacity = int(ctx.offsets[-1] + len(ctx.tasks[-1].train))
        self.bytes_per_sample = per_sample_bytes(self.run.template.replay, self.capacity)
        state = step_lib.replicate(ctx.mesh, self.run.template)
        last = len(ctx.tasks) - 1
        for t in range(last):
            if self.run.host_replay:
                self.run.host_replay.write_task(t)
            state = self.run.add_arms(state, t, budget.Ledger(), float("nan"))
        plan, self.chunk, presample = strategy.for_task_with_presample(last)
        self.state = state
        self.stream = task_stream(ctx.tasks[last], int(ctx.offsets[last]), plan.new_batch, 0, last)
        if self.run.host_replay:
            self.run.host_replay.start_task(last, 10**9, presample)
        self.c, self.times = 0, []

    def step(self, record: bool) -> None:
        ctx, S = self.ctx, self.ctx.config.train.chunk_size
        start = time.perf_counter()
        new, new_ids = next_chunk(self.stream, S)
        memory = self.run.host_replay.local_memory(self.c, self.state) if self.run.host_replay else ctx.memory
        self.state, metrics = self.chunk(
            self.state, step_lib.shard_new_batches(ctx.mesh, new), step_lib.shard_new_batches(ctx.mesh, new_ids), memory
        )
        jax.block_until_ready((self.state, metrics))
        if record:
            self.times.append(time.perf_counter() - start)
        self.c += 1


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--chunks", type=int, default=9)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--staleness", type=int, default=1)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        device = Side("device", args.staleness, args.workers, os.path.join(tmp, "device"))
        host = Side("host", args.staleness, args.workers, os.path.join(tmp, "host"))
        for i in range(args.warmup + args.chunks):
            for side in (device, host):
                side.step(record=i >= args.warmup)
        host.run.host_replay.close()
    d, h = statistics.median(device.times), statistics.median(host.times)
    print(
        json.dumps(
            {
                "host_over_device": round(h / d, 4),
                "device_bytes_per_sample": host.bytes_per_sample,
                "device_mode_bytes_per_sample": device.bytes_per_sample,
                "device_chunk_s": round(d, 5),
                "host_chunk_s": round(h, 5),
                "device_chunk_times_s": [round(x, 5) for x in device.times],
                "host_chunk_times_s": [round(x, 5) for x in host.times],
                "chunks": args.chunks,
                "staleness": args.staleness,
                "workers": args.workers,
                "chunk_size": device.ctx.config.train.chunk_size,
                "num_devices": device.ctx.num_devices,
                "stored_samples": host.capacity,
            }
        )
    )


if __name__ == "__main__":
    main()
