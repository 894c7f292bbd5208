"""The index of all past data: arm (cluster) -> sample ids, with O(1) draws.

Layout ("sorted ids + offsets"): every stored sample id appears once in
`sorted_ids`, grouped arm-major, so arm `a` owns the contiguous slice
`sorted_ids[offsets[a] : offsets[a] + sizes[a]]`. Tasks are appended in order,
so the stored samples always fill the prefix `sorted_ids[:num_samples]`.

  * `draw(index, key, arm_ids)` draws uniformly inside each given arm:
    `sorted_ids[offsets[a] + randint(0, sizes[a])]`, O(1) per draw whatever the
    memory size.
  * `draw_weighted(index, key, arm_ids, weights_sorted)` draws inside each given arm
    with probability proportional to a weight per stored position, O(log capacity).
  * `draw_uniform(index, key, shape)` draws uniformly over all stored samples:
    `sorted_ids[randint(0, num_samples)]`, O(1) per draw.
  * `add_task(index, ...)` appends a finished task on the host side. It never
    rebuilds the index: it writes the task's own n entries of the two
    capacity-sized arrays (in place with `donate=True`, else after one memcpy).
    Shapes and dtypes never change, so a jitted consumer compiles once for the
    whole run.

Without an arm table (`empty_index(..., track_arms=False)`, used when the rows live on
the host, see `amr.train.host_memory`) `arm_of` is a 1-entry placeholder, so the index holds one
id (4 bytes) per stored sample; draws then report their arms themselves
(`draw` is given them, `draw_uniform_with_arms` derives them from the drawn
position), `arms_of` is unavailable and `add_task` cannot check for ids stored
twice (the caller guarantees fresh ids; the run loop appends each task once).

Emptiness: drawing from an empty memory is a `ValueError` raised on the host by
`check_nonempty`. `draw`/`draw_uniform` call it themselves when the index is
concrete; inside `jit` the index is traced and every draw from an empty memory (or
an empty arm) is the invalid id -1, never a stored sample's id. Gather rows with
`gather(rows, ids)`, which masks invalid ids, never `rows[ids]` (jnp wraps -1 to the
last row).
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

INT32_MAX = 2**31 - 1
_MIN_BUCKET = 1024  # smallest padded update size (bounds the number of compiles)


@flax.struct.dataclass
class MemoryIndex:
    """Arm -> sample ids. All fields are arrays; see the module docstring."""

    sorted_ids: jax.Array  # int[capacity] ids grouped arm-major; unused tail = 0
    offsets: jax.Array  # int[max_arms] start of each arm in sorted_ids
    sizes: jax.Array  # int[max_arms] samples per arm (0 for unused / empty arms)
    arm_of: jax.Array  # i32[capacity] arm of each sample id, -1 if not stored (i32[1] without an arm table)
    arm_task: jax.Array  # i32[max_arms] task owning each arm, -1 if unused
    num_samples: jax.Array  # int[] samples stored
    num_arms: jax.Array  # i32[] arms allocated so far

    @property
    def active(self) -> jax.Array:
        """bool[max_arms]: arms that can be drawn from (allocated and non-empty)."""
        return self.sizes > 0

    @property
    def max_arms(self) -> int:
        return self.sizes.shape[0]

    @property
    def capacity(self) -> int:
        return self.sorted_ids.shape[0]

    @property
    def tracks_arms(self) -> bool:
        """Whether `arm_of` (sample id -> arm) is kept; see the module docstring."""
        return self.arm_of.shape[0] == self.sorted_ids.shape[0]


def _id_dtype(capacity: int):
    """int32 when ids fit, int64 (x64 mode only) beyond 2**31 - 1 samples."""
    if capacity <= INT32_MAX:
        return jnp.int32
    if not jax.config.jax_enable_x64:
        raise ValueError(
            f"capacity={capacity} exceeds 2**31-1 samples, the int32 id limit; enable "
            "64-bit mode (jax.config.update('jax_enable_x64', True)) for int64 ids"
        )
    return jnp.int64


def empty_index(max_arms: int, capacity: int, track_arms: bool = True) -> MemoryIndex:
    """An index with room for `max_arms` arms and sample ids in [0, capacity).

    `track_arms=False` drops the per-sample arm table (4 bytes per stored sample)."""
    if isinstance(max_arms, bool) or not isinstance(max_arms, (int, np.integer)) or max_arms <= 0:
        raise ValueError(f"max_arms must be a positive int, got {max_arms!r}")
    if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)) or capacity <= 0:
        raise ValueError(f"capacity must be a positive int, got {capacity!r}")
    if max_arms > INT32_MAX:
        raise ValueError(f"max_arms={max_arms} exceeds 2**31-1")
    dt = _id_dtype(int(capacity))
    return MemoryIndex(
        sorted_ids=jnp.zeros((capacity,), dt),
        offsets=jnp.zeros((max_arms,), dt),
        sizes=jnp.zeros((max_arms,), dt),
        arm_of=jnp.full((capacity if track_arms else 1,), -1, jnp.int32),  # 1, not 0: orbax saves no empty arrays
        arm_task=jnp.full((max_arms,), -1, jnp.int32),
        num_samples=jnp.zeros((), dt),
        num_arms=jnp.zeros((), jnp.int32),
    )


def check_nonempty(index: MemoryIndex) -> None:
    """Raises ValueError (host side) if `index` stores no sample. Needs a concrete index."""
    if isinstance(index.num_samples, jax.core.Tracer):
        raise ValueError(
            "index: check_nonempty needs a concrete index; call it before jit (inside jit "
            "the caller must check emptiness first)"
        )
    if int(index.num_samples) == 0:
        raise ValueError("index: the memory is empty (no task added yet); nothing to draw")


def _is_concrete(*xs) -> bool:
    return not any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(xs))


# --- host-side append ---------------------------------------------------------


def _bucket(n: int, limit: int) -> int:
    """Pads update sizes to powers of two (few compiles), never beyond `limit`."""
    b = max(_MIN_BUCKET, 1 << max(0, (n - 1).bit_length()))
    return max(n, min(b, limit))


def _pad(x: np.ndarray, size: int, fill) -> np.ndarray:
    out = np.full((size,), fill, dtype=x.dtype)
    out[: x.shape[0]] = x
    return out


@jax.jit
def _gather_arm_of(arm_of, ids):
    return arm_of.at[ids].get(mode="fill", fill_value=-1)


def _scatter_task(sorted_ids, arm_of, positions, ids, arms):
    # Padding entries carry an out-of-range position / id and are dropped (all of them without an arm table).
    sorted_ids = sorted_ids.at[positions].set(ids, mode="drop")
    arm_of = arm_of.at[ids].set(arms, mode="drop")
    return sorted_ids, arm_of


_scatter_copy = jax.jit(_scatter_task)
_scatter_inplace = jax.jit(_scatter_task, donate_argnums=(0, 1))


def _like(old: jax.Array, new) -> jax.Array:
    """New small array with `old`'s dtype and placement (so nothing recompiles)."""
    return jax.device_put(np.asarray(new, dtype=old.dtype), old.sharding)


