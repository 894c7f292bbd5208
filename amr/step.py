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

The per-device program is written with `jax.shard_map` over the 1-D mesh axis
"data" (current JAX's successor of `pmap`). Replay ids are drawn globally and rows
get per-example keys from their global position, so 1 and 8 devices compute the
same thing up to the order of floating-point reductions.
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from amr import distributed
from amr import memory as memory_lib
from amr import replay as replay_lib
from amr.train_state import TrainState

AXIS = "data"


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


def make_chunk_fn(model, tx: optax.GradientTransformation, policy: replay_lib.ReplayPolicy,
                  mesh: jax.sharding.Mesh, spec: ChunkSpec) -> Callable:
    """Returns jitted `chunk(state, new_SxBx..., new_ids_SxB, memory_Nx...) -> (state, metrics)` (state donated).

    `new_ids_SxB` are the new rows' ids in the memory (for the per-sample reference loss).
    """
    n_dev = mesh.shape[AXIS]
    for name, value in (("new_batch", spec.new_batch), ("replay_batch", spec.replay_batch),
                        ("probe_samples", spec.probe_samples)):
        if value % n_dev:
            raise ValueError(f"{name}={value} is not divisible by the {n_dev} devices of the mesh")
    S, B, R, C = spec.steps, spec.new_batch, spec.replay_batch, policy.candidates
    Bl, Rl, Pl = B // n_dev, R // n_dev, spec.probe_samples // n_dev
    use_bandit = policy.uses_bandit
    if spec.probe_samples and policy.needs_loss_after:
        raise ValueError("probe_samples: probes measure loss levels, which the 'marginal' reward cannot use")

    def gather(x):
        return jax.lax.all_gather(x, AXIS, axis=x.ndim - 1, tiled=True)

    def mir_select(params, new_rows, new_keys, cand_ids, memory, key):
        """Keep the R candidates whose loss rises most under a virtual SGD step on the new rows."""
        grad = jax.grad(lambda p: per_example_losses(model, p, new_rows, new_keys).mean())(params)
        grad = jax.lax.pmean(grad, AXIS)
        virtual = jax.tree.map(lambda p, g: p - spec.mir_lr * g, params, grad)
        cand_keys = _row_keys(key, dev_index() * Rl * C, Rl * C)
        rows = memory[_local_cols(cand_ids, dev_index(), Rl * C)]
        score = (per_example_losses(model, virtual, rows, cand_keys)
                 - per_example_losses(model, params, rows, cand_keys))
        score = gather(jnp.where(jnp.isfinite(score), score, -jnp.inf))
        _, top = jax.lax.top_k(score, R)
        return cand_ids[jnp.sort(top)]

    def dev_index():
        return jax.lax.axis_index(AXIS)

    def per_device(state: TrainState, new_SxBl, new_ids_SxBl, memory):
        dev = dev_index()
        chunk_key = jax.random.fold_in(state.rng, state.step)
        sample_key, probe_key, step_key = jax.random.split(chunk_key, 3)
        replay = state.replay
        metrics = {}

        if R:
            ids_SxRC = policy.presample(replay, sample_key, S, R)  # global, same on all devices

        if use_bandit and spec.probe_samples:
            pids, parms = probe_ids(replay, probe_key, spec.probe_samples)
            keys = _row_keys(jax.random.fold_in(probe_key, 1), dev * Pl, Pl)
            plocal = per_example_losses(model, state.params, memory[_local_cols(pids, dev, Pl)], keys)
            replay = policy.observe(replay, pids, parms, gather(plocal))

        def train_step(carry, xs):
            params, opt_state, skipped = carry
            new_rows, t = xs[0], xs[-1]
            key = jax.random.fold_in(step_key, t)
            new_keys = _row_keys(key, dev * Bl, Bl)
            rows, rep_keys, out = new_rows, new_keys, {}
            if R:
                ids_R = xs[1]
                if C > 1:
                    ids_R = mir_select(params, new_rows, new_keys, ids_R, memory, jax.random.fold_in(key, 2))
                ids_Rl = _local_cols(ids_R, dev, Rl)
                rep_keys = _row_keys(key, B + dev * Rl, Rl)
                rows = jnp.concatenate([new_rows, memory[ids_Rl]], axis=0)
                out["ids"] = ids_R

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

        xs = (new_SxBl, ids_SxRC, new_ids_SxBl, jnp.arange(S)) if R else (new_SxBl, new_ids_SxBl, jnp.arange(S))
        (params, opt_state, skipped), out = jax.lax.scan(
            train_step, (state.params, state.opt_state, state.skipped), xs)

        replay = policy.record_new(replay, out["new_ids"], out["new_losses"])
        if R:
            arms = memory_lib.arms_of(replay.memory, out["ids"])
            replay = policy.observe(replay, out["ids"], arms, out["rep_losses"], out.get("rep_after"))
            replay = policy.record_new(replay, out["ids"], out["rep_losses"], replayed=True)
            metrics["replay_arm_counts"] = jnp.zeros(replay.memory.sizes.shape, jnp.int32).at[
                arms.reshape(-1)].add(1, mode="drop")
        metrics["loss"], metrics["new_loss"] = out["loss"], out["new_loss"]
        metrics["arm_probs"] = policy.arm_probs(replay)
        new_state = state.replace(params=params, opt_state=opt_state, replay=replay,
                                  step=state.step + S, skipped=skipped)
        return new_state, metrics

    sharded = jax.shard_map(
        per_device, mesh=mesh,
        in_specs=(P(), P(None, AXIS), P(None, AXIS), P()),
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


@functools.lru_cache(maxsize=None)
def _copier(sharding):
    return jax.jit(lambda t: jax.tree.map(jnp.copy, t), out_shardings=sharding)


def make_mesh(num_devices: int | None = None) -> jax.sharding.Mesh:
    devices = jax.devices()
    n = num_devices or len(devices)
    if n > len(devices):
        raise ValueError(f"mesh.num_devices={n} but only {len(devices)} devices are visible")
    return jax.sharding.Mesh(np.asarray(devices[:n]), (AXIS,))
