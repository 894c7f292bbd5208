"""The scanned, data-parallel training chunk: presample -> S train steps -> observe.

One `jax.jit` runs a whole chunk of S steps with no host round trip:

  1. presample the chunk's replay ids int32[S, R] from the replay state (global draw,
     identical on every device; each device keeps its slice of the columns);
  2. optional forward-only probes of the arms (bandit feedback beyond the replayed rows);
  3. `lax.scan` over S steps; each step gets its replay candidates' rows, lets the policy
     `select` among them (MIR; the identity for every other policy), runs forward/backward
     on new + replay rows (one forward pass, `amr.methods.hooks.step_objective`), `pmean`s the
     gradients and applies the optimizer (skipping non-finite steps);
  4. the replayed rows' per-example losses are all-gathered and fed to the bandit
     (one `lax.scan` inside `observe`), so its state stays identical on every device.

When the state carries an embedding buffer (`replay.embeddings = "free"`, see
`amr.train.free_embeddings`) each step also stores its new rows' pooled embeddings from the
training forward pass; without one the program is what it was before the option existed.

With companion methods (`amr.methods`, docs/METHODS.md) a step runs, in order: the forward pass
(`model.outputs` when a method `needs_outputs`, which also gives the free embeddings), the loss
plus the methods' loss terms, the gradients `pmean`'d, `edit_grads` on the averaged gradients
(e.g. MIGU), the optimizer, `post_update` on its updates (e.g. HFT), the update (skipped if not
finite), `after_step`. Without methods none of these hooks is called.

Where rows come from is one small interface, `MemorySource` (`amr.train.replay_source`, with the
chunk's keys, draws and probes), with two implementations.
`DEVICE_MEMORY`: the 4th chunk argument is every stored row, replicated; rows are gathered
by id. `HOST_MEMORY` (`make_chunk_fn(..., host_memory=True)`, see `amr.train.host_memory`):
step 1 runs outside the chunk, in `make_presample_fn` with exactly the chunk's key
derivation, and the 4th argument is a `LocalMemory` -- the presampled ids, their arms and
their rows, in order. Rows are then taken by position, arms come from the draw, and the
rest of the program is the same.

The per-device program is written with `jax.shard_map` over the 1-D mesh axis
"data" (current JAX's successor of `pmap`; the mesh and the input placement: `amr.train.mesh`). Replay ids are drawn globally and rows
get per-example keys from their global position, so 1 and 8 devices compute the
same thing up to the order of floating-point reductions.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.sharding import PartitionSpec as P

# `from amr.train.<module> import X as X`: re-exported, for callers that reach X as `amr.train.chunk.X`
# (the run loop, strategies, host memory, experiments, tests); X lives in <module>.
from amr.methods import hooks as method_hooks
from amr.replay import policies as replay_lib
from amr.replay import rewards as rewards_lib
from amr.replay import share as share_lib
from amr.train import flex_batch
from amr.train import free_embeddings as free_lib
from amr.train.mesh import AXIS, seeds_axis
from amr.train.mesh import make_mesh as make_mesh
from amr.train.mesh import replicate as replicate
from amr.train.mesh import shard_new_batches as shard_new_batches
from amr.train.mesh import shard_seed_batches as shard_seed_batches
from amr.train.mesh import stack_seeds as stack_seeds
from amr.train.mesh import unstack_seeds as unstack_seeds
from amr.train.replay_source import DEVICE_MEMORY, HOST_MEMORY, MemorySource, chunk_keys, gather_rows, uses_probes
from amr.train.replay_source import LOCAL_MEMORY_SPECS as LOCAL_MEMORY_SPECS
from amr.train.replay_source import LocalMemory as LocalMemory
from amr.train.replay_source import Presampled as Presampled
from amr.train.replay_source import make_presample_fn as make_presample_fn
from amr.train.replay_source import probe_ids as probe_ids
from amr.train.state import TrainState


class ChunkSpec(NamedTuple):
    steps: int  # S, train steps per chunk
    new_batch: int  # global new-task rows per step
    replay_batch: int  # global replay rows per step (with flex slots: the most, rows_max)
    probe_samples: int = 0  # global forward-only probe rows per chunk (0: feedback only)
    flex: int = (
        0  # replay slots that hold a new row when the chunk's replay count leaves them free (amr.train.flex_batch)
    )


def per_example_losses(model, params, rows, keys):
    """f32[B] per-example losses with one key per row (row losses never depend on neighbours)."""
    return jax.vmap(lambda x, k: model.loss(params, x[None], k)[0])(rows, keys)


def _row_keys(key, start, count):
    return jax.vmap(lambda i: jax.random.fold_in(key, i))(start + jnp.arange(count))


def _tree_where(ok, new, old):
    return jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)


def _all_finite(tree):
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


# ---------------------------------------------------------------- the per-device program


class _Chunk(NamedTuple):
    """What the per-device program closes over (all static)."""

    model: Any
    tx: optax.GradientTransformation
    policy: replay_lib.ReplayPolicy
    spec: ChunkSpec
    source: MemorySource
    n_dev: int
    methods: tuple = ()  # amr.methods.Method records (loss terms, after_step); () = none
    share: Any = None  # amr.replay.share.ShareRule of a chunk with flex slots (None: the fixed split)

    @property
    def local(self):
        """(Bl, Rl, Pl): this device's new, replay and probe rows."""
        return (
            self.spec.new_batch // self.n_dev,
            self.spec.replay_batch // self.n_dev,
            self.spec.probe_samples // self.n_dev,
        )


