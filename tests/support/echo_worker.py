"""A stand-in worker for tests of `amr.runner.sweep_workers.run_workers`: no JAX, seconds to start.

    python -m tests.support.echo_worker [--fail=i] [--linger=S] ... --shard=i/n --workdir=W --out=O

Writes W/bench/runs/echo_seed<i>.json with its command line, the cores it may run on and its directory, then
marks `bench` finished (`sweep_workers.mark_done`) and lingers S seconds (default 0) before it exits;
worker `--fail` exits with 3 before writing anything.
"""

from __future__ import annotations

import json
import os
import sys
import time

from amr.runner import sweep_workers


def main(argv: list[str]) -> int:
    flags = dict(a.lstrip("-").partition("=")[::2] for a in argv)
    i = int(flags["shard"].split("/")[0])
    print(f"echo worker {i}: {argv}", flush=True)
    if flags.get("fail") == str(i):
        return 3
    runs = os.path.join(flags["workdir"], "bench", "runs")
    os.makedirs(runs, exist_ok=True)
    info = {"argv": argv, "cores": sorted(os.sched_getaffinity(0)), "cwd": os.getcwd()}
    with open(os.path.join(runs, f"echo_seed{i}.json"), "w", encoding="utf-8") as f:
        json.dump(info, f)
    sweep_workers.mark_done(os.path.join(flags["workdir"], "bench"), (i, int(flags["shard"].split("/")[1])))
    time.sleep(float(flags.get("linger", 0)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
