"""Replay-sampling cost vs memory size: amr's index against flashbax's sum tree.

For each memory size N, the time to presample 1,000 replay ids, after compile:

  amr       `jax.random.categorical` over 16 arm probabilities (as the replay
            layer does), then `memory.draw` (offset + randint(size) + one
            gather): O(1) in N per draw, O(K) for the Gumbel-max arm draw.
  amr_cdf   the same with arms drawn by inverse CDF (one uniform per draw).
  amr_draw_only   `memory.draw` alone for fixed arms: the index's own cost.
  flashbax  `make_prioritised_item_buffer(...).sample` (stratified sum-tree
            descent, O(log N) per draw) on a full buffer of N int32 items,
            priorities all 1.

Medians over many repetitions with `block_until_ready`; sizes are timed in
interleaved rounds so load from other processes hits every size alike. The
flashbax state is built directly (leaves = 1, parents = sums; this equals the
state `buffer.add` produces, checked at the smallest size) because filling 1e8
items through `add` -- a sequential scan on CPU -- would take far longer than
the measurement. A size whose buffers would not fit in --max_gib is null.

Prints ONE JSON object on stdout:
    python -m experiments.bench_sampling [--sizes 1000,1000000] [--reps 400]
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from amr import memory

BATCH = 1000
DEFAULT_SIZES = (10**3, 10**4, 10**5, 10**6, 10**7, 10**8)


def _log(*a):
    print(*a, file=sys.stderr, flush=True)


# --- amr ----------------------------------------------------------------------


def build_amr_index(n: int, num_arms: int, num_tasks: int, seed: int = 0) -> tuple[memory.MemoryIndex, float]:
    """N ids in `num_tasks` tasks of num_arms / num_tasks random clusters each; returns (index, build seconds)."""
    rng = np.random.default_rng(seed)
    index = memory.empty_index(num_arms, n)
    per_task = num_arms // num_tasks
    bounds = np.linspace(0, n, num_tasks + 1).astype(np.int64)
    t0 = time.perf_counter()
    for t in range(num_tasks):
        ids = np.arange(bounds[t], bounds[t + 1], dtype=np.int32)
        labels = rng.integers(0, per_task, ids.size, dtype=np.int32)
        index, _ = memory.add_task(index, ids, labels, t, num_clusters=per_task, donate=True)
    jax.block_until_ready(index)
    return index, time.perf_counter() - t0


@jax.jit
def amr_presample(index, key, logits_K):
    """What the replay layer does: Boltzmann arm draws (Gumbel-max, O(K) per draw), then ids."""
    arm_key, id_key = jax.random.split(key)
    arms = jax.random.categorical(arm_key, logits_K, shape=(BATCH,)).astype(jnp.int32)
    return memory.draw(index, id_key, arms)


@jax.jit
def amr_presample_cdf(index, key, logits_K):
    """Same distribution, arms by inverse CDF: one uniform per draw instead of K Gumbels."""
    arm_key, id_key = jax.random.split(key)
    cdf_K = jnp.cumsum(jax.nn.softmax(logits_K))
    u = jax.random.uniform(arm_key, (BATCH,)) * cdf_K[-1]
    arms = jnp.searchsorted(cdf_K, u, side="right", method="compare_all")
    arms = jnp.minimum(arms, logits_K.shape[0] - 1).astype(jnp.int32)
    return memory.draw(index, id_key, arms)


@jax.jit
def amr_draw_only(index, key, arms_B):
    """The memory index's own share: ids for given arms."""
    return memory.draw(index, key, arms_B)


# --- flashbax -----------------------------------------------------------------


def _flashbax_state(buffer, n: int, via_add: bool):
    """A full buffer of items 0..n-1 with priority 1."""
    from flashbax.buffers import sum_tree

    state = buffer.init(jnp.zeros((), jnp.int32))
    if via_add:
        return jax.jit(buffer.add)(state, jnp.arange(n, dtype=jnp.int32))
    tree = state.sum_tree_state
    depth = tree.tree_depth
    levels = [np.zeros(2**depth, np.float32)]
    levels[0][:n] = 1.0
    while len(levels[-1]) > 1:
        levels.append(levels[-1].reshape(-1, 2).sum(1))
    nodes = np.concatenate(levels[::-1])
    assert nodes.shape == tree.nodes.shape and nodes.dtype == tree.nodes.dtype
    return state.replace(
        experience=jnp.arange(n, dtype=jnp.int32)[None],
        current_index=jnp.zeros_like(state.current_index),
        running_index=jnp.full_like(state.running_index, n),
        is_full=jnp.ones_like(state.is_full),
        sum_tree_state=sum_tree.SumTreeState(
            nodes=jnp.asarray(nodes), max_recorded_priority=tree.max_recorded_priority,
            tree_depth=depth, capacity=tree.capacity),
    )


def build_flashbax(n: int, check_against_add: bool):
    import flashbax as fbx

    buffer = fbx.make_prioritised_item_buffer(
        max_length=n, min_length=1, sample_batch_size=BATCH, add_sequences=True, device="cpu")
    state = _flashbax_state(buffer, n, via_add=False)
    if check_against_add:  # the shortcut must be exactly the state `add` builds
        ref = _flashbax_state(buffer, n, via_add=True)
        for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(ref)):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    sample = jax.jit(lambda s, k: buffer.sample(s, k).experience)
    return state, sample