def add_task(
    index: MemoryIndex,
    sample_ids,
    cluster_labels,
    task_id: int,
    num_clusters: int | None = None,
    *,
    donate: bool = False,
) -> tuple[MemoryIndex, np.ndarray]:
    """Appends a finished task's samples (host side), one new arm per local cluster.

    Args:
        index: a concrete (not traced) index.
        sample_ids: int[n] ids in [0, capacity), distinct and not stored yet.
        cluster_labels: int[n] local cluster of each sample, in [0, num_clusters).
        task_id: non-negative id of the task owning the new arms.
        num_clusters: number of arms to allocate; default `max(cluster_labels) + 1`.
            Clusters without samples still get an arm, of size 0 (never drawn).
        donate: write the task into `index`'s two capacity-sized buffers in place
            (they are donated: `index` must not be used afterwards, nor any other
            object sharing its arrays). Without it the buffers are copied once.

    Returns:
        (new index, global arm ids int32[num_clusters]): local label `c` became arm
        `arm_ids[c]`; arms are allocated consecutively after the existing ones.

    Cost: no rebuild, O(n) in the task size: grouping by label is a stable radix
    sort (up to 65,536 clusters), the duplicate check touches n entries of a
    lazily zeroed scratch array, and the device writes only the task's n entries
    -- plus, unless `donate`, one memcpy of the two capacity-sized buffers.
    """
    ids, labels, num_clusters = _checked_task(index, sample_ids, cluster_labels, task_id, num_clusters)
    ids = ids.astype(np.dtype(index.sorted_ids.dtype), copy=False)
    _check_fresh(index, ids)
    num_arms, start, n = int(index.num_arms), int(index.num_samples), ids.shape[0]
    arm_ids = np.arange(num_arms, num_arms + num_clusters, dtype=np.int32)
    counts, order = _group_by_label(labels, num_clusters, ids.dtype)
    sorted_ids, arm_of = index.sorted_ids, index.arm_of
    if n:
        bucket, capacity = _bucket(n, index.capacity), index.capacity
        scatter = _scatter_inplace if donate else _scatter_copy
        sorted_ids, arm_of = scatter(
            sorted_ids,
            arm_of,
            _pad(np.arange(start, start + n, dtype=ids.dtype), bucket, capacity),
            _pad(ids[order], bucket, capacity),
            _pad(np.repeat(arm_ids, counts), bucket, -1),
        )  # labels[order] is sorted

    offsets = np.asarray(index.offsets).copy()
    sizes = np.asarray(index.sizes).copy()
    arm_task = np.asarray(index.arm_task).copy()
    sl = slice(num_arms, num_arms + num_clusters)
    offsets[sl] = start + np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(ids.dtype)
    sizes[sl], arm_task[sl] = counts, task_id
    new_index = MemoryIndex(
        sorted_ids=sorted_ids,
        offsets=_like(index.offsets, offsets),
        sizes=_like(index.sizes, sizes),
        arm_of=arm_of,
        arm_task=_like(index.arm_task, arm_task),
        num_samples=_like(index.num_samples, start + n),
        num_arms=_like(index.num_arms, num_arms + num_clusters),
    )
    return new_index, arm_ids


