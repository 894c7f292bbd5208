"""A sweep of the tiny config on the command line, as `amr.runner.sweep_workers` runs experiments/compare.py.

    python -m tests.support.tiny_sweep --seeds=0,1 --workdir=W --out=W/results.json [--shard=i/n] [--workers=1]

One benchmark, `tiny` (configs/tiny.py at 8 steps a task, task-end evaluations, no checkpoints), uniform
alone, no frontier, headroom or same-split control: the smallest sweep a worker can run for real. `--workers`
is accepted and must be 1 (the test's own process is the caller that splits the seeds).
"""

from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)  # configs/


def get_config(name: str, smoke: bool = False):
    from configs import tiny

    if name != "tiny":
        raise ValueError(f"benchmark: unknown benchmark {name!r}; expected 'tiny'")
    c = tiny.get_config()
    c.seeds = (0, 1)
    c.train.steps_per_task, c.train.eval_every, c.train.checkpoint_every = 8, 0, 0
    return c


def sweep(seeds, workdir: str, out: str, shard=None) -> dict:
    from amr.runner import sweep as sweep_lib

    return sweep_lib.run_sweep(
        ["tiny"], ["uniform"], seeds, workdir, out, progress=False, get_config=get_config,
        frontier=(), same_split=False, headroom=(), shard=shard,
    )  # fmt: skip


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--shard", default="")
    ap.add_argument("--workers", type=int, default=1, choices=(1,))
    args = ap.parse_args(argv)
    shard = tuple(int(k) for k in args.shard.split("/")) if args.shard else None
    sweep([int(s) for s in args.seeds.split(",")], args.workdir, args.out, shard)


if __name__ == "__main__":
    main()