def _gather(x):
    return jax.lax.all_gather(x, AXIS, axis=x.ndim - 1, tiled=True)


def _probe_feedback(c: _Chunk, params, replay, memory, probe_key, dev):
    """The bandit's feedback from forward-only probes of the arms (before the chunk's steps)."""
    Pl = c.local[2]
    pids, parms, prows = c.source.probes(memory, replay, probe_key, c.spec.probe_samples, dev, Pl)
    keys = _row_keys(jax.random.fold_in(probe_key, 1), dev * Pl, Pl)
    plocal = per_example_losses(c.model, params, prows, keys)
    return c.policy.observe(replay, pids, parms, _gather(plocal))


def _replay_rows(c: _Chunk, params, new_rows, new_keys, memory, replay_xs, key, dev):
    """One step's chosen `Candidates` (global ids, arms or None, this device's Rl rows)."""
    Rl = c.local[1]
    cands = c.source.candidates(memory, replay_xs, dev, Rl * c.policy.candidates)
    cand_keys = _row_keys(jax.random.fold_in(key, 2), dev * Rl * c.policy.candidates, Rl * c.policy.candidates)
    return c.policy.select(
        cands,
        params,
        lambda p: per_example_losses(c.model, p, new_rows, new_keys),
        lambda p, rows: per_example_losses(c.model, p, rows, cand_keys),
        AXIS,
    )


