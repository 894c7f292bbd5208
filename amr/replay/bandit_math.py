"""Scores and sampling distributions of the bandit policies (helpers of `amr.replay.bandit`).

Everything here is a pure function of K-vectors; `K` is the number of allocated
arms, `active_K` masks the arms that exist now. Every distribution is 0 on inactive
arms and sums to 1 when at least one arm is active (all zeros otherwise).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

STD_FLOOR = 1e-6  # floor of the spread used by `zscore` / `minmax`
EXP3_P_FLOOR = 1e-6  # floor of the probability that divides an EXP3 reward
THOMPSON_DRAWS = 512  # Monte Carlo draws behind `probs` for Thompson sampling
THOMPSON_SEED = 0  # fixed seed of those draws: `probs` is a deterministic function of the state


def masked_softmax(logits_K: jax.Array, mask_K: jax.Array) -> jax.Array:
    """softmax over the masked entries, exact zeros elsewhere (all zeros if none)."""
    x_K = jnp.where(mask_K, logits_K, -jnp.inf)
    top = jnp.max(x_K)
    top = jnp.where(jnp.isfinite(top), top, 0.0)
    e_K = jnp.where(mask_K, jnp.exp(x_K - top), 0.0)
    return e_K / jnp.maximum(e_K.sum(), jnp.finfo(jnp.float32).tiny)


def uniform_over(mask_K: jax.Array) -> jax.Array:
    m_K = mask_K.astype(jnp.float32)
    return m_K / jnp.maximum(m_K.sum(), 1.0)


def ties_uniform(x_K: jax.Array, mask_K: jax.Array) -> jax.Array:
    """All mass on the masked maxima of x, split evenly between ties."""
    x_K = jnp.where(mask_K, x_K, -jnp.inf)
    return uniform_over(mask_K & (x_K == jnp.max(x_K)))


def one_hot_argmax(x_K: jax.Array, mask_K: jax.Array) -> jax.Array:
    """All mass on the first masked maximum of x (deterministic)."""
    idx = jnp.argmax(jnp.where(mask_K, x_K, -jnp.inf))
    return jax.nn.one_hot(idx, x_K.shape[0], dtype=jnp.float32) * jnp.any(mask_K)


def _mean_and_spread(value_K, observed_K):
    nf = jnp.maximum(observed_K.sum(), 1).astype(jnp.float32)
    shift = jnp.where(observed_K, value_K, 0.0).sum() / nf
    var = jnp.where(observed_K, (value_K - shift) ** 2, 0.0).sum() / nf
    return nf, shift, var


def zscore(value_K, observed_K, sq_K):
    """(shift, scale): divide by the spread of the arm estimates (two arms are always +-1 apart)."""
    _, shift, var = _mean_and_spread(value_K, observed_K)
    return shift, 1.0 / jnp.maximum(jnp.sqrt(var), STD_FLOOR)


def pooled(value_K, observed_K, sq_K):
    """(shift, scale): divide by the spread of single rewards (between-arm plus within-arm
    variance, from `sq_K`), so gaps small against the observation noise give mild preferences."""
    nf, shift, between = _mean_and_spread(value_K, observed_K)
    within = jnp.where(observed_K, jnp.maximum(sq_K - value_K**2, 0.0), 0.0).sum() / nf
    return shift, 1.0 / jnp.maximum(jnp.sqrt(between + within), STD_FLOOR)


def minmax(value_K, observed_K, sq_K):
    """(shift, scale) mapping the observed estimates to [0, 1]."""
    n = observed_K.sum()
    lo = jnp.where(n > 0, jnp.min(jnp.where(observed_K, value_K, jnp.inf)), 0.0)
    hi = jnp.where(n > 0, jnp.max(jnp.where(observed_K, value_K, -jnp.inf)), 0.0)
    return lo, 1.0 / jnp.maximum(hi - lo, STD_FLOOR)


def identity(value_K, observed_K, sq_K):
    """(shift, scale) = (0, 1): raw estimates."""
    return jnp.float32(0.0), jnp.float32(1.0)


# The normalisers by config name (`amr.replay.registry.NORMALIZERS` lists these keys).
NORMALISERS = {"zscore": zscore, "pooled": pooled, "minmax": minmax, "none": identity}


def normalise(value_K, observed_K, normaliser, sq_K=None):
    """(z_K, scale): value mapped affinely with the statistics of the observed arms.

    z = (value - shift) * scale on observed arms, 0 elsewhere; `scale` also maps a
    variance (times scale**2) into normalised units. `normaliser` is one of the functions
    above (or its name in `NORMALISERS`).
    """
    fn = NORMALISERS[normaliser] if isinstance(normaliser, str) else normaliser
    shift, scale = fn(value_K, observed_K, sq_K)
    z_K = jnp.where(observed_K, (value_K - shift) * scale, 0.0)
    return z_K, scale


def optimistic_scores(z_K, observed_K, active_K, optimism: float):
    """Observed arms keep z; active unseen arms get max observed z + optimism (0 + optimism
    if nothing is observed); inactive arms get 0."""
    top = jnp.max(jnp.where(observed_K, z_K, -jnp.inf))
    top = jnp.where(jnp.any(observed_K), top, 0.0)
    return jnp.where(observed_K, z_K, jnp.where(active_K, top + optimism, 0.0))


def ema_effective_count(count_K, alpha: float) -> jax.Array:
    """Effective sample size (f32[K]) of an EMA estimate: 1 / sum(w_i**2) over the EMA
    weights of the `count` observations (first observation initialises): 1 after one
    observation, tending to (2 - alpha) / alpha. Unlike the raw count it saturates, so
    uncertainty-based policies keep exploring when rewards drift. (A window estimate's
    effective size is its fill.)
    """
    n_K = jnp.maximum(count_K, 1).astype(jnp.float32)
    q_K = jnp.power(jnp.float32(1.0 - alpha), 2.0 * (n_K - 1.0))
    sum_sq_K = q_K + alpha * (1.0 - q_K) / (2.0 - alpha)
    return jnp.where(count_K > 0, 1.0 / sum_sq_K, 0.0)


def exp3_probs(est_K, active_K, t) -> jax.Array:
    """Online Data Mixing (Albalak et al. 2023) EXP3 distribution.

    eps_t = min(1/K_a, sqrt(log K_a / (K_a t))) (1/K_a before any observation),
    p = (1 - K_a eps_t) softmax(eps_t est) + eps_t on the K_a active arms.
    """
    ka = jnp.maximum(active_K.sum(), 1).astype(jnp.float32)
    tf = jnp.maximum(t, 1).astype(jnp.float32)
    eps = jnp.where(t > 0, jnp.minimum(1.0 / ka, jnp.sqrt(jnp.log(ka) / (ka * tf))), 1.0 / ka)
    soft_K = masked_softmax(eps * est_K, active_K)
    return ((1.0 - ka * eps) * soft_K + eps) * active_K


def gaussian_posterior(value_K, sq_K, n_eff_K, observed_K, active_K, z_K, scale, s_K):
    """(mean_K, std_K) of the Thompson posterior, in normalised units.

    mean = the policy score s (optimistic for unseen arms). The noise variance of an
    arm, max(sq - value**2, 0) * scale**2, is shrunk towards a prior variance by one
    pseudo-observation, and std = sqrt(noise_var / max(n_eff, 1)). The prior variance
    is the larger of the pooled within-arm variance and the spread of the observed
    arms' scores (1 before any observation); unseen arms get std = sqrt(prior var).
    """
    n_obs = jnp.maximum(observed_K.sum(), 1).astype(jnp.float32)
    var_K = jnp.maximum(sq_K - value_K**2, 0.0) * scale**2
    pooled = jnp.where(observed_K, var_K, 0.0).sum() / n_obs
    z_mean = jnp.where(observed_K, z_K, 0.0).sum() / n_obs
    spread = jnp.where(observed_K, (z_K - z_mean) ** 2, 0.0).sum() / n_obs
    prior_var = jnp.where(jnp.any(observed_K), jnp.maximum(jnp.maximum(pooled, spread), STD_FLOOR**2), 1.0)
    noise_K = (n_eff_K * var_K + prior_var) / (n_eff_K + 1.0)
    std_K = jnp.where(observed_K, jnp.sqrt(noise_K / jnp.maximum(n_eff_K, 1.0)), jnp.sqrt(prior_var))
    return s_K, jnp.where(active_K, std_K, 0.0)


def _masked_draws(draws, active_K):
    """Inactive arms at -inf; an active arm's overflowed (inf/NaN) draw is clipped so it still beats them."""
    big = jnp.finfo(jnp.float32).max
    return jnp.where(active_K, jnp.nan_to_num(draws, nan=-big, posinf=big, neginf=-big), -jnp.inf)


