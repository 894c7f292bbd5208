"""N seeds of one strategy's replay chunk run one after another against one vmapped program.

`sequential`: the strategy's chunk (as a run calls it on its last task) once per seed, N programs
per round. `vmapped`: the same chunk built with `seed_axis=True`, one program over the stacked
states of the N seeds (`amr.train.mesh.stack_seeds`). Same rows, same number of chunks; inputs on
device before the clock starts; medians over interleaved rounds after compile. `gflops_per_s` is the
measured ledger's FLOPs of one chunk (XLA's cost analysis) times N over the seconds, beside one large
matmul's rate (`gflops_per_s_matmul_1024`): how close one seed's program already is to what the machine
can do. Vmapping pays where one seed leaves the machine idle (dispatch-bound: small models on an
accelerator). On XLA:CPU a seed axis becomes a batch dimension of the same small kernels, which run at the
same rate per FLOP, so the speed-up there is about 1 even far below the matmul rate.

`vmapped_sharded`: the same one program in a process of G fake CPU devices (`--seed_devices`, default
the cores), its seed axis split over them (`amr.train.mesh.make_seed_mesh`, `jax.vmap(spmd_axis_name=)`):
XLA:CPU runs each device's part on its own thread, so one compiled program keeps every core busy, as
the seeds of a TPU pod's sweep would be split over its chips.

`workers`: the same sequential work split over W worker processes (default: one per core of this
process's affinity), worker i running seeds i, i+W, ... one after another, pinned to its own cores
(`amr.runner.sweep_workers.core_sets`, as `compare.py --workers=W` splits a sweep). Each worker builds
and compiles its seeds' chunks before the clock starts; a round is the wall time from telling every
worker to go to the last one's answer, interleaved with the other two rounds. On XLA:CPU one process
keeps only about 1.25 cores busy with these small kernels, so processes are where a CPU host's speed is.

Prints ONE JSON object on stdout:
    python -m experiments.bench_seeds [--seeds 8] [--config configs/digit_styles.py] [--strategy uniform]
        [--workers 2] [--seed_devices 2]
Keys: vmapped_speedup = sequential seconds / vmapped seconds for the same N seeds' chunks (one device);
vmapped_sharded_speedup = sequential seconds / the sharded program's seconds (`--seed_devices 0`: null);
workers_speedup = sequential seconds / workers seconds (`--workers 0`: not measured, null).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

_CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _CHECKOUT)  # configs/ from a checkout

import jax  # noqa: E402
import numpy as np  # noqa: E402

from amr.runner import sweep_workers  # noqa: E402
from amr.runner.experiment import prepare  # noqa: E402
from amr.train import chunk as step_lib  # noqa: E402
from amr.train import mesh as mesh_lib  # noqa: E402
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


def _setup(args):
    """The strategy's last-task chunk, as a run calls it: (cfg, ctx, strategy, t_last, plan, single chunk fn, spec)."""
    cfg = load_config(args.config)
    cfg.mesh.num_devices = 1  # one seed's program on one device; a sharded worker's fake devices hold seeds
    ctx = prepare(cfg)
    strategy = make_strategy(ctx, args.strategy)
    t_last = len(ctx.tasks) - 1
    plan, single = strategy.for_task(t_last)
    spec = step_lib.ChunkSpec(cfg.train.chunk_size, plan.new_batch, plan.replay_batch, plan.probe_samples)
    return cfg, ctx, strategy, t_last, plan, single, spec


def _sequential(ctx, strategy, plan, single, spec, seeds, chunks):
    """`seeds`' chunks one after another: (run, inputs by seed, states by seed); run() returns the states."""
    inputs = {s: device_chunks(ctx, plan.new_batch, spec.steps, chunks, seed=s) for s in seeds}
    states = {s: initial_state(ctx, strategy, seed=s) for s in seeds}

    def run():
        for s in seeds:
            for new, ids in inputs[s]:
                states[s], _ = single(states[s], new, ids, ctx.memory)
        return states

    return run, inputs, states


