"""A sweep split over worker processes, each pinned to its own cores, then summarised as one sweep.

On a CPU host one training process keeps about 1.25 of its cores busy: the chunk's kernels are too
small for XLA's intra-op threads. Two processes pinned to one core each finish two runs in about the
time of 1.3 (experiments/bench_seeds.py measures it on the host: `workers_speedup`). This module runs

    worker i of n:  the same sweep on every n-th seed (`run_sweep(shard=(i, n))`), pinned to cores
                    i, i+n, ..., in its own workdir <workdir>/workers/<i> (a workdir is one process's:
                    `amr.io.workdir_lock`), logging to <workdir>/workers/<i>.log;

then copies every finished run file (`runs/<strategy>_seed<k>.json`, in benchmark and variant
workdirs) into the same place under <workdir>, where the caller's ordinary sweep loads them as
finished runs and writes the one summary. Workers run the same code, data and environment at the
same time, so the runs are one sweep's. A worker that fails leaves its finished runs; the caller's
sweep redoes the rest itself, so an interrupted or failed split resumes like any sweep.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

WORKERS_DIR = "workers"


def core_sets(workers: int, cores: list[int]) -> list[list[int]]:
    """Cores of each worker: round-robin over the host's cores (no pinning: every worker gets all)."""
    if workers > len(cores):
        return [list(cores)] * workers
    return [cores[i :: workers] for i in range(workers)]


def worker_argv(argv: list[str], i: int, workers: int, workdir: str) -> list[str]:
    """The worker's command line: the caller's flags without --workers/--workdir/--out, plus its shard."""
    dropped = ("--workers", "--workdir", "--out", "--shard")
    kept = [a for a in argv if not a.split("=", 1)[0] in dropped]
    wd = os.path.join(workdir, WORKERS_DIR, str(i))
    return [*kept, "--workers=1", f"--shard={i}/{workers}", f"--workdir={wd}", f"--out={wd}/results.json"]


def finished_run_files(root: str, suffixes=(".json",)) -> list[str]:
    """Relative paths of every finished run file under `root` (`.../runs/<strategy>_seed<k>.json`; with
    `suffixes=(".json", ".json.seconds")` also the wall-time files written beside them)."""
    out = []
    for dirpath, _, files in os.walk(root):
        if os.path.basename(dirpath) == "runs":
            out += [os.path.relpath(os.path.join(dirpath, f), root) for f in files if f.endswith(suffixes)]
    return sorted(out)


def collect(workdir: str, workers: int) -> int:
    """Copies the workers' finished run files and their wall times into `workdir` (an existing file is kept);
    returns how many files were copied."""
    copied = 0
    for i in range(workers):
        src_root = os.path.join(workdir, WORKERS_DIR, str(i))
        for rel in finished_run_files(src_root, (".json", ".json.seconds")):
            dst = os.path.join(workdir, rel)
            if os.path.exists(dst):
                continue
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            tmp = dst + ".tmp"
            shutil.copyfile(os.path.join(src_root, rel), tmp)
            os.replace(tmp, dst)
            copied += 1
    return copied


def run_workers(module: str, argv: list[str], workers: int, workdir: str, poll_seconds: float = 30.0) -> list[int]:
    """Runs `python -m module` as `workers` pinned shards of the sweep and waits; returns their exit codes."""
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    sets = core_sets(workers, cores)
    procs, logs = [], []
    os.makedirs(os.path.join(workdir, WORKERS_DIR), exist_ok=True)
    for i in range(workers):
        log_path = os.path.join(workdir, WORKERS_DIR, f"{i}.log")
        log = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 (closed below)
        pin = sets[i]

        def preexec(pin=pin):
            if hasattr(os, "sched_setaffinity"):
                os.sched_setaffinity(0, pin)

        cmd = [sys.executable, "-m", module, *worker_argv(argv, i, workers, workdir)]  # from the caller's cwd
        procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, preexec_fn=preexec))
        logs.append(log)
        print(f"   worker {i}/{workers} on cores {pin}: log {log_path}", flush=True)
    while any(p.poll() is None for p in procs):
        time.sleep(poll_seconds)
        done = sum(len(finished_run_files(os.path.join(workdir, WORKERS_DIR, str(i)))) for i in range(workers))
        print(f"   workers: {done} runs finished", flush=True)
    for log in logs:
        log.close()
    codes = [p.returncode for p in procs]
    for i, code in enumerate(codes):
        if code:
            print(f"   worker {i} exited with {code}; see {workdir}/{WORKERS_DIR}/{i}.log (its runs are redone here)")
    return codes
