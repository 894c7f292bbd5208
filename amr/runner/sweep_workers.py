"""A sweep split over worker processes, each pinned to its own cores, then summarised as one sweep.

On a CPU host one training process keeps about 1.25 of its cores busy: the chunk's kernels are too
small for XLA's intra-op threads. Two processes pinned to one core each run 8 seeds' chunks 2.06x as fast
as one process running them in turn (`workers_speedup` of experiments/bench_seeds.py, docs/bench_seeds.json;
whole runs with their start-up and evaluation gain less: two text runs in 33.6 s against 26.0 s for one).
This module runs

    worker i of n:  the same sweep on every n-th seed (`run_sweep(shard=(i, n))`), pinned to cores
                    i, i+n, ..., in its own workdir <workdir>/workers/<i> (a workdir is one process's:
                    `amr.io.workdir_lock`), logging to <workdir>/workers/<i>.log; its entries start at
                    the i/n-th (`sweep.staggered`), so the workers' first runs of an entry (its compiles)
                    do not coincide and later ones read the other workers' programs from the shared cache;

or, with `split="entries"` (`compare.py --split=entries`), every seed of every n-th entry of the sweep (its
plain strategies, frontier, headroom and named entries in order), so each entry's programs compile in one
worker only: in a sweep of many entries and few seeds per worker, the first run of an entry (its compile)
otherwise happens in every worker;

A worker marks each benchmark it has finished (`mark_done`: <worker workdir>/<benchmark>/shard_done); the caller
summarises a benchmark as soon as every worker has marked it (`compare.py`'s `on_poll`), so a long split sweep
writes each benchmark's results when it finishes, not only at the end.

Then it copies every finished run file (`runs/<strategy>_seed<k>.json` with its `.seconds`, in benchmark and
variant workdirs) into the same place under <workdir>, where the caller's ordinary sweep loads them as
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

from amr.io import run_files

WORKERS_DIR = "workers"
DONE_MARK = "shard_done"  # in a worker's benchmark workdir: the worker finished that benchmark
_DROPPED = ("workers", "workdir", "out", "shard")  # flags each worker gets its own value of


def parse_shard(text: str):
    """`'i/n'` -> (i, n) with 0 <= i < n; '' -> None (the whole sweep); anything else a ValueError naming shard."""
    if not text:
        return None
    i, _, n = text.partition("/")
    if not (i.isdigit() and n.isdigit() and int(i) < int(n)):
        raise ValueError(f"shard: {text!r} is not 'i/n' with 0 <= i < n")
    return int(i), int(n)


def core_sets(workers: int, cores: list[int]) -> list[list[int]]:
    """Cores of each worker: round-robin over the host's cores (no pinning: every worker gets all)."""
    if workers > len(cores):
        return [list(cores)] * workers
    return [cores[i::workers] for i in range(workers)]


def worker_argv(argv: list[str], i: int, workers: int, workdir: str) -> list[str]:
    """The worker's command line: the caller's flags without --workers/--workdir/--out/--shard, plus its own.

    Both absl spellings are dropped: `--flag=value` and `--flag value` (with one or two dashes)."""
    kept, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        name, eq, _ = a.lstrip("-").partition("=")
        if a.startswith("-") and name in _DROPPED:
            skip = not eq  # `--flag value`: the value is the next argument
            continue
        kept.append(a)
    wd = os.path.join(workdir, WORKERS_DIR, str(i))
    return [*kept, "--workers=1", f"--shard={i}/{workers}", f"--workdir={wd}", f"--out={wd}/results.json"]


def finished_run_files(root: str) -> list[str]:
    """Relative paths of every finished run file under `root` (`.../runs/<strategy>_seed<k>.json`)."""
    out = []
    for dirpath, _, files in os.walk(root):
        if os.path.basename(dirpath) == run_files.RUNS_DIR:
            out += [
                os.path.relpath(os.path.join(dirpath, f), root)
                for f in files
                if run_files.RUN_FILE_PATTERN.fullmatch(f)
            ]
    return sorted(out)


def _copy_atomic(src: str, dst: str) -> None:
    tmp = dst + ".tmp"
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def copy_finished(src_root: str, dst_root: str) -> int:
    """Copies every finished run file under `src_root`, each with its `.seconds` (the run's wall time), to the
    same relative path under `dst_root`; a run file already there is kept with its own `.seconds`. Returns
    how many run files were copied. A sweep whose workdir holds them skips those runs (they are loaded)."""
    copied = 0
    for rel in finished_run_files(src_root):
        src, dst = os.path.join(src_root, rel), os.path.join(dst_root, rel)
        if os.path.exists(dst):
            continue
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if os.path.exists(src + run_files.SECONDS_SUFFIX):  # first: a run file in place always has its time beside it
            _copy_atomic(src + run_files.SECONDS_SUFFIX, dst + run_files.SECONDS_SUFFIX)
        _copy_atomic(src, dst)
        copied += 1
    return copied