def _vmapped(ctx, strategy, spec, inputs, states, chunks: int, mesh):
    """The seeds' chunks (`_sequential`'s inputs and states, by seed 0..N-1) in one `seed_axis` program on `mesh`:
    run()."""
    n = len(states)
    fn = step_lib.make_chunk_fn(ctx.model, strategy.tx, strategy.policy, mesh, spec, seed_axis=True)
    stacked_inputs = [
        tuple(mesh_lib.shard_seed_batches(mesh, np.stack([np.asarray(inputs[s][c][k]) for s in range(n)]))
              for k in (0, 1))
        for c in range(chunks)
    ]  # fmt: skip
    memory = mesh_lib.replicate(mesh, jax.device_get(ctx.memory))
    box = [mesh_lib.shard_seeds(mesh, mesh_lib.stack_seeds([jax.device_get(states[s]) for s in range(n)]))]

    def run():
        for new, ids in stacked_inputs:
            box[0], _ = fn(box[0], new, ids, memory)
        return box[0]

    return run


_READY, _DONE = "bench_seeds worker ready", "bench_seeds worker done"


def _worker(args) -> None:
    """`--worker i/W`: seeds i, i+W, ... of the N one after another, one round per line 'go' on stdin.
    `--worker sharded/G` (a process of G fake CPU devices): all N seeds in one vmapped program whose seed
    axis is split over the G devices (`amr.train.mesh.make_seed_mesh`)."""
    i, w = args.worker.split("/")
    _, ctx, strategy, _, plan, single, spec = _setup(args)
    seeds = list(range(args.seeds)) if i == "sharded" else list(range(args.seeds))[int(i) :: int(w)]
    run, inputs, states = _sequential(ctx, strategy, plan, single, spec, seeds, args.chunks)
    if i == "sharded":
        run = _vmapped(ctx, strategy, spec, inputs, states, args.chunks, mesh_lib.make_seed_mesh(int(w)))
    _timed(run)  # compile
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    print(_READY, json.dumps({"cores": cores}), flush=True)
    for line in sys.stdin:
        if line.strip() != "go":
            break
        print(_DONE, _timed(run), flush=True)


def _answer(proc, tag: str) -> str:
    """The rest of the worker's next line starting with `tag` (other lines pass through to stderr)."""
    for line in proc.stdout:
        if line.startswith(tag):
            return line[len(tag) :].strip()
        log(line.rstrip())
    raise RuntimeError(f"bench_seeds worker exited with {proc.wait()} before '{tag}'")


class _Workers:
    """W pinned worker processes (`_worker`), started at once so that they build and compile beside the caller."""

    def __init__(self, args, workers: int, sharded_devices: int = 0):
        """`sharded_devices` > 0: one unpinned `--worker sharded/G` process of that many fake devices instead."""
        cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count()))
        flags = [f"--config={os.path.abspath(args.config)}", f"--strategy={args.strategy}"]
        flags += [f"--seeds={args.seeds}", f"--chunks={args.chunks}"]
        env = sweep_workers.worker_env(_CHECKOUT)
        if sharded_devices:
            env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={sharded_devices}"
            self.sets, names = [cores], [f"sharded/{sharded_devices}"]
        else:
            self.sets, names = sweep_workers.core_sets(workers, cores), [f"{i}/{workers}" for i in range(workers)]
        self.procs = [
            subprocess.Popen(
                sweep_workers.pinned_command("experiments.bench_seeds", pin, [*flags, f"--worker={name}"]),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
            for name, pin in zip(names, self.sets)
        ]
        self.cores = None

    def ready(self) -> None:
        self.cores = [json.loads(_answer(p, _READY))["cores"] for p in self.procs]

    def round(self) -> float:
        """Wall seconds from 'go' to the last worker's answer: every worker's seeds once."""
        start = time.perf_counter()
        for p in self.procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        for p in self.procs:
            _answer(p, _DONE)
        return time.perf_counter() - start

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.stdin.close()  # the worker's loop ends at end of input
        for p in self.procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="configs/digit_styles.py")
    ap.add_argument("--strategy", default="uniform", choices=("uniform", "amr", "none"))
    ap.add_argument("--seeds", type=int, default=8, help="seeds N (>= 2)")
    ap.add_argument("--chunks", type=int, default=4, help="chunks per seed per round")
    ap.add_argument("--reps", type=int, default=5, help="timed rounds (median; >= 3)")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    ap.add_argument("--workers", type=int, default=None, help=f"pinned worker processes (default {cores}; 0: none)")
    ap.add_argument(
        "--seed_devices",
        type=int,
        default=None,
        help="fake CPU devices of the sharded vmapped program, seeds split over them (default: the most cores that "
        "divide --seeds; 0: not measured)",
    )
    ap.add_argument("--worker", default="", help=argparse.SUPPRESS)  # i/W: one of the workers (internal)
    args = ap.parse_args(argv)
    if args.seeds < 2 or args.reps < 3 or args.chunks < 1:
        ap.error("--seeds must be >= 2, --reps >= 3, --chunks >= 1")
    if args.worker:
        return _worker(args)
    workers = min(cores, args.seeds) if args.workers is None else args.workers
    if not 0 <= workers <= args.seeds:
        ap.error(f"--workers must be between 0 and --seeds ({args.seeds})")
    if args.seed_devices is None:
        args.seed_devices = max(d for d in range(1, cores + 1) if args.seeds % d == 0)
    if args.seed_devices and args.seeds % args.seed_devices:
        ap.error(f"--seed_devices={args.seed_devices} does not divide --seeds={args.seeds}")
    pool = _Workers(args, workers) if workers else None
    sharded = _Workers(args, 0, sharded_devices=args.seed_devices) if args.seed_devices else None
    try:
        out = _measure(args, pool, sharded)
    finally:
        for p in (pool, sharded):
            if p is not None:
                p.close()
    print(json.dumps(out, indent=1))


