"""The free marginal-benefit estimate behind `amr(reward="benefit")` (derivation: docs/REWARDS.md).

How much does one more replayed row per step slow an arm's forgetting? Per arm the state keeps
its rows' mean loss increase (over each row's own 'sample' reference) at its last observation,
the global step of that observation and the rows replayed since. When the arm is observed again
(one chunk's replayed rows of it), the interval gives one pair

    x = rows replayed in the interval / dt        (replay intensity, rows per step)
    d = (level now - level then) / dt             (drift of its forgetting, loss per step)

and exponentially weighted moments of (x, d) give the least-squares slope of drift on intensity.
The benefit is minus that slope, shrunk toward the pooled within-arm slope of all arms when an
arm's own intensities barely vary (`estimate`). Everything is a pure function of K-vectors
built from losses the chunk already has: no extra forward pass, no host round trip.

    state = init(K)
    state = observe(state, level_K, replayed_K, step, alpha)   # NaN level: arm not observed
    benefit_K = estimate(state, prior)                          # NaN: no pair yet
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp

from amr.replay.bandit_math import ema_effective_count

TINY = 1e-12  # floor of a sum of squares below which a slope is not defined


@flax.struct.dataclass
class BenefitState:
    level: jax.Array  # f32[K] mean loss increase of the arm's rows at its last observation (NaN: never)
    seen_at: jax.Array  # i32[K] global step of that observation
    replayed: jax.Array  # i32[K] rows of the arm replayed since that observation (the chunk observed included)
    pairs: jax.Array  # i32[K] (intensity, drift) pairs seen
    mean_x: jax.Array  # f32[K] weighted mean of the intensities x (rows per step)
    mean_d: jax.Array  # f32[K] weighted mean of the drifts d (loss per step)
    var_x: jax.Array  # f32[K] weighted variance of x
    cov_xd: jax.Array  # f32[K] weighted covariance of x and d


def init(num_arms: int) -> BenefitState:
    f32_K, i32_K = jnp.zeros((num_arms,), jnp.float32), jnp.zeros((num_arms,), jnp.int32)
    return BenefitState(
        level=jnp.full((num_arms,), jnp.nan, jnp.float32),
        seen_at=i32_K,
        replayed=i32_K,
        pairs=i32_K,
        mean_x=f32_K,
        mean_d=f32_K,
        var_x=f32_K,
        cov_xd=f32_K,
    )


def observe(state: BenefitState, level_K, replayed_K, step, alpha: float) -> BenefitState:
    """The state after one observation at global `step`.

    level_K: f32[K] the observed arms' mean loss increase (NaN: arm not observed now);
    replayed_K: i32[K] rows of each arm replayed in what is observed now (they count toward the
    next interval). An arm with a finite level and an earlier observation (dt > 0) adds one
    (x, d) pair to its moments with EMA rate `alpha` (the first pair initialises them, so the
    weights are those of `bandit_math.ema_effective_count`); observing at a step not after the
    last one is ignored. Moments are updated in the incremental (West) form, free of the
    cancellation of E[x^2] - E[x]^2."""
    step = jnp.asarray(step, jnp.int32)
    level_K = jnp.asarray(level_K, jnp.float32)
    seen_K = jnp.isfinite(state.level)
    dt_K = step - state.seen_at
    observed_K = jnp.isfinite(level_K) & (~seen_K | (dt_K > 0))
    pair_K = observed_K & seen_K
    dt_f = jnp.maximum(dt_K, 1).astype(jnp.float32)
    x_K = state.replayed.astype(jnp.float32) / dt_f
    d_K = (level_K - state.level) / dt_f
    first_K = state.pairs == 0
    dx_K, dd_K = x_K - state.mean_x, d_K - state.mean_d
    moments = dict(
        mean_x=jnp.where(first_K, x_K, state.mean_x + alpha * dx_K),
        mean_d=jnp.where(first_K, d_K, state.mean_d + alpha * dd_K),
        var_x=jnp.where(first_K, 0.0, (1.0 - alpha) * (state.var_x + alpha * dx_K * dx_K)),
        cov_xd=jnp.where(first_K, 0.0, (1.0 - alpha) * (state.cov_xd + alpha * dx_K * dd_K)),
    )
    moments = {k: jnp.where(pair_K, v, getattr(state, k)) for k, v in moments.items()}
    return state.replace(
        level=jnp.where(observed_K, level_K, state.level),
        seen_at=jnp.where(observed_K, step, state.seen_at),
        replayed=jnp.where(observed_K, 0, state.replayed) + jnp.asarray(replayed_K, jnp.int32),
        pairs=state.pairs + pair_K.astype(jnp.int32),
        **moments,
    )


def estimate(state: BenefitState, prior: float, alpha: float) -> jax.Array:
    """f32[K] benefit = -(slope of drift on replay intensity), NaN for arms without a pair.

    With n_a the effective count of arm a's weighted pairs (`ema_effective_count`), its sums of
    squares are Sxx_a = n_a var_x_a and Sxd_a = n_a cov_xd_a. The pooled slope is the fixed-effects
    (within-arm) slope b0 = sum Sxd / sum Sxx, and each arm's slope is the posterior mean under a
    prior N(b0, .) worth `prior` pseudo-pairs at the pooled within-arm variance V0 = sum Sxx / sum n:

        b_a = (Sxd_a + lam b0) / (Sxx_a + lam),   lam = prior V0.

    prior = 0 is each arm's own least-squares slope (b0 where an arm's x never varied); a large
    prior gives every arm b0. Arms whose Sxx_a dwarfs lam keep their own slope."""
    has_K = state.pairs > 0
    n_K = jnp.where(has_K, ema_effective_count(state.pairs, alpha), 0.0)
    sxx_K = jnp.where(has_K, n_K * state.var_x, 0.0)
    sxd_K = jnp.where(has_K, n_K * state.cov_xd, 0.0)
    sxx, sxd, n = sxx_K.sum(), sxd_K.sum(), n_K.sum()
    pooled_slope = jnp.where(sxx > TINY, sxd / jnp.maximum(sxx, TINY), 0.0)
    lam = prior * sxx / jnp.maximum(n, 1.0)
    den_K = sxx_K + lam
    slope_K = jnp.where(den_K > TINY, (sxd_K + lam * pooled_slope) / jnp.maximum(den_K, TINY), pooled_slope)
    return jnp.where(has_K, -slope_K, jnp.nan)


def level_and_counts(arm_ids_N, increases_N, losses_N, active_K):
    """(level_K, replayed_K) of one call's rows: each arm's mean finite loss increase (NaN: none)
    and its replayed rows (arm id in [0, K), arm active, finite loss: the step that trained on it ran)."""
    K = active_K.shape[0]
    ids_N = jnp.asarray(arm_ids_N, jnp.int32)
    valid_N = (ids_N >= 0) & (ids_N < K) & active_K[jnp.clip(ids_N, 0, K - 1)]
    seg_N = jnp.where(valid_N, ids_N, K)
    counted_N = valid_N & jnp.isfinite(losses_N)
    replayed_K = jax.ops.segment_sum(counted_N.astype(jnp.int32), seg_N, num_segments=K + 1)[:K]
    finite_N = valid_N & jnp.isfinite(increases_N)
    sum_K = jax.ops.segment_sum(jnp.where(finite_N, increases_N, 0.0), seg_N, num_segments=K + 1)[:K]
    n_K = jax.ops.segment_sum(finite_N.astype(jnp.int32), seg_N, num_segments=K + 1)[:K]
    level_K = jnp.where(n_K > 0, sum_K / jnp.maximum(n_K, 1).astype(jnp.float32), jnp.nan)
    return level_K, replayed_K