def _is_int_vector(x: np.ndarray) -> bool:
    return x.ndim == 1 and (not x.size or np.issubdtype(x.dtype, np.integer))


def _checked_task(index, sample_ids, cluster_labels, task_id, num_clusters):
    """(ids, labels, num_clusters) of an `add_task` call, or a ValueError naming the bad argument."""
    if not _is_concrete(index):
        raise ValueError("index: add_task is host-side and needs a concrete index, not a traced one")
    ids, labels = np.asarray(sample_ids), np.asarray(cluster_labels)
    if not _is_int_vector(ids):
        raise ValueError(f"sample_ids must be a 1-D integer array, got shape {ids.shape} dtype {ids.dtype}")
    if not _is_int_vector(labels):
        raise ValueError(f"cluster_labels must be a 1-D integer array, got shape {labels.shape} dtype {labels.dtype}")
    if ids.shape != labels.shape:
        raise ValueError(
            f"sample_ids (length {ids.shape[0]}) and cluster_labels "
            f"(length {labels.shape[0]}) must have the same length"
        )
    if isinstance(task_id, bool) or not isinstance(task_id, (int, np.integer)) or not 0 <= task_id <= INT32_MAX:
        raise ValueError(f"task_id must be a non-negative int, got {task_id!r}")
    n = ids.shape[0]
    if num_clusters is None:
        if n == 0:
            raise ValueError("sample_ids is empty: pass num_clusters to allocate empty arms")
        num_clusters = int(labels.max()) + 1
    if isinstance(num_clusters, bool) or not isinstance(num_clusters, (int, np.integer)) or num_clusters <= 0:
        raise ValueError(f"num_clusters must be a positive int, got {num_clusters!r}")
    if n and (labels.min() < 0 or labels.max() >= num_clusters):
        raise ValueError(
            f"cluster_labels must lie in [0, num_clusters={num_clusters}), got "
            f"values in [{labels.min()}, {labels.max()}]"
        )
    capacity, max_arms = index.capacity, index.max_arms
    if n and (ids.min() < 0 or ids.max() >= capacity):
        raise ValueError(f"sample_ids must lie in [0, capacity={capacity}), got values in [{ids.min()}, {ids.max()}]")
    num_arms = int(index.num_arms)
    if num_arms + num_clusters > max_arms:
        raise ValueError(
            f"num_clusters={num_clusters} new arms exceed max_arms={max_arms} ({num_arms} already allocated)"
        )
    return ids, labels, num_clusters