def _measure(args, pool, sharded) -> dict:
    cfg, ctx, strategy, t_last, plan, single, spec = _setup(args)
    N = args.seeds
    run_sequential, inputs, states = _sequential(ctx, strategy, plan, single, spec, list(range(N)), args.chunks)
    run_vmapped = _vmapped(ctx, strategy, spec, inputs, states, args.chunks, ctx.mesh)

    log(f"compiling ({N} seeds, {args.chunks} chunks of S={spec.steps})")
    _timed(run_sequential), _timed(run_vmapped)  # compile
    for p in (pool, sharded):
        if p is not None:
            log(f"waiting for {len(p.procs)} worker(s) on cores {p.sets} to compile")
            p.ready()
    seq, vm, wk, sh = [], [], [], []
    for _ in range(args.reps):  # interleaved; the workers wait on their input meanwhile
        seq.append(_timed(run_sequential))
        vm.append(_timed(run_vmapped))
        if pool is not None:
            wk.append(pool.round())
        if sharded is not None:
            sh.append(sharded.round())
    t_seq, t_vm = statistics.median(seq), statistics.median(vm)
    t_wk = statistics.median(wk) if wk else None
    t_sh = statistics.median(sh) if sh else None
    chunk_flops = strategy.chunk_cost(t_last).total
    return {
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
        "workers": len(pool.procs) if pool is not None else 0,
        "workers_cores": pool.cores if pool is not None else None,  # as each worker saw its affinity
        "workers_seconds": t_wk,
        "workers_speedup": t_seq / t_wk if t_wk else None,
        "seed_devices": args.seed_devices,  # the sharded program's fake CPU devices, seeds split over them
        "vmapped_sharded_seconds": t_sh,
        "vmapped_sharded_speedup": t_seq / t_sh if t_sh else None,
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "chunk_flops": chunk_flops,
        "gflops_per_s_sequential": chunk_flops * N * args.chunks / t_seq / 1e9,
        "gflops_per_s_vmapped": chunk_flops * N * args.chunks / t_vm / 1e9,
        "gflops_per_s_workers": chunk_flops * N * args.chunks / t_wk / 1e9 if t_wk else None,
        "gflops_per_s_vmapped_sharded": chunk_flops * N * args.chunks / t_sh / 1e9 if t_sh else None,
        "gflops_per_s_matmul_1024": matmul_gflops_per_s(),
        "devices": ctx.num_devices,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "jax": jax.__version__},
        "load1_at_start": os.getloadavg()[0],
    }


if __name__ == "__main__":
    main()
