"""Where a chunk's replay rows come from: the chunk's key derivation, its replay (and probe) draws,
and `MemorySource`, the interface behind the chunk's 4th argument, with its two implementations.

`DEVICE_MEMORY`: the argument is every stored row, replicated; the chunk draws its ids itself and
gathers rows by id. `HOST_MEMORY` (`amr.train.host_memory`): the draws run ahead of the chunk, in
`make_presample_fn` with exactly the chunk's keys, and the argument is a `LocalMemory` -- the
presampled ids, their arms and their rows, in order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

from amr.replay import memory as memory_lib
from amr.replay import policies as replay_lib
from amr.train.mesh import AXIS

if TYPE_CHECKING:
    from amr.train.chunk import ChunkSpec


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


def _local_cols(x, dev, width):
    """This device's `width` columns of a globally drawn [S, width * n_dev] array."""
    return jax.lax.dynamic_slice_in_dim(x, dev * width, width, axis=x.ndim - 1)


def probe_ids(replay_state, key, num):
    """`num` ids spread round-robin over the active arms (NaN-free only where arms exist)."""
    active = replay_state.memory.sizes > 0
    n_active = jnp.maximum(jnp.sum(active), 1)
    order = jnp.nonzero(active, size=active.shape[0], fill_value=0)[0]
    arms = order[jnp.arange(num) % n_active].astype(jnp.int32)
    return memory_lib.draw(replay_state.memory, key, arms), arms


def chunk_keys(rng, step):
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
        sample_key, probe_key, _ = chunk_keys(rng, step)
        ids, arms = policy.presample_with_arms(replay, sample_key, S, R)
        if uses_probes(policy, spec):
            pids, parms = probe_ids(replay, probe_key, spec.probe_samples)
        else:
            pids = parms = jnp.zeros((0,), jnp.int32)
        return Presampled(
            ids.astype(jnp.int32), arms.astype(jnp.int32), pids.astype(jnp.int32), parms.astype(jnp.int32)
        )

    return jax.jit(presample)


# ---------------------------------------------------------------- where replay rows come from


class MemorySource(NamedTuple):
    """How the chunk reaches its replay rows: the interface behind the chunk's 4th argument `memory`.

    `DEVICE_MEMORY`: `memory` is every stored row, replicated; ids are drawn inside the chunk.
    `HOST_MEMORY`: `memory` is a `LocalMemory` (ids drawn ahead, their rows, this device's columns).
    """

    spec: Any  # shard_map in_spec of `memory`
    replay_inputs: Callable  # (memory, policy, replay, key, S, R) -> per-step scan inputs (leading axis S)
    candidates: Callable  # (memory, step_inputs, dev, cols) -> one step's `Candidates`, this device's `cols` rows
    probes: Callable  # (memory, replay, key, num, dev, cols) -> (ids int32[num], arms int32[num], this device's rows)
    arms: Callable  # (replay, out) -> int32[S, R] arms of the replayed ids `out["ids"]`


def gather_rows(memory, ids):
    """memory[ids], a row of zeros for an invalid id (-1: drawn from an empty memory), never a wrapped row."""
    return memory_lib.gather(memory, ids)[0]


def _device_probes(memory, replay, key, num, dev, cols):
    pids, parms = probe_ids(replay, key, num)
    return pids, parms, gather_rows(memory, _local_cols(pids, dev, cols))


DEVICE_MEMORY = MemorySource(
    spec=P(),
    replay_inputs=lambda memory, policy, replay, key, S, R: (policy.presample(replay, key, S, R),),
    candidates=lambda memory, xs, dev, cols: replay_lib.Candidates(
        xs[0], None, gather_rows(memory, _local_cols(xs[0], dev, cols))
    ),
    probes=_device_probes,
    arms=lambda replay, out: memory_lib.arms_of(replay.memory, out["ids"]),
)

HOST_MEMORY = MemorySource(
    spec=LOCAL_MEMORY_SPECS,
    replay_inputs=lambda memory, policy, replay, key, S, R: (memory.ids, memory.arms, memory.rows),
    candidates=lambda memory, xs, dev, cols: replay_lib.Candidates(*xs),  # this device's columns are its rows
    probes=lambda memory, replay, key, num, dev, cols: (memory.probe_ids, memory.probe_arms, memory.probe_rows),
    arms=lambda replay, out: out["arms"],
)
