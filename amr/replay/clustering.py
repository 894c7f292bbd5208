"""Arms from data: one arm per task, k-means clusters of a task's embeddings, or the data's own groups.

`ARM_LABELS` names how k > 1 arms split a finished task: "kmeans" (below) or "groups", the group
label the data gives each row (`amr.data.tasks.Task.train_groups`, e.g. a mixture task's source).

`kmeans` is k-means in JAX: greedy k-means++ seeding (as scikit-learn does:
2 + log k candidates per new centre, keep the one that lowers the potential
most), then either Lloyd iterations over the full data (`batch_size=None`,
stopping early once the assignment no longer changes) or Sculley's (2010)
mini-batch updates with per-centre learning rates 1 / (points seen by that
centre). Final labels and inertia are always computed on the full data.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

ARM_LABELS = ("kmeans", "groups")  # replay.arm_labels


def arm_labels(cfg) -> str:
    """`replay.arm_labels` of `cfg` ("kmeans" when the config predates the key)."""
    return cfg.replay.get("arm_labels", "kmeans")


_ASSIGN_CHUNK = 16384  # rows per chunk when assigning large data sets (bounds N x k memory)


class KMeansResult(NamedTuple):
    centroids: jax.Array  # f32[k, D]
    labels: jax.Array  # i32[N]
    inertia: jax.Array  # f32[] sum of squared distances to the assigned centroid


def per_task_labels(num_samples: int) -> np.ndarray:
    """All zeros: the whole task is one arm."""
    if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples < 0:
        raise ValueError(f"num_samples must be a non-negative int, got {num_samples!r}")
    return np.zeros((num_samples,), np.int32)


def _check_k(x_NxD, k) -> None:
    if getattr(x_NxD, "ndim", None) != 2:
        raise ValueError(f"x_NxD must be a 2-D array [N, D], got shape {getattr(x_NxD, 'shape', None)}")
    n = x_NxD.shape[0]
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 < k <= n:
        raise ValueError(f"k must be an int in [1, N={n}], got {k!r}")


def _sq_dists_NxK(x_NxD, c_KxD):
    """Squared Euclidean distances via |x|^2 - 2 x.c + |c|^2 (clamped at 0)."""
    d = jnp.sum(x_NxD**2, -1, keepdims=True) - 2.0 * x_NxD @ c_KxD.T + jnp.sum(c_KxD**2, -1)[None, :]
    return jnp.maximum(d, 0.0)


def _assign(x_NxD, c_KxD):
    """(labels i32[N], squared distance to the nearest centroid f32[N]), chunked for large N."""

    def one(x):
        d = _sq_dists_NxK(x, c_KxD)
        return jnp.argmin(d, -1).astype(jnp.int32), jnp.min(d, -1)

    n = x_NxD.shape[0]
    if n <= _ASSIGN_CHUNK:
        return one(x_NxD)
    labels, d = jax.lax.map(lambda row: jax.tree.map(lambda a: a[0], one(row[None])), x_NxD, batch_size=_ASSIGN_CHUNK)
    return labels, d


def _kmeans_plus_plus(key, x_NxD, k: int):
    n, dim = x_NxD.shape
    trials = 2 + int(math.log(k))
    key, first = jax.random.split(key)
    c0 = x_NxD[jax.random.randint(first, (), 0, n)]
    closest_N = jnp.sum((x_NxD - c0) ** 2, -1)
    centroids = jnp.zeros((k, dim), x_NxD.dtype).at[0].set(c0)

    def body(i, carry):
        centroids, closest_N = carry
        total = jnp.sum(closest_N)
        # D^2 sampling; if every point already coincides with a centre, sample uniformly.
        logits = jnp.where(total > 0, jnp.log(closest_N), 0.0)
        cand = jax.random.categorical(jax.random.fold_in(key, i), logits, shape=(trials,))
        d_NxT = jnp.minimum(closest_N[:, None], _sq_dists_NxK(x_NxD, x_NxD[cand]))
        best = jnp.argmin(jnp.sum(d_NxT, 0))
        return centroids.at[i].set(x_NxD[cand[best]]), d_NxT[:, best]

    centroids, _ = jax.lax.fori_loop(1, k, body, (centroids, closest_N))
    return centroids


@functools.partial(jax.jit, static_argnames=("k",))
def _kmeans_plus_plus_jit(key, x_NxD, k):
    return _kmeans_plus_plus(key, x_NxD, k)


def kmeans_plus_plus_init(key: jax.Array, x_NxD: jax.Array, k: int) -> jax.Array:
    """k-means++ (greedy) seeding: f32[k, D] centres chosen among the rows of x_NxD."""
    _check_k(x_NxD, k)
    return _kmeans_plus_plus_jit(key, jnp.asarray(x_NxD, jnp.float32), k)


def _lloyd_step(x_NxD, carry):
    """One Lloyd iteration: (i, centroids, labels, changed) -> the next (the while loop's body)."""
    i, c, labels, _ = carry
    k = c.shape[0]
    new_labels, _ = _assign(x_NxD, c)
    sums = jax.ops.segment_sum(x_NxD, new_labels, num_segments=k)
    counts = jax.ops.segment_sum(jnp.ones_like(new_labels, x_NxD.dtype), new_labels, num_segments=k)
    # An empty cluster keeps its centre.
    c = jnp.where(counts[:, None] > 0, sums / jnp.maximum(counts, 1.0)[:, None], c)
    return i + 1, c, new_labels, jnp.any(new_labels != labels)


def _lloyd(x_NxD, centroids, num_iters: int):
    step = functools.partial(_lloyd_step, x_NxD)

    def cond(carry):
        i, _, _, changed = carry
        return (i < num_iters) & changed

    n = x_NxD.shape[0]
    init = (0, centroids, jnp.full((n,), -1, jnp.int32), jnp.array(True))
    _, centroids, _, _ = jax.lax.while_loop(cond, step, init)
    return centroids


def _minibatch(key, x_NxD, centroids, num_iters: int, batch_size: int):
    """Sculley (2010): each centre moves towards its batch points at rate 1 / (points it has seen)."""
    n = x_NxD.shape[0]
    k = centroids.shape[0]

    def step(i, carry):
        c, seen_K = carry
        idx = jax.random.randint(jax.random.fold_in(key, i), (batch_size,), 0, n)
        xb = x_NxD[idx]
        labels, _ = _assign(xb, c)
        sums = jax.ops.segment_sum(xb, labels, num_segments=k)
        counts = jax.ops.segment_sum(jnp.ones((batch_size,), x_NxD.dtype), labels, num_segments=k)
        seen_K = seen_K + counts
        # Sequential per-point updates c += (x - c) / seen telescope to this weighted mean.
        c = c + (sums - counts[:, None] * c) / jnp.maximum(seen_K, 1.0)[:, None]
        return c, seen_K

    centroids, _ = jax.lax.fori_loop(0, num_iters, step, (centroids, jnp.zeros((k,), x_NxD.dtype)))
    return centroids


@functools.partial(jax.jit, static_argnames=("k", "num_iters", "batch_size"))
def _kmeans_jit(key, x_NxD, k, num_iters, batch_size):
    init_key, mb_key = jax.random.split(key)
    centroids = _kmeans_plus_plus(init_key, x_NxD, k)
    if batch_size is None:
        centroids = _lloyd(x_NxD, centroids, num_iters)
    else:
        centroids = _minibatch(mb_key, x_NxD, centroids, num_iters, batch_size)
    labels, _ = _assign(x_NxD, centroids)
    inertia = jnp.sum((x_NxD - centroids[labels]) ** 2)  # exact, not the expanded form
    return KMeansResult(centroids, labels, inertia)


def kmeans(
    key: jax.Array, x_NxD: jax.Array, k: int, *, num_iters: int = 50, batch_size: int | None = None
) -> KMeansResult:
    """k-means with k-means++ seeding; Lloyd (batch_size None) or mini-batch updates.

    `num_iters` bounds the Lloyd iterations (it stops earlier once the assignment
    is stable) or is the number of mini-batch steps. Jitted, with k, num_iters and
    batch_size static; callable inside an outer jit.
    """
    _check_k(x_NxD, k)
    if isinstance(num_iters, bool) or not isinstance(num_iters, (int, np.integer)) or num_iters < 0:
        raise ValueError(f"num_iters must be a non-negative int, got {num_iters!r}")
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0
    ):
        raise ValueError(f"batch_size must be None or a positive int, got {batch_size!r}")
    return _kmeans_jit(
        key, jnp.asarray(x_NxD, jnp.float32), int(k), int(num_iters), None if batch_size is None else int(batch_size)
    )