def flashbax_gib(n: int) -> float:
    depth = max(1, math.ceil(math.log2(n)))
    return (4 * (2 ** (depth + 1)) * 2 + 4 * n * 2) / 2**30  # nodes (+ a build copy) + items


# --- timing -------------------------------------------------------------------


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default=",".join(str(s) for s in DEFAULT_SIZES),
                   help="comma-separated memory sizes (e.g. 1e3,1e6)")
    p.add_argument("--reps", type=int, default=400, help="timed calls per size")
    p.add_argument("--arms", type=int, default=16)
    p.add_argument("--tasks", type=int, default=4, help="tasks the amr index is built from")
    p.add_argument("--max_gib", type=float, default=12.0, help="skip flashbax sizes needing more")
    p.add_argument("--no_flashbax", action="store_true")
    args = p.parse_args(argv)
    sizes = [int(float(s)) for s in args.sizes.split(",") if s]
    if not sizes or min(sizes) <= 0:
        p.error(f"--sizes must be positive, got {args.sizes!r}")
    if args.arms <= 0 or args.tasks <= 0 or args.arms % args.tasks:
        p.error("--arms must be a positive multiple of --tasks")

    logits = jnp.log(jnp.asarray(np.random.default_rng(1).dirichlet(np.ones(args.arms)), jnp.float32))
    keys = [jax.random.fold_in(jax.random.key(0), i) for i in range(args.reps)]
    runs, build_s, fbx_build_s = {}, {}, {}
    for n in sizes:
        _log(f"building N={n:.0e}")
        index, build_s[n] = build_amr_index(n, args.arms, args.tasks)
        memory.check_nonempty(index)  # the host-side check the replay layer does before jit
        ids = amr_presample(index, keys[0], logits).block_until_ready()
        assert bool(jnp.all(memory.arms_of(index, ids) >= 0))
        ids = amr_presample_cdf(index, keys[0], logits).block_until_ready()
        assert bool(jnp.all(memory.arms_of(index, ids) >= 0))
        arms = jax.random.categorical(keys[1], logits, shape=(BATCH,)).astype(jnp.int32)
        runs[(n, "amr")] = lambda k, index=index: amr_presample(index, k, logits)
        runs[(n, "amr_cdf")] = lambda k, index=index: amr_presample_cdf(index, k, logits)
        runs[(n, "amr_draw_only")] = lambda k, index=index, arms=arms: amr_draw_only(index, k, arms)
        if not args.no_flashbax and flashbax_gib(n) <= args.max_gib:
            t0 = time.perf_counter()
            state, sample = build_flashbax(n, check_against_add=(n == min(sizes) and n <= 10**5))
            fbx_build_s[n] = time.perf_counter() - t0
            out = sample(state, keys[0]).block_until_ready()
            assert out.shape == (BATCH,) and bool(jnp.all((out >= 0) & (out < n)))
            runs[(n, "flashbax")] = lambda k, state=state, sample=sample: sample(state, k)

    for f in runs.values():  # warm up (compile done above; caches, page faults)
        for k in keys[:20]:
            f(k).block_until_ready()
    times = {name: [] for name in runs}
    for k in keys:  # interleaved rounds
        for name, f in runs.items():
            t0 = time.perf_counter()
            f(k).block_until_ready()
            times[name].append(time.perf_counter() - t0)

    def us(kind, stat=statistics.median):
        return [None if (n, kind) not in times else round(stat(times[(n, kind)]) * 1e6, 1) for n in sizes]

    amr_us, cdf_us, fbx_us = us("amr"), us("amr_cdf"), us("flashbax")
    result = {
        "sizes": sizes,
        "amr_us_per_1k": amr_us,
        "flashbax_us_per_1k": fbx_us,
        "amr_cdf_us_per_1k": cdf_us,
        "amr_draw_only_us_per_1k": us("amr_draw_only"),
        "amr_ratio_largest_to_smallest": round(amr_us[-1] / amr_us[0], 3),
        "amr_cdf_ratio_largest_to_smallest": round(cdf_us[-1] / cdf_us[0], 3),
        "amr_below_flashbax": [None if f is None else a < f for a, f in zip(amr_us, fbx_us)],
        "amr_cdf_below_flashbax": [None if f is None else a < f for a, f in zip(cdf_us, fbx_us)],
        "min_us": {kind: us(kind, min) for kind in ("amr", "amr_cdf", "amr_draw_only", "flashbax")},
        "amr_p90_us": us("amr", lambda t: float(np.percentile(t, 90))),
        "amr_index_build_s": [round(build_s[n], 3) for n in sizes],
        "flashbax_state_build_s": [None if n not in fbx_build_s else round(fbx_build_s[n], 3) for n in sizes],
        "batch": BATCH,
        "arms": args.arms,
        "amr_tasks": args.tasks,
        "reps": args.reps,
        "flashbax_buffer": "make_prioritised_item_buffer (sum tree, stratified sampling, O(log N))",
        "device": str(jax.devices()[0].device_kind),
        "num_devices": jax.device_count(),
        "jax": jax.__version__,
        "cpu": platform.processor() or platform.machine(),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
