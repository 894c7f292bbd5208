"""Carry a sweep's finished runs from one directory tree to another, so the sweep resumes there.

A sweep's workdir holds, besides checkpoints and caches, one small run file per finished run
(`<benchmark>/.../runs/<strategy>_seed<k>.json` and its `.seconds`, also under `workers/<i>/` while
`compare.py --workers` runs). Copying only those files (a few KB each) to another machine, or into the
repository between working sessions, and back into a workdir lets the same command continue: finished
runs are loaded, the rest run. Run the sweep again from the same commit (each run file records its
`code`, `data_digests` and `environment`, and the results page flags runs that differ).

    python -m experiments.carry_runs /work/sweep14 docs/results/runs/methods   # save
    python -m experiments.carry_runs docs/results/runs/methods /work/sweep14   # restore, then rerun the sweep

Prints one JSON object: how many run files were copied and how many the destination holds.
"""

from __future__ import annotations

import argparse
import json
import os

from amr.runner import sweep_workers


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("src", help="a sweep's workdir (or a tree saved from one)")
    ap.add_argument("dst", help="where to copy its finished run files (same relative paths)")
    args = ap.parse_args(argv)
    if not os.path.isdir(args.src):
        ap.error(f"src: {args.src!r} is not a directory")
    found = sweep_workers.finished_run_files(args.src)
    if not found:
        ap.error(f"src: no finished run files (*/runs/<strategy>_seed<k>.json) under {args.src!r}")
    copied = sweep_workers.copy_finished(args.src, args.dst)
    out = {"src": args.src, "dst": args.dst, "copied": copied, "held": len(sweep_workers.finished_run_files(args.dst))}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
