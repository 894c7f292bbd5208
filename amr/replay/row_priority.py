"""Selection inside an arm: replay the rows of an arm that were seen forgetting most, from free signals.

The bandit chooses an arm; `memory.draw` then takes a row of it uniformly. With a row priority
β > 0 (`replay.row_priority`), AMR keeps each stored row's last observed reward (`row_gap`,
f32[capacity]: its loss increase over its own reference when it was last replayed or probed, the
value the bandit already receives; NaN until then) and draws inside the arm with weight

    w_j = exp(β · clip(z_j, -3, 3)),   z_j = (gap_j − mean gap of j's arm) / pooled within-arm sd,

with z_j = 0 (the arm's average) for a row never observed. Rows that were seen regaining loss are
replayed more, rows that were seen holding up less, at the same replay share; β = 0 is uniform
inside the arm. Everything comes from losses the chunk already computes: no extra pass, nothing
trimmed. Like prioritised experience replay, a row keeps its priority until it is observed again.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp

from amr.replay import memory as memory_lib

Z_CLIP = 3.0  # a row's weight stays within exp(±β·3) of an unobserved row's


@flax.struct.dataclass
class RowGaps:
    """The replay state's per-row record (a node, so a tree mapped to None leaves still has the field)."""

    gap: jax.Array  # f32[capacity] each row's last observed reward (NaN: never observed)


def init(capacity: int) -> RowGaps:
    return RowGaps(gap=jnp.full((capacity,), jnp.nan, jnp.float32))


def record(rows: RowGaps, sample_ids: jax.Array, gaps: jax.Array) -> RowGaps:
    """`rows` with `gaps` written at `sample_ids` (non-finite gaps and ids outside it are dropped)."""
    ids = jnp.reshape(sample_ids, -1)
    gaps = jnp.reshape(gaps, -1).astype(jnp.float32)
    ids = jnp.where(jnp.isfinite(gaps) & (ids >= 0), ids, rows.gap.shape[0])  # out of range: dropped
    return RowGaps(gap=rows.gap.at[ids].set(gaps, mode="drop"))


def arm_of_position(index: memory_lib.MemoryIndex) -> jax.Array:
    """i32[capacity]: the arm holding each position of `sorted_ids` (max_arms past the stored prefix)."""
    allocated = jnp.arange(index.max_arms) < index.num_arms
    ends = jnp.where(allocated, index.offsets + index.sizes, jnp.iinfo(index.offsets.dtype).max)
    positions = jnp.arange(index.capacity, dtype=ends.dtype)
    arm = jnp.searchsorted(ends, positions, side="right").astype(jnp.int32)
    return jnp.where(positions < index.num_samples, arm, index.max_arms)


def weights_sorted(index: memory_lib.MemoryIndex, row_gap: jax.Array, beta: float) -> jax.Array:
    """f32[capacity] draw weights in `sorted_ids` order (for `memory.draw_weighted`); see the module doc."""
    arm = arm_of_position(index)
    stored = jnp.arange(index.capacity) < index.num_samples
    gap = jnp.where(stored, row_gap[index.sorted_ids], jnp.nan)
    seen = jnp.isfinite(gap)
    g = jnp.where(seen, gap, 0.0)
    segments = index.max_arms + 1  # the last collects the unstored tail
    n_K = jax.ops.segment_sum(seen.astype(jnp.float32), arm, segments)
    mean_K = jax.ops.segment_sum(g, arm, segments) / jnp.maximum(n_K, 1.0)
    dev = jnp.where(seen, g - mean_K[arm], 0.0)
    dof = jnp.sum(seen) - jnp.sum(n_K > 0)  # one mean estimated per arm with observations
    sd = jnp.sqrt(jnp.sum(dev**2) / jnp.maximum(dof, 1))
    z = jnp.where(sd > 0, dev / jnp.where(sd > 0, sd, 1.0), 0.0)
    return jnp.where(stored, jnp.exp(beta * jnp.clip(z, -Z_CLIP, Z_CLIP)), 0.0)


def draw(index: memory_lib.MemoryIndex, rows: RowGaps, beta: float, key: jax.Array, arm_ids: jax.Array):
    """A sample id inside each given arm, by the row priority (`memory.draw_weighted`)."""
    return memory_lib.draw_weighted(index, key, arm_ids, weights_sorted(index, rows.gap, beta))
