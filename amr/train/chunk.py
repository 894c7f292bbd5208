"""The scanned, data-parallel training chunk: presample -> S train steps -> observe.

One `jax.jit` runs a whole chunk of S steps with no host round trip:

  1. presample the chunk's replay ids int32[S, R] from the replay state (global draw,
     identical on every device; each device keeps its slice of the columns);
  2. optional forward-only probes of the arms (bandit feedback beyond the replayed rows);
  3. `lax.scan` over S steps; each step gathers its replay rows from the
     device-resident memory by index, runs forward/backward on new + replay rows,
     `pmean`s the gradients and applies the optimizer (skipping non-finite steps);
  4. the replayed rows' per-example losses are all-gathered and fed to the bandit
     (one `lax.scan` inside `observe`), so its state stays identical on every device.

Host-resident memory (`make_chunk_fn(..., host_memory=True)`, see `amr.train.host_memory`):
step 1 runs outside the chunk, in `make_presample_fn` with exactly the chunk's key
derivation, and the chunk's 4th argument is a `LocalMemory` -- the presampled ids,
their arms and their rows, in order -- instead of the whole memory. Rows are then
taken by position, arms come from the draw, and the rest of the program is unchanged.

The per-device program is written with `jax.shard_map` over the 1-D mesh axis
"data" (current JAX's successor of `pmap`). Replay ids are drawn globally and rows
get per-example keys from their global position, so 1 and 8 devices compute the
same thing up to the order of floating-point reductions.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from amr.replay import memory as memory_lib
from amr.replay import policies as replay_lib
from amr.train import distributed
from amr.train.state import TrainState

AXIS = "data"


class Presampled(NamedTuple):
    """A chunk's replay ids drawn ahead of it (global, replicated): what the host must load."""

    ids: jax.Array  # int32[S, R*C] replay (MIR: candidate) ids
    arms: jax.Array  # int32[S, R*C] their arms
    probe_ids: jax.Array  # int32[P] probe ids (P = 0 without probes)
    probe_arms: jax.Array  # int32[P]


class LocalMemory(NamedTuple):
    """The 4th chunk argument in host mode: presampled ids plus their rows, in the same order."""

    ids: jax.Array  # int32[S, R*C], replicated
    arms: jax.Array  # int32[S, R*C], replicated
    rows: jax.Array  # [S, R*C, ...] rows of `ids`, columns sharded over the "data" axis
    probe_ids: jax.Array  # int32[P], replicated
    probe_arms: jax.Array  # int32[P], replicated
    probe_rows: jax.Array  # [P, ...] rows of `probe_ids`, sharded over the "data" axis


LOCAL_MEMORY_SPECS = LocalMemory(P(), P(), P(None, AXIS), P(), P(), P(AXIS))


class ChunkSpec(NamedTuple):
    steps: int  # S, train steps per chunk
    new_batch: int  # global new-task rows per step
    replay_batch: int  # global replay rows per step
    probe_samples: int = 0  # global forward-only probe rows per chunk (0: feedback only)
    mir_lr: float = 0.1  # learning rate of MIR's virtual SGD step


def per_example_losses(model, params, rows, keys):
    """f32[B] per-example losses with one key per row (row losses never depend on neighbours)."""
    return jax.vmap(lambda x, k: model.loss(params, x[None], k)[0])(rows, keys)


def _row_keys(key, start, count):
    return jax.vmap(lambda i: jax.random.fold_in(key, i))(start + jnp.arange(count))


def _local_cols(x, dev, width):
    """This device's `width` columns of a globally drawn [S, width * n_dev] array."""
    return jax.lax.dynamic_slice_in_dim(x, dev * width, width, axis=x.ndim - 1)


def _tree_where(ok, new, old):
    return jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)


def _all_finite(tree):
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def probe_ids(replay_state, key, num):
    """`num` ids spread round-robin over the active arms (NaN-free only where arms exist)."""
    active = replay_state.memory.sizes > 0
    n_active = jnp.maximum(jnp.sum(active), 1)
    order = jnp.nonzero(active, size=active.shape[0], fill_value=0)[0]
    arms = order[jnp.arange(num) % n_active].astype(jnp.int32)
    return memory_lib.draw(replay_state.memory, key, arms), arms


def _chunk_keys(rng, step):
    """(sample_key, probe_key, step_key) of the chunk starting at global step `step`."""
    chunk_key = jax.random.fold_in(rng, step)
    return jax.random.split(chunk_key, 3)


def uses_probes(policy: replay_lib.ReplayPolicy, spec: ChunkSpec) -> bool:
    return bool(policy.uses_bandit and spec.probe_samples)