def _check_fresh(index: MemoryIndex, ids: np.ndarray) -> None:
    """ValueError if `ids` repeats an id or (with an arm table) holds one already stored."""
    n, capacity = ids.shape[0], index.capacity
    if not n:
        return
    # Duplicates in O(n): write each id's position into a lazily zeroed (calloc)
    # scratch array; an id written twice reads back the later position.
    where = np.zeros((capacity,), np.int64 if n > INT32_MAX else np.int32)
    pos = np.arange(n, dtype=where.dtype)
    where[ids] = pos
    if not np.array_equal(where[ids], pos):
        dup = ids[where[ids] != pos][:5]
        raise ValueError(f"sample_ids contains duplicate ids (e.g. {dup.tolist()})")
    del where, pos
    if index.tracks_arms:
        stored = np.asarray(_gather_arm_of(index.arm_of, _pad(ids, _bucket(n, capacity), capacity)))[:n]
        if np.any(stored >= 0):
            bad = ids[stored >= 0][:5]
            raise ValueError(f"sample_ids already stored in memory (e.g. {bad.tolist()})")


def _group_by_label(labels: np.ndarray, num_clusters: int, id_dt):
    """(counts per cluster, stable order grouping the samples by label): a counting / radix sort."""
    sort_dt = np.uint16 if num_clusters <= 2**16 else np.int64
    order = np.argsort(labels.astype(sort_dt, copy=False), kind="stable")
    counts = np.bincount(labels, minlength=num_clusters).astype(id_dt)
    return counts, order


# --- draws (jittable) ---------------------------------------------------------


def draw(index: MemoryIndex, key: jax.Array, arm_ids: jax.Array) -> jax.Array:
    """A uniform sample id inside each given arm; same shape as `arm_ids`.

    O(1) per draw: `sorted_ids[offsets[a] + randint(0, sizes[a])]`. An arm with
    no samples (empty cluster, unallocated arm) or outside [0, max_arms) yields
    -1, never a foreign id; the replay layer only asks for active arms.
    Jittable; with a concrete index it first checks (host side) that the memory is
    not empty, inside jit an empty memory gives -1 everywhere.
    """
    arm_ids, valid, size, offset = _arm_slices(index, arm_ids)
    j = jax.random.randint(key, arm_ids.shape, 0, jnp.maximum(size, 1), dtype=size.dtype)
    return _ids_at(index, offset + j, valid, size)


def _arm_slices(index: MemoryIndex, arm_ids):
    """(arm_ids, valid, size, offset) of the arms drawn from, after the checks `draw` documents."""
    if _is_concrete(index):
        check_nonempty(index)
    arm_ids = jnp.asarray(arm_ids)
    if not jnp.issubdtype(arm_ids.dtype, jnp.integer):
        raise ValueError(f"arm_ids must be integers, got dtype {arm_ids.dtype}")
    valid = (arm_ids >= 0) & (arm_ids < index.max_arms)
    arm = jnp.where(valid, arm_ids, 0)
    return arm_ids, valid, index.sizes[arm], index.offsets[arm]


def _ids_at(index: MemoryIndex, positions, valid, size):
    """The ids at `positions` of `sorted_ids`, -1 where the arm was invalid or empty."""
    ids = index.sorted_ids[positions]
    return jnp.where(valid & (size > 0), ids, jnp.asarray(-1, ids.dtype))


def draw_weighted(index: MemoryIndex, key: jax.Array, arm_ids: jax.Array, weights_sorted: jax.Array) -> jax.Array:
    """A sample id inside each given arm, drawn with probability proportional to its weight.

    `weights_sorted` (f32[capacity], in `sorted_ids` order, >= 0; `amr.replay.row_priority`) weighs the
    stored samples; inside arm `a` the id at position j is drawn with probability
    w[j] / sum(w[offsets[a] : offsets[a] + sizes[a]]), by one uniform and a binary search in the
    prefix sums, O(log capacity) per draw. An arm whose weights sum to 0 (or are not finite) is drawn
    uniformly, as `draw` does; an empty or invalid arm yields -1. Jittable; same shape as `arm_ids`.
    """
    arm_ids, valid, size, offset = _arm_slices(index, arm_ids)
    w = jnp.asarray(weights_sorted, jnp.float32)
    if w.shape != index.sorted_ids.shape:
        raise ValueError(
            f"weights_sorted must have one weight per stored position {index.sorted_ids.shape}, got {w.shape}"
        )
    w = jnp.where(jnp.isfinite(w) & (w > 0), w, 0.0)
    cdf = jnp.concatenate([jnp.zeros((1,), jnp.float32), jnp.cumsum(w)])  # cdf[j] = sum(w[:j])
    lo, hi = cdf[offset], cdf[offset + size]
    u_key, j_key = jax.random.split(key)
    x = lo + jax.random.uniform(u_key, arm_ids.shape, jnp.float32) * (hi - lo)
    weighted = offset + jnp.clip(jnp.searchsorted(cdf[1:], x, side="right").astype(size.dtype) - offset, 0, size - 1)
    uniform = offset + jax.random.randint(j_key, arm_ids.shape, 0, jnp.maximum(size, 1), dtype=size.dtype)
    return _ids_at(index, jnp.where(hi > lo, weighted, uniform), valid, size)


