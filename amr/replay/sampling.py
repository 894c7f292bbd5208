"""Categorical draws by inverse CDF: one uniform per draw, never an arm of probability 0.

`jax.random.categorical` draws K Gumbel values per sample (O(K) random bits and
exps); the replay layer draws thousands of arm ids per chunk from a K-vector that
does not change within a step, so one uniform per draw plus a search in the
cumulative sums is cheaper (about 5x at K = 16 on CPU, more for larger K).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

COMPARE_ALL_MAX_ARMS = 64  # up to this K, compare every draw with every CDF entry; above, binary search


def _as_weights(probs_K) -> jax.Array:
    p_K = jnp.asarray(probs_K)
    if p_K.ndim != 1 or p_K.shape[0] == 0:
        raise ValueError(f"probs_K must be a non-empty 1-D vector, got shape {p_K.shape}")
    p_K = p_K.astype(jnp.promote_types(p_K.dtype, jnp.float32))  # ints, bf16 -> f32
    return jnp.where(jnp.isfinite(p_K) & (p_K > 0), p_K, 0.0)


def inverse_cdf(probs_K, u) -> jax.Array:
    """int32[u.shape]: the arm whose CDF interval holds `u * total` (u in [0, 1)).

    The deterministic half of `sample_from_probs`, exposed so tests can drive it
    with chosen uniforms (e.g. the largest float32 below 1). Same contract.
    """
    p_K = _as_weights(probs_K)
    K = p_K.shape[0]
    positive_K = p_K > 0
    # Zero-weight arms repeat the previous positive arm's CDF value exactly, and cummax
    # undoes any non-monotone rounding of the prefix sum, so a zero arm's interval
    # [cdf[i-1], cdf[i]) is empty (leading zeros sit at 0 <= u and are passed over).
    cdf_K = jax.lax.cummax(jnp.where(positive_K, jnp.cumsum(p_K), 0.0))
    total = cdf_K[-1]
    # u * total may round up to total (or u could be 1): clamp strictly below it, so the
    # search never runs past the last positive arm into trailing zero arms.
    x = jnp.minimum(jnp.asarray(u, p_K.dtype) * total, jnp.nextafter(total, jnp.zeros_like(total)))
    method = "compare_all" if K <= COMPARE_ALL_MAX_ARMS else "scan"
    ids = jnp.searchsorted(cdf_K, x, side="right", method=method)
    return jnp.where(total > 0, jnp.minimum(ids, K - 1), -1).astype(jnp.int32)


def sample_from_probs(key: jax.Array, probs_K, shape: Sequence[int] | int = ()) -> jax.Array:
    """int32[shape] i.i.d. arm ids with P(i) = probs_K[i] / sum(probs_K), by inverse CDF.

    `probs_K` need not be normalised; entries that are <= 0 or not finite count as 0
    and are NEVER drawn, whatever the float rounding of the cumulative sum (its last
    entry may end below or above 1). If no entry is positive, every id is -1.
    Jittable (`shape` static); one uniform per draw, O(K) work per draw for
    K <= COMPARE_ALL_MAX_ARMS (vectorised compares), O(log K) above.
    """
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    p_K = _as_weights(probs_K)
    return inverse_cdf(p_K, jax.random.uniform(key, shape, p_K.dtype))