def collect(workdir: str, workers: int) -> int:
    """Copies the workers' finished run files into `workdir` (`copy_finished`); returns how many."""
    return sum(copy_finished(os.path.join(workdir, WORKERS_DIR, str(i)), workdir) for i in range(workers))


def mark_done(bench_dir: str, shard) -> None:
    """A worker's mark that it finished its share of the benchmark in `bench_dir` (written last, atomically)."""
    os.makedirs(bench_dir, exist_ok=True)
    path = os.path.join(bench_dir, DONE_MARK)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write(f"{shard[0]}/{shard[1]}\n")
    os.replace(path + ".tmp", path)


def _marks(workdir: str, workers: int, bench: str) -> list[str]:
    return [os.path.join(workdir, WORKERS_DIR, str(i), bench, DONE_MARK) for i in range(workers)]


def clear_done(workdir: str, workers: int, benches) -> None:
    """Removes the workers' marks of `benches` (left by an earlier sweep in this workdir): a mark means this
    sweep's worker finished the benchmark."""
    for bench in benches:
        for mark in _marks(workdir, workers, bench):
            if os.path.exists(mark):
                os.remove(mark)


def done_benchmarks(workdir: str, workers: int, benches) -> list[str]:
    """The benchmarks of `benches` (in order) that every one of `workers` has marked finished."""
    return [b for b in benches if all(os.path.exists(m) for m in _marks(workdir, workers, b))]


def pinned_command(module: str, cores: list[int], args: list[str]) -> list[str]:
    """`python -m module args` that first pins itself to `cores` (where the OS can: Linux).

    The interpreter pins itself, not a `preexec_fn` in the forked child: that would run Python between
    fork and exec, which may deadlock a caller whose other threads hold locks (JAX's runtime does)."""
    code = (
        "import os, runpy, sys\n"
        f"if hasattr(os, 'sched_setaffinity'): os.sched_setaffinity(0, {sorted(cores)!r})\n"
        f"runpy.run_module({module!r}, run_name='__main__', alter_sys=True)\n"
    )
    return [sys.executable, "-c", code, *args]


def worker_env(path: str | None) -> dict[str, str]:
    """This process's environment with `path` (if any) first on PYTHONPATH: where the worker's module is."""
    env = dict(os.environ)
    if path:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (os.path.abspath(path), env.get("PYTHONPATH")) if p)
    return env


def run_workers(
    module: str,
    argv: list[str],
    workers: int,
    workdir: str,
    poll_seconds: float = 30.0,
    path: str | None = None,
    on_poll=None,
) -> list[int]:
    """Runs `python -m module` as `workers` pinned shards of the sweep and waits; returns their exit codes.

    `path`: a directory put first on the workers' PYTHONPATH, where `module` is found (else the current
    directory must hold it). `on_poll()`: called about twice a second while the workers run (the caller
    summarises the benchmarks they have finished). Interrupted (KeyboardInterrupt or any error here, `on_poll`'s
    included), it stops its workers."""
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    sets = core_sets(workers, cores)
    env = worker_env(path)
    procs, logs = [], []
    os.makedirs(os.path.join(workdir, WORKERS_DIR), exist_ok=True)
    try:
        for i in range(workers):
            log_path = os.path.join(workdir, WORKERS_DIR, f"{i}.log")
            logs.append(open(log_path, "a", encoding="utf-8"))  # noqa: SIM115 (closed below)
            cmd = pinned_command(module, sets[i], worker_argv(argv, i, workers, workdir))
            procs.append(subprocess.Popen(cmd, stdout=logs[-1], stderr=subprocess.STDOUT, env=env))
            print(f"   worker {i}/{workers} on cores {sets[i]}: log {log_path}", flush=True)
        next_report = time.monotonic() + poll_seconds
        while any(p.poll() is None for p in procs):
            time.sleep(min(0.5, poll_seconds))  # returns soon after the last worker ends
            if on_poll is not None:
                on_poll()
            if time.monotonic() >= next_report:
                next_report += poll_seconds
                done = sum(len(finished_run_files(os.path.join(workdir, WORKERS_DIR, str(i)))) for i in range(workers))
                print(f"   workers: {done} runs finished", flush=True)
    finally:
        for p in procs:
            if p.poll() is None:  # only when interrupted: stop the workers (a worker resumes like any run)
                p.terminate()
                p.wait()
        for log in logs:
            log.close()
    codes = [p.returncode for p in procs]
    for i, code in enumerate(codes):
        if code:
            print(f"   worker {i} exited with {code}; see {workdir}/{WORKERS_DIR}/{i}.log (its runs are redone here)")
    return codes