def thompson_argmax(key, mean_K, std_K, active_K, n: int) -> jax.Array:
    """i32[n]: one posterior draw of every arm per slot, argmax over the active arms."""
    noise_NxK = jax.random.normal(key, (n, mean_K.shape[0]), jnp.float32)
    draws_NxK = _masked_draws(mean_K + std_K * noise_NxK, active_K)
    return jnp.argmax(draws_NxK, axis=-1).astype(jnp.int32)


@functools.cache
def thompson_noise(num_arms: int):
    """f32[THOMPSON_DRAWS, K] fixed standard normals (numpy, seed THOMPSON_SEED) behind
    `thompson_probs`: built once per K (cached, read-only), no random-number generation per call."""
    rng = np.random.default_rng(THOMPSON_SEED)
    noise_DxK = rng.standard_normal((THOMPSON_DRAWS, num_arms)).astype(np.float32)
    noise_DxK.flags.writeable = False
    return noise_DxK


def thompson_probs(mean_K, std_K, active_K, noise_DxK) -> jax.Array:
    """Monte Carlo estimate of P(arm is the posterior argmax) from the THOMPSON_DRAWS
    FIXED draws `noise_DxK` (so `probs` is a deterministic function of the state;
    `sample` uses the caller's key). Multiples of 1/512: exact sum 1, resolution ~0.002."""
    draws_DxK = _masked_draws(mean_K + std_K * noise_DxK, active_K)
    ids_D = jnp.argmax(draws_DxK, axis=-1)
    hits_K = jax.nn.one_hot(ids_D, mean_K.shape[0], dtype=jnp.float32).sum(0)
    return hits_K / THOMPSON_DRAWS * jnp.any(active_K)