def draw_uniform(index: MemoryIndex, key: jax.Array, shape) -> jax.Array:
    """Sample ids uniform over all stored samples (the 'uniform' baseline), O(1) each.

    Jittable (`shape` static). A concrete index is checked for emptiness on the
    host; inside jit an empty memory gives -1 everywhere.
    """
    if _is_concrete(index):
        check_nonempty(index)
    n = index.num_samples
    j = jax.random.randint(key, tuple(shape), 0, jnp.maximum(n, 1), dtype=n.dtype)
    return jnp.where(n > 0, index.sorted_ids[j], jnp.asarray(-1, index.sorted_ids.dtype))


def draw_uniform_with_arms(index: MemoryIndex, key: jax.Array, shape) -> tuple[jax.Array, jax.Array]:
    """`draw_uniform`'s ids (same key, same ids) and the arm each came from, without `arm_of`.

    The arm of drawn position j is the non-empty arm whose slice of `sorted_ids` holds j
    (a [draws, max_arms] comparison: arms are few)."""
    if _is_concrete(index):
        check_nonempty(index)
    n = index.num_samples
    j = jax.random.randint(key, tuple(shape), 0, jnp.maximum(n, 1), dtype=n.dtype)
    inside = (index.offsets <= j[..., None]) & (j[..., None] < index.offsets + index.sizes) & (index.sizes > 0)
    arms = jnp.where(jnp.any(inside, axis=-1), jnp.argmax(inside, axis=-1), -1).astype(jnp.int32)
    return jnp.where(n > 0, index.sorted_ids[j], jnp.asarray(-1, index.sorted_ids.dtype)), arms


def arms_of(index: MemoryIndex, sample_ids: jax.Array) -> jax.Array:
    """Arm of each sample id (-1 where not stored or outside [0, capacity)). Needs the arm table."""
    if not index.tracks_arms:
        raise ValueError(
            "index: arms_of needs the per-sample arm table, which this index does not keep "
            "(empty_index(..., track_arms=False)); take the arms from the draw instead"
        )
    sample_ids = jnp.asarray(sample_ids)
    inside = (sample_ids >= 0) & (sample_ids < index.capacity)
    arms = index.arm_of[jnp.where(inside, sample_ids, 0)]
    return jnp.where(inside, arms, -1)


def gather(rows_Nx, ids) -> tuple[jax.Array, jax.Array]:
    """(rows_Nx[ids] with zeros where an id is invalid, bool mask of the valid ids).

    The safe way to fetch replay rows: an id outside [0, N) (e.g. the -1 of a draw from an
    empty memory) gives a row of zeros and `valid=False` -- plain `rows_Nx[ids]` would wrap -1
    to the last row. Mask the losses of invalid rows (`jnp.where(valid, losses, nan)`); the
    bandit ignores NaN. `ids` must be integers (ValueError naming it otherwise, also when traced).
    """
    rows_Nx = jnp.asarray(rows_Nx)
    ids = jnp.asarray(ids)
    if not jnp.issubdtype(ids.dtype, jnp.integer):
        raise ValueError(f"ids must be integer sample ids, got dtype {ids.dtype}")
    if rows_Nx.ndim == 0:
        raise ValueError(f"rows_Nx must have a leading sample axis, got shape {rows_Nx.shape}")
    valid = (ids >= 0) & (ids < rows_Nx.shape[0])
    safe = jnp.where(valid, ids, 0)
    picked = rows_Nx[safe]
    mask = valid.reshape(valid.shape + (1,) * (rows_Nx.ndim - 1))
    return jnp.where(mask, picked, jnp.zeros((), rows_Nx.dtype)), valid