def make_presample_fn(policy: replay_lib.ReplayPolicy, spec: ChunkSpec) -> Callable:
    """Jitted `presample(replay_state, rng, step) -> Presampled`: the draws the chunk at `step` makes.

    Same keys and calls as the device-mode chunk, so the ids are bit-identical when given the
    state the chunk starts from (staleness 0)."""
    S, R = spec.steps, spec.replay_batch

    def presample(replay, rng, step):
        sample_key, probe_key, _ = _chunk_keys(rng, step)
        ids, arms = policy.presample_with_arms(replay, sample_key, S, R)
        if uses_probes(policy, spec):
            pids, parms = probe_ids(replay, probe_key, spec.probe_samples)
        else:
            pids = parms = jnp.zeros((0,), jnp.int32)
        return Presampled(
            ids.astype(jnp.int32), arms.astype(jnp.int32), pids.astype(jnp.int32), parms.astype(jnp.int32)
        )

    return jax.jit(presample)


def make_chunk_fn(
    model,
    tx: optax.GradientTransformation,
    policy: replay_lib.ReplayPolicy,
    mesh: jax.sharding.Mesh,
    spec: ChunkSpec,
    host_memory: bool = False,
) -> Callable:
    """Returns jitted `chunk(state, new_SxBx..., new_ids_SxB, memory_Nx...) -> (state, metrics)` (state donated).

    `new_ids_SxB` are the new rows' ids in the memory (for the per-sample reference loss).
    With `host_memory` the 4th argument is a `LocalMemory` (see the module docstring).
    """
    n_dev = mesh.shape[AXIS]
    for name, value in (
        ("new_batch", spec.new_batch),
        ("replay_batch", spec.replay_batch),
        ("probe_samples", spec.probe_samples),
    ):
        if value % n_dev:
            raise ValueError(f"{name}={value} is not divisible by the {n_dev} devices of the mesh")
    S, B, R, C = spec.steps, spec.new_batch, spec.replay_batch, policy.candidates
    Bl, Rl, Pl = B // n_dev, R // n_dev, spec.probe_samples // n_dev
    use_bandit = policy.uses_bandit
    if spec.probe_samples and policy.needs_loss_after:
        raise ValueError("probe_samples: probes measure loss levels, which the 'marginal' reward cannot use")

    def gather(x):
        return jax.lax.all_gather(x, AXIS, axis=x.ndim - 1, tiled=True)

    def mir_select(params, new_rows, new_keys, rows, key):
        """Positions (sorted, int[R]) of the R candidates whose loss rises most under a virtual SGD step.

        `rows` are this device's Rl*C candidate rows."""
        grad = jax.grad(lambda p: per_example_losses(model, p, new_rows, new_keys).mean())(params)
        grad = jax.lax.pmean(grad, AXIS)
        virtual = jax.tree.map(lambda p, g: p - spec.mir_lr * g, params, grad)
        cand_keys = _row_keys(key, dev_index() * Rl * C, Rl * C)
        score = per_example_losses(model, virtual, rows, cand_keys) - per_example_losses(model, params, rows, cand_keys)
        score = gather(jnp.where(jnp.isfinite(score), score, -jnp.inf))
        _, top = jax.lax.top_k(score, R)
        return jnp.sort(top)

    def dev_index():
        return jax.lax.axis_index(AXIS)

    def per_device(state: TrainState, new_SxBl, new_ids_SxBl, memory):
        dev = dev_index()
        sample_key, probe_key, step_key = _chunk_keys(state.rng, state.step)
        replay = state.replay
        metrics = {}

        if R:
            if host_memory:  # presampled outside, with the same key; rows arrive with the ids
                ids_SxRC, arms_SxRC, rows_SxRClx = memory.ids, memory.arms, memory.rows
            else:
                ids_SxRC = policy.presample(replay, sample_key, S, R)  # global, same on all devices

        if use_bandit and spec.probe_samples:
            if host_memory:
                pids, parms, prows = memory.probe_ids, memory.probe_arms, memory.probe_rows
            else:
                pids, parms = probe_ids(replay, probe_key, spec.probe_samples)
                prows = memory[_local_cols(pids, dev, Pl)]
            keys = _row_keys(jax.random.fold_in(probe_key, 1), dev * Pl, Pl)
            plocal = per_example_losses(model, state.params, prows, keys)
            replay = policy.observe(replay, pids, parms, gather(plocal))

        def replay_rows(params, new_rows, new_keys, xs, key):
            """(ids int[R] global, arms int[R] or None, this device's Rl replay rows) of one step."""
            ids_R = xs[1]
            if not host_memory:
                if C > 1:
                    cand = memory[_local_cols(ids_R, dev, Rl * C)]
                    ids_R = ids_R[mir_select(params, new_rows, new_keys, cand, jax.random.fold_in(key, 2))]
                return ids_R, None, memory[_local_cols(ids_R, dev, Rl)]
            arms_R, rows_l = xs[2], xs[3]
            if C == 1:
                return ids_R, arms_R, rows_l  # this device's columns are its rows
            sel = mir_select(params, new_rows, new_keys, rows_l, jax.random.fold_in(key, 2))
            all_rows = jax.lax.all_gather(rows_l, AXIS, axis=0, tiled=True)  # [R*C, ...] in column order
            return ids_R[sel], arms_R[sel], all_rows[jax.lax.dynamic_slice_in_dim(sel, dev * Rl, Rl)]

        def train_step(carry, xs):
            params, opt_state, skipped = carry
            new_rows, t = xs[0], xs[-1]
            key = jax.random.fold_in(step_key, t)
            new_keys = _row_keys(key, dev * Bl, Bl)
            rows, rep_keys, out = new_rows, new_keys, {}
            if R:
                ids_R, arms_R, rep_rows = replay_rows(params, new_rows, new_keys, xs, key)
                rep_keys = _row_keys(key, B + dev * Rl, Rl)
                rows = jnp.concatenate([new_rows, rep_rows], axis=0)
                out["ids"] = ids_R
                if host_memory:
                    out["arms"] = arms_R

            def loss_fn(p):
                losses = per_example_losses(model, p, rows, jnp.concatenate([new_keys, rep_keys]) if R else new_keys)
                return losses.mean(), losses

            (loss, losses), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
            loss, grads = jax.lax.pmean((loss, grads), AXIS)
            ok = jnp.isfinite(loss) & _all_finite(grads)
            updates, new_opt = tx.update(grads, opt_state, params)
            new_params = optax.apply_updates(params, updates)
            params, opt_state = _tree_where(ok, new_params, params), _tree_where(ok, new_opt, opt_state)
            out["loss"] = loss
            out["new_loss"] = jax.lax.pmean(jnp.where(ok, losses[:Bl].mean(), jnp.nan), AXIS)
            out["new_ids"], out["new_losses"] = gather(xs[-2]), gather(jnp.where(ok, losses[:Bl], jnp.nan))
            if R:
                rep_losses = jnp.where(ok, losses[Bl:], jnp.nan)
                out["rep_losses"] = gather(rep_losses)
                if policy.needs_loss_after:
                    after = per_example_losses(model, params, rows[Bl:], rep_keys)
                    out["rep_after"] = gather(jnp.where(ok, after, jnp.nan))
            return (params, opt_state, skipped + (~ok).astype(jnp.int32)), out

        if not R:
            xs = (new_SxBl, new_ids_SxBl, jnp.arange(S))
        elif host_memory:
            xs = (new_SxBl, ids_SxRC, arms_SxRC, rows_SxRClx, new_ids_SxBl, jnp.arange(S))
        else:
            xs = (new_SxBl, ids_SxRC, new_ids_SxBl, jnp.arange(S))
        (params, opt_state, skipped), out = jax.lax.scan(train_step, (state.params, state.opt_state, state.skipped), xs)

        replay = policy.record_new(replay, out["new_ids"], out["new_losses"])
        if R:
            arms = out["arms"] if host_memory else memory_lib.arms_of(replay.memory, out["ids"])
            replay = policy.observe(replay, out["ids"], arms, out["rep_losses"], out.get("rep_after"))
            replay = policy.record_new(replay, out["ids"], out["rep_losses"], replayed=True)
            metrics["replay_arm_counts"] = (
                jnp.zeros(replay.memory.sizes.shape, jnp.int32).at[arms.reshape(-1)].add(1, mode="drop")
            )
        metrics["loss"], metrics["new_loss"] = out["loss"], out["new_loss"]
        metrics["arm_probs"] = policy.arm_probs(replay)
        new_state = state.replace(
            params=params, opt_state=opt_state, replay=replay, step=state.step + S, skipped=skipped
        )
        return new_state, metrics

    sharded = jax.shard_map(
        per_device,
        mesh=mesh,
        in_specs=(P(), P(None, AXIS), P(None, AXIS), LOCAL_MEMORY_SPECS if host_memory else P()),
        out_specs=(P(), P()),
        # Replicated outputs are built only from pmean'd / all-gathered values; the bandit's
        # scan mixes them with its replicated state, which the VMA type check cannot follow.
        check_vma=False,
    )
    return jax.jit(sharded, donate_argnums=(0,))


def shard_new_batches(mesh, new_SxB: np.ndarray) -> jax.Array:
    """One host->device transfer per chunk, rows split over the "data" axis."""
    return distributed.put_global(new_SxB, NamedSharding(mesh, P(None, AXIS)))


def replicate(mesh, tree):
    """A replicated copy of `tree` on the mesh; every leaf gets its own buffer (safe to donate)."""
    # `device_put(..., may_alias=False)` then donating crashes jaxlib 0.10 on CPU; a jitted copy is safe.
    sharding = NamedSharding(mesh, P())
    return _copier(sharding)(distributed.put_global(tree, sharding))


@functools.cache
def _copier(sharding):
    return jax.jit(lambda t: jax.tree.map(jnp.copy, t), out_shardings=sharding)


def make_mesh(num_devices: int | None = None) -> jax.sharding.Mesh:
    devices = jax.devices()
    n = num_devices or len(devices)
    if n > len(devices):
        raise ValueError(f"mesh.num_devices={n} but only {len(devices)} devices are visible")
    return jax.sharding.Mesh(np.asarray(devices[:n]), (AXIS,))