def _optimizer_step(c: _Chunk, carry, rows, row_keys, num_new: int, embed: bool = False):
    """The optimizer step both train steps share, on this device's `rows` (its first `num_new` new rows).

    One forward pass gives the rows' losses, the methods' loss terms (and the outputs they read) and, with
    `embed`, the rows' pooled embeddings (free embeddings). The objective's value and gradients are
    `pmean`ed; the methods' `edit_grads` edit the averaged gradients, the optimizer turns them into
    updates, the methods' `post_update` edit those, the update is applied and the methods' `after_step`
    follows, all skipped unless the loss and every gradient are finite. `carry` is (params, opt_state,
    skipped, method states). Returns (carry, loss, per-row losses f32[rows], embeddings or None, ok)."""
    params, opt_state, skipped, method_states = carry

    def loss_fn(p):
        return method_hooks.step_objective(c.model, c.methods, method_states, p, rows, row_keys, num_new, embed)

    (loss, (losses, layer_outputs, emb)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    loss, grads = jax.lax.pmean((loss, grads), AXIS)
    if c.methods:  # amr.methods: gradient edits from the step's layer outputs (e.g. MIGU's mask)
        grads = method_hooks.edit_grads(c.methods, method_states, grads, jax.lax.pmean(layer_outputs, AXIS))
    ok = jnp.isfinite(loss) & _all_finite(grads)
    updates, new_opt = c.tx.update(grads, opt_state, params)
    if c.methods:  # amr.methods: their post_update hooks (e.g. HFT's mask of frozen matrices)
        updates = method_hooks.post_update(c.methods, method_states, updates)
    new_params = optax.apply_updates(params, updates)
    params, opt_state = _tree_where(ok, new_params, params), _tree_where(ok, new_opt, opt_state)
    if c.methods:  # amr.methods: state updates after the optimizer step (e.g. the weight EMA)
        method_states = _tree_where(ok, method_hooks.after_step(c.methods, method_states, params, grads), method_states)
    return (params, opt_state, skipped + (~ok).astype(jnp.int32), method_states), loss, losses, emb, ok


def _train_step(c: _Chunk, step_key, dev, memory, carry, xs):
    """One optimizer step on this device's new rows plus its replay rows; skipped if not finite.

    With an embedding buffer in the carry (free embeddings) the loss also returns each row's pooled
    embedding from the same forward pass; the new rows' are all-gathered into the buffer."""
    *carry, buffer = carry
    params = carry[0]
    new_rows, replay_xs, new_ids, t = xs
    (Bl, Rl, _), B, R = c.local, c.spec.new_batch, c.spec.replay_batch
    key = jax.random.fold_in(step_key, t)
    new_keys = _row_keys(key, dev * Bl, Bl)
    rows, row_keys, out = new_rows, new_keys, {}
    if R:
        chosen = _replay_rows(c, params, new_rows, new_keys, memory, replay_xs, key, dev)
        rows = jnp.concatenate([new_rows, chosen.rows], axis=0)
        row_keys = jnp.concatenate([new_keys, _row_keys(key, B + dev * Rl, Rl)])
        out["ids"] = chosen.ids
        if chosen.arms is not None:
            out["arms"] = chosen.arms
    carry, loss, losses, emb, ok = _optimizer_step(c, tuple(carry), rows, row_keys, Bl, embed=buffer is not None)
    params = carry[0]
    out["loss"] = loss
    out["new_loss"] = jax.lax.pmean(jnp.where(ok, losses[:Bl].mean(), jnp.nan), AXIS)
    out["new_ids"], out["new_losses"] = _gather(new_ids), _gather(jnp.where(ok, losses[:Bl], jnp.nan))
    if buffer is not None:
        buffer = free_lib.record(buffer, out["new_ids"], jax.lax.all_gather(emb[:Bl], AXIS, axis=0, tiled=True), ok)
    if R:
        out["rep_losses"] = _gather(jnp.where(ok, losses[Bl:], jnp.nan))
        if c.policy.needs_loss_after:
            after = per_example_losses(c.model, params, rows[Bl:], row_keys[Bl:])
            out["rep_after"] = _gather(jnp.where(ok, after, jnp.nan))
    return (*carry, buffer), out


def _flex_train_step(c: _Chunk, step_key, dev, memory, replay_rows, carry, xs):
    """`_train_step` with flex slots: of the step's replay slots, canonical column q holds a replay row
    iff q < `replay_rows`, else a flex new row (`amr.train.flex_batch`); the rows trained are the same
    in number whatever `replay_rows` is. Losses of rows not trained as replay (new) are NaN in
    `rep_losses` (`new_losses`), so neither the bandit nor `record_new` sees them. The methods see
    `num_new` = the always-new rows (flex slots holding new rows come after the fixed replay rows)."""
    (always, flex_new), replay_xs, (always_ids, flex_ids), t = xs
    (Bl, Rl, _), N, R, F = c.local, c.spec.new_batch, c.spec.replay_batch, c.spec.flex
    Fl, rows_min = F // c.n_dev, R - F
    key = jax.random.fold_in(step_key, t)
    q = flex_batch.local_cols(rows_min, F, c.n_dev, dev)  # int32[Rl] canonical replay columns
    active = q < replay_rows  # [Rl]: fixed slots always, flex slots while q < r
    step_ids = replay_xs[0]
    rep_rows = gather_rows(memory, step_ids[q])
    use_new = ~active[Rl - Fl :]
    pick = lambda a, b: jnp.where(use_new.reshape((-1,) + (1,) * (a.ndim - 1)), a, b)  # noqa: E731
    rows = jnp.concatenate([always, rep_rows[: Rl - Fl], pick(flex_new, rep_rows[Rl - Fl :])], axis=0)
    # keys by canonical position: new rows 0..N-1, flex new rows N + g, replay rows N + F + q
    slot_key = jnp.where(active, N + F + q, N + q - rows_min)
    row_keys = jnp.concatenate([_row_keys(key, dev * Bl, Bl), jax.vmap(lambda i: jax.random.fold_in(key, i))(slot_key)])
    *carry, buffer = carry
    carry, loss, losses, emb, ok = _optimizer_step(c, tuple(carry), rows, row_keys, Bl, embed=buffer is not None)
    params = carry[0]
    if buffer is not None:  # free embeddings of the rows trained as new: the always-new ones and flex slots past r
        flex_new_ids = jnp.where(use_new, flex_ids, -1)  # a replay slot's id: out of the task's range, dropped
        new_emb = jnp.concatenate([emb[:Bl], emb[Bl + Rl - Fl :]], axis=0)
        buffer = free_lib.record(
            buffer,
            _gather(jnp.concatenate([always_ids, flex_new_ids])),
            jax.lax.all_gather(new_emb, AXIS, axis=0, tiled=True),
            ok,
        )
    canonical = flex_batch.to_canonical(rows_min, F, c.n_dev)
    new_losses = jnp.concatenate([losses[:Bl], jnp.where(use_new, losses[Bl + Rl - Fl :], jnp.nan)])
    new_losses = jnp.where(ok, new_losses, jnp.nan)
    used = jnp.isfinite(new_losses)
    new_sum, new_count = jax.lax.psum((jnp.sum(jnp.where(used, new_losses, 0.0)), jnp.sum(used)), AXIS)
    out = {"loss": loss, "ids": step_ids, "new_loss": new_sum / new_count}
    out["new_ids"] = _gather(jnp.concatenate([always_ids, flex_ids]))
    out["new_losses"] = _gather(new_losses)
    out["rep_losses"] = _gather(jnp.where(ok & active, losses[Bl:], jnp.nan))[canonical]
    if c.policy.needs_loss_after:
        after = per_example_losses(c.model, params, rows[Bl:], row_keys[Bl:])
        out["rep_after"] = _gather(jnp.where(ok & active, after, jnp.nan))[canonical]
    return (*carry, buffer), out


def _share_signals(replay, out) -> share_lib.ShareSignals:
    """The chunk's free signals: replayed rows' mean loss over their own reference (over nothing when
    the policy keeps no per-sample reference), and the new rows' mean loss."""
    rep = out["rep_losses"]
    if replay.sample_ref.shape[0] > 1:
        rep = rep - rewards_lib.at_or_nan(replay.sample_ref, out["ids"])
    return share_lib.ShareSignals(_nanmean(rep), _nanmean(out["new_losses"]))


def _nanmean(x):
    finite = jnp.isfinite(x)
    return jnp.sum(jnp.where(finite, x, 0.0)) / jnp.sum(finite)  # NaN when nothing is finite


def _feedback(c: _Chunk, replay, out, step, replay_rows=None):
    """(replay state after the chunk's losses, replay metrics): references, bandit rewards, arm counts.

    `step`: the chunk's first global step, the time of its observation for the 'benefit' reward.
    `replay_rows` (flex slots): the chunk's replay count; arms of slots past it are not counted."""
    replay = c.policy.record_new(replay, out["new_ids"], out["new_losses"])
    metrics = {}
    if c.spec.replay_batch:
        arms = c.source.arms(replay, out)
        at = {"step": step} if c.policy.needs_step else {}
        replay = c.policy.observe(replay, out["ids"], arms, out["rep_losses"], out.get("rep_after"), **at)
        replay = c.policy.record_new(replay, out["ids"], out["rep_losses"], replayed=True)
        counted = arms
        if replay_rows is not None:
            counted = jnp.where(jnp.arange(arms.shape[-1]) < replay_rows, arms, replay.memory.sizes.shape[0])
        counts = jnp.zeros(replay.memory.sizes.shape, jnp.int32).at[counted.reshape(-1)].add(1, mode="drop")
        metrics["replay_arm_counts"] = counts
    metrics["arm_probs"] = c.policy.arm_probs(replay)
    return replay, metrics


def _per_device(c: _Chunk, state: TrainState, new_SxBl, new_ids_SxBl, memory):
    dev = jax.lax.axis_index(AXIS)
    S, R = c.spec.steps, c.spec.replay_batch
    sample_key, probe_key, step_key = chunk_keys(state.rng, state.step)
    replay = state.replay
    # global draws, the same on every device (host memory: drawn outside with the same key)
    replay_xs = c.source.replay_inputs(memory, c.policy, replay, sample_key, S, R) if R else ()
    if uses_probes(c.policy, c.spec):
        replay = _probe_feedback(c, state.params, replay, memory, probe_key, dev)
    replay_rows, share_state = None, state.share
    if c.spec.flex:
        replay_rows = c.share.rows(state.share, state.step)
        step = functools.partial(_flex_train_step, c, step_key, dev, memory, replay_rows)
    else:
        step = functools.partial(_train_step, c, step_key, dev, memory)
    carry = (state.params, state.opt_state, state.skipped, state.methods, state.embeddings)
    (params, opt_state, skipped, methods, embeddings), out = jax.lax.scan(
        step, carry, (new_SxBl, replay_xs, new_ids_SxBl, jnp.arange(S))
    )
    if c.spec.flex:
        share_state = c.share.update(share_state, _share_signals(replay, out), state.step + S)
    replay, metrics = _feedback(c, replay, out, state.step, replay_rows)
    metrics["loss"], metrics["new_loss"] = out["loss"], out["new_loss"]
    metrics["replay_rows"] = jnp.asarray(R if replay_rows is None else replay_rows, jnp.int32)
    new_state = state.replace(
        params=params,
        opt_state=opt_state,
        replay=replay,
        step=state.step + S,
        skipped=skipped,
        methods=methods,
        embeddings=embeddings,
        share=share_state,
    )
    return new_state, metrics


def make_chunk_fn(
    model,
    tx: optax.GradientTransformation,
    policy: replay_lib.ReplayPolicy,
    mesh: jax.sharding.Mesh,
    spec: ChunkSpec,
    host_memory: bool = False,
    seed_axis: bool = False,
    methods: tuple = (),
    share: share_lib.ShareRule | None = None,
) -> Callable:
    """Returns jitted `chunk(state, new_SxBx..., new_ids_SxB, memory) -> (state, metrics)` (state donated).

    `new_ids_SxB` are the new rows' ids in the memory (for the per-sample reference loss).
    `memory` is every stored row (`DEVICE_MEMORY`) or, with `host_memory`, a `LocalMemory`
    (`HOST_MEMORY`, see the module docstring).

    `seed_axis`: several runs in one program, `jax.vmap` over a leading seed axis of the state,
    the new rows and their ids (stack states with `stack_seeds`); the memory is shared. Each seed
    computes what its own chunk would (`experiments/bench_seeds.py` times both ways).

    `methods`: `amr.methods.Method` records whose loss terms join each step's objective and whose
    `after_step` follows each optimizer update (their states: `state.methods`; `tx` must already hold
    their transforms, `amr.methods.hooks.with_transforms`).

    `share` (needed when `spec.flex`): the rule choosing each chunk's replay rows in
    [replay_batch - flex, replay_batch]; the new rows and their ids then come as pairs
    (always [S, new_batch], flex [S, flex]), see `amr.train.flex_batch`.
    """
    n_dev = mesh.shape[AXIS]
    if spec.flex:
        _check_flex(policy, spec, share, host_memory, n_dev)
    for name in ("new_batch", "replay_batch", "probe_samples"):
        if getattr(spec, name) % n_dev:
            raise ValueError(f"{name}={getattr(spec, name)} is not divisible by the {n_dev} devices of the mesh")
    if spec.probe_samples and policy.needs_loss_after:
        raise ValueError("probe_samples: probes measure loss levels, which the 'marginal' reward cannot use")
    if spec.probe_samples and policy.needs_step:
        raise ValueError("probe_samples: the 'benefit' reward observes an arm once per chunk, from its replayed rows")
    c = _Chunk(model, tx, policy, spec, HOST_MEMORY if host_memory else DEVICE_MEMORY, n_dev, tuple(methods), share)
    sharded = jax.shard_map(
        functools.partial(_per_device, c),
        mesh=mesh,
        in_specs=(P(), P(None, AXIS), P(None, AXIS), c.source.spec),
        out_specs=(P(), P()),
        # Replicated outputs are built only from pmean'd / all-gathered values; the bandit's
        # scan mixes them with its replicated state, which the VMA type check cannot follow.
        check_vma=False,
    )
    if seed_axis:
        # On a mesh with a "seeds" axis (`amr.train.mesh.make_seed_mesh`) the seed axis is split over it:
        # every device group runs its own seeds, as separate processes would, in one program.
        sharded = jax.vmap(sharded, in_axes=(0, 0, 0, None), spmd_axis_name=seeds_axis(mesh))
    return jax.jit(sharded, donate_argnums=(0,))


def _check_flex(policy, spec: ChunkSpec, share, host_memory: bool, n_dev: int) -> None:
    if share is None or (share.rows_min, share.rows_max) != (spec.replay_batch - spec.flex, spec.replay_batch):
        raise ValueError(f"flex={spec.flex}: needs a share rule over [replay_batch - flex, replay_batch], got {share}")
    if host_memory or policy.candidates != 1:
        raise ValueError("flex: an adaptive replay share needs device memory and a policy without candidates (not mir)")
    if spec.flex % n_dev:
        raise ValueError(f"flex={spec.flex} is not divisible by the {n_dev} devices of the mesh")
