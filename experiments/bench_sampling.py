"""Replay-sampling cost vs memory size: amr's index against flashbax's sum tree.

For each memory size N, the time to presample 1,000 replay ids, after compile:

  amr       what the library runs: `amr.replay.policies.make_replay("amr", ...).presample`
            jitted, one step of 1,000 slots: the bandit's Boltzmann `probs`, arms by
            inverse CDF (`amr.replay.sampling`, one uniform per draw), then `memory.draw`
            (offset + randint(size) + one gather): O(1) in N per draw. The replay
            state is built with the policy's own `add_task` (4 tasks x 4 clusters)
            and a few `observe` calls so the arm distribution is not uniform.
  amr_categorical  the previous arm draw, `jax.random.categorical` (K Gumbels
            per draw) over the same probabilities, then `memory.draw`: the gain.
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

from amr.replay import memory
from amr.replay import policies as replay

BATCH = 1000
DEFAULT_SIZES = (10**3, 10**4, 10**5, 10**6, 10**7, 10**8)


def _log(*a):
    print(*a, file=sys.stderr, flush=True)


# --- amr ----------------------------------------------------------------------


def build_amr_replay(n: int, num_arms: int, num_tasks: int, seed: int = 0):
    """The 'amr' replay policy over N ids in `num_tasks` tasks of num_arms / num_tasks
    random clusters each, its bandit fed a few rounds of random losses.

    Returns (policy, state, build seconds of the memory through `policy.add_task`).
    """
    rng = np.random.default_rng(seed)
    policy = replay.make_replay("amr", max_arms=num_arms, capacity=n, reward="loss_increase")
    state = policy.init()
    per_task = num_arms // num_tasks
    bounds = np.linspace(0, n, num_tasks + 1).astype(np.int64)
    t0 = time.perf_counter()
    for t in range(num_tasks):
        ids = np.arange(bounds[t], bounds[t + 1], dtype=np.int32)
        labels = rng.integers(0, per_task, ids.size, dtype=np.int32)
        state = policy.add_task(state, ids, labels, t, ref_losses=np.ones(per_task, np.float32), num_clusters=per_task)
    jax.block_until_ready(state)
    build_s = time.perf_counter() - t0
    loss_increase_K = rng.gamma(2.0, 0.5, num_arms).astype(np.float32)  # how much each arm is forgotten
    for _ in range(4):
        arm_ids = rng.integers(0, num_arms, 64).astype(np.int32)
        losses = 1.0 + loss_increase_K[arm_ids] + 0.1 * rng.standard_normal(64).astype(np.float32)
        state = policy.observe(state, None, jnp.asarray(arm_ids), jnp.asarray(losses))
    return policy, state, build_s


def amr_presample_fn(policy):
    """The library's presample for one step of BATCH slots, jitted -> int32[BATCH]
    (the reshape is inside the jit: an eager op outside it would cost more than the draw)."""
    return jax.jit(lambda state, key: policy.presample(state, key, 1, BATCH).reshape(BATCH))


@jax.jit
def amr_presample_categorical(index, key, probs_K):
    """The previous arm draw: Gumbel-max over K logits per draw (O(K) random numbers), then ids."""
    arm_key, id_key = jax.random.split(key)
    logits_K = jnp.where(probs_K > 0, jnp.log(jnp.maximum(probs_K, 1e-30)), -jnp.inf)
    arms = jax.random.categorical(arm_key, logits_K, shape=(BATCH,)).astype(jnp.int32)
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
            nodes=jnp.asarray(nodes),
            max_recorded_priority=tree.max_recorded_priority,
            tree_depth=depth,
            capacity=tree.capacity,
        ),
    )


def build_flashbax(n: int, check_against_add: bool):
    import flashbax as fbx

    buffer = fbx.make_prioritised_item_buffer(
        max_length=n, min_length=1, sample_batch_size=BATCH, add_sequences=True, device="cpu"
    )
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
    p.add_argument(
        "--sizes", default=",".join(str(s) for s in DEFAULT_SIZES), help="comma-separated memory sizes (e.g. 1e3,1e6)"
    )
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

    keys = [jax.random.fold_in(jax.random.key(0), i) for i in range(args.reps)]
    runs, build_s, fbx_build_s, arm_probs = {}, {}, {}, None
    for n in sizes:
        _log(f"building N={n:.0e}")
        policy, state, build_s[n] = build_amr_replay(n, args.arms, args.tasks)
        index = state.memory
        memory.check_nonempty(index)  # the host-side check the engine does before its jitted chunk
        probs_K = policy.arm_probs(state)
        arm_probs = [round(float(x), 4) for x in probs_K]
        presample = amr_presample_fn(policy)
        for f in (lambda k: presample(state, k), lambda k: amr_presample_categorical(index, k, probs_K)):
            ids = f(keys[0]).block_until_ready()
            assert ids.shape == (BATCH,) and bool(jnp.all(memory.arms_of(index, ids) >= 0))
        arms = memory.arms_of(index, presample(state, keys[1]))
        runs[(n, "amr")] = lambda k, state=state, presample=presample: presample(state, k)
        runs[(n, "amr_categorical")] = lambda k, index=index, probs_K=probs_K: amr_presample_categorical(
            index, k, probs_K
        )
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

    amr_us, fbx_us = us("amr"), us("flashbax")
    result = {
        "sizes": sizes,
        "amr_us_per_1k": amr_us,
        "flashbax_us_per_1k": fbx_us,
        "amr_categorical_us_per_1k": us("amr_categorical"),
        "amr_draw_only_us_per_1k": us("amr_draw_only"),
        "amr_ratio_largest_to_smallest": round(amr_us[-1] / amr_us[0], 3),
        "amr_below_flashbax": [None if f is None else a < f for a, f in zip(amr_us, fbx_us)],
        "min_us": {kind: us(kind, min) for kind in ("amr", "amr_categorical", "amr_draw_only", "flashbax")},
        "amr_p90_us": us("amr", lambda t: float(np.percentile(t, 90))),
        "amr_arm_probs": arm_probs,
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
