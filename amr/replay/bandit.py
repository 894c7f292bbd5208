"""A non-stationary K-armed bandit as pure functions over a small state, optax-style.

    bandit = make_bandit(num_arms=16, estimator="ema", alpha=0.3, policy="boltzmann")
    state = bandit.init(active_K)                        # arms allocated up to K
    arm_ids_n = bandit.sample(state, key, n)             # which arms to replay
    state = bandit.observe(state, arm_ids_N, rewards_N)  # rewards: how much each arm is forgotten
    state = bandit.set_active(state, active_K)           # a task arrived: more arms, same shapes

Rewards are normalised across the active, observed arms before the policy sees them
(so `tau` does not depend on the loss scale); active arms never observed get an
optimistic score so each is tried. Non-finite rewards (the engine pads masked slots
with NaN) and observations of inactive or out-of-range arm ids leave the state
unchanged. `num_arms`, `window`, the names and `n` of `sample` are static; everything
else is jittable, and `set_active` never changes a shape, so nothing recompiles when
arms are added. Policy maths lives in `amr.replay.bandit_math`.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import NamedTuple

import flax.struct
import jax
import jax.numpy as jnp

from amr.replay import bandit_math as pol
from amr.replay import sampling


@flax.struct.dataclass
class BanditState:
    value: jax.Array  # f32[K] reward estimate per arm (EMA, or mean of the window)
    sq: jax.Array  # f32[K] second-moment estimate (same estimator) -> variance for Thompson / UCB
    count: jax.Array  # i32[K] finite observations seen per arm (total, not capped)
    window: jax.Array  # f32[K, W] ring buffer of the last W rewards per arm (W=1 and unused for 'ema')
    window_len: jax.Array  # i32[K] how many window slots are filled (<= W)
    window_pos: jax.Array  # i32[K] next write position in the ring
    exp3_est: jax.Array  # f32[K] EXP3 importance-weighted reward estimate (ODM style; 'exp3' policy only)
    active: jax.Array  # bool[K] arms that exist now (inactive ones are never drawn)
    t: jax.Array  # i32[] total finite observations


class Bandit(NamedTuple):
    init: Callable  # init(active bool[K]) -> BanditState
    set_active: Callable  # set_active(state, active bool[K]) -> state
    observe_one: Callable  # observe_one(state, arm_id i32[], reward f32[]) -> state
    observe: Callable  # observe(state, arm_ids i32[N], rewards f32[N]) -> state (one lax.scan)
    probs: Callable  # probs(state) -> f32[K]
    sample: Callable  # sample(state, key, n: static int) -> i32[n]
    scores: Callable  # scores(state) -> f32[K]


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def _check_real(name, value, lo, hi, lo_open, hi_open=False):
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number, got {value!r}") from None
    bad = not math.isfinite(x) or x < lo or x > hi or (lo_open and x == lo) or (hi_open and x == hi)
    if bad:
        lb, rb = "(" if lo_open else "[", ")" if hi_open else "]"
        raise ValueError(f"{name} must be in {lb}{lo}, {hi}{rb}, got {value!r}")
    return x


def _check_int(name, value, lo):
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
    try:
        v = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}") from None
    if v < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
    return v


def make_bandit(
    num_arms: int,
    *,
    estimator: str = "ema",
    alpha: float = 0.3,
    window: int = 16,
    policy: str = "boltzmann",
    tau: float = 1.0,
    epsilon: float = 0.1,
    normalize: str = "zscore",
    ucb_c: float = 1.0,
    exp3_alpha: float = 0.9,
    optimism: float = 1.0,
) -> Bandit:
    """Binds the hyper-parameters of a K-armed non-stationary bandit.

    Args:
      num_arms: K, arms allocated (static); `active` masks which exist.
      estimator: 'ema' (value <- (1-alpha) value + alpha r, the first reward of an arm
        initialises it) or 'window' (mean of the arm's last `window` rewards).
      alpha: EMA rate in (0, 1].
      window: W >= 1, ring size for 'window' (the state holds a [K, 1] dummy for 'ema').
      policy: 'boltzmann' ((1-epsilon) softmax(score/tau) + epsilon/K_active, AMR's),
        'greedy' (argmax, ties split evenly), 'epsilon_greedy', 'ucb' (score +
        ucb_c sqrt(log(t+1) / n_eff), deterministic argmax; n_eff is the effective
        sample size of the estimate: the window fill, or the EMA's 1/sum(w^2)),
        'exp3' (Online Data Mixing: EMA `exp3_alpha` of rewards / p_arm, decaying
        exploration; uses raw rewards, not the normalised scores), 'thompson'
        (Gaussian posterior on the normalised score, see
        `bandit_policies.gaussian_posterior`), or 'uniform'.
      tau: Boltzmann temperature > 0, in normalised-score units.
      epsilon: uniform floor in [0, 1] for 'boltzmann' and 'epsilon_greedy'.
      normalize: 'zscore', 'minmax' (to [0, 1]) or 'none', over active observed arms.
      ucb_c: UCB bonus scale >= 0.
      exp3_alpha: EXP3 smoothing in [0, 1) (est <- a est + (1-a) r / p).
      optimism: score bonus (finite) of unseen arms over the best observed score.

    Returns:
      A `Bandit` of pure functions. With no active arm, `probs` is all zeros and
      `sample` returns -1 in every slot (which `observe` then ignores).
    """
    K = _check_int("num_arms", num_arms, 1)
    _check_choice("estimator", estimator, pol.ESTIMATORS)
    _check_choice("policy", policy, pol.POLICIES)
    _check_choice("normalize", normalize, pol.NORMALIZERS)
    alpha = _check_real("alpha", alpha, 0.0, 1.0, lo_open=True)
    W = _check_int("window", window, 1) if estimator == "window" else 1
    _check_int("window", window, 1)  # validated whatever the estimator: a typo is still a typo
    tau = _check_real("tau", tau, 0.0, math.inf, lo_open=True)
    epsilon = _check_real("epsilon", epsilon, 0.0, 1.0, lo_open=False)
    ucb_c = _check_real("ucb_c", ucb_c, 0.0, math.inf, lo_open=False)
    exp3_alpha = _check_real("exp3_alpha", exp3_alpha, 0.0, 1.0, lo_open=False, hi_open=True)
    optimism = _check_real("optimism", optimism, -math.inf, math.inf, lo_open=False)

    thompson_noise_DxK = pol.thompson_noise(K) if policy == "thompson" else None

    def as_mask(active):
        active_K = jnp.asarray(active)
        if active_K.shape != (K,):
            raise ValueError(f"active must have shape ({K},), got {active_K.shape}")
        return active_K.astype(bool)

    def init(active) -> BanditState:
        f32_K, i32_K = jnp.zeros((K,), jnp.float32), jnp.zeros((K,), jnp.int32)
        return BanditState(
            value=f32_K,
            sq=f32_K,
            count=i32_K,
            window=jnp.zeros((K, W), jnp.float32),
            window_len=i32_K,
            window_pos=i32_K,
            exp3_est=f32_K,
            active=as_mask(active),
            t=jnp.zeros((), jnp.int32),
        )

    def set_active(state: BanditState, active) -> BanditState:
        """New active mask; estimates of every arm (also deactivated ones) are kept."""
        return state.replace(active=as_mask(active))

    def update(state: BanditState, a, r) -> BanditState:
        """The state after a finite reward r of the in-range active arm a."""
        if estimator == "ema":
            first = state.count[a] == 0
            v = jnp.where(first, r, (1.0 - alpha) * state.value[a] + alpha * r)
            s = jnp.where(first, r * r, (1.0 - alpha) * state.sq[a] + alpha * r * r)
            new = state
        else:
            row_W = state.window[a].at[state.window_pos[a]].set(r)
            n = jnp.minimum(state.window_len[a] + 1, W)
            filled_W = jnp.arange(W) < n
            v = jnp.where(filled_W, row_W, 0.0).sum() / n
            s = jnp.where(filled_W, row_W * row_W, 0.0).sum() / n
            new = state.replace(
                window=state.window.at[a].set(row_W),
                window_len=state.window_len.at[a].set(n),
                window_pos=state.window_pos.at[a].set((state.window_pos[a] + 1) % W),
            )
        exp3_est = state.exp3_est
        if policy == "exp3":  # importance weight by the probability the arm had
            p = jnp.maximum(pol.exp3_probs(state.exp3_est, state.active, state.t)[a], pol.EXP3_P_FLOOR)
            exp3_est = exp3_est.at[a].set(exp3_alpha * exp3_est[a] + (1.0 - exp3_alpha) * r / p)
        return new.replace(
            value=state.value.at[a].set(v),
            sq=state.sq.at[a].set(s),
            count=state.count.at[a].add(1),
            exp3_est=exp3_est,
            t=state.t + 1,
        )

    def observe_one(state: BanditState, arm_id, reward) -> BanditState:
        arm = jnp.asarray(arm_id, jnp.int32)
        r = jnp.asarray(reward, jnp.float32)
        if arm.shape != () or r.shape != ():
            raise ValueError(f"arm_id and reward must be scalars, got shapes {arm.shape} and {r.shape}")
        a = jnp.clip(arm, 0, K - 1)
        valid = (
            (arm >= 0) & (arm < K) & state.active[a] & jnp.isfinite(r * r)
        )  # also drops |r| > ~1.8e19 (r*r overflows)
        new = update(state, a, jnp.where(valid, r, 0.0))
        return jax.tree.map(lambda n, o: jnp.where(valid, n, o), new, state)

    def observe(state: BanditState, arm_ids, rewards) -> BanditState:
        ids_N = jnp.asarray(arm_ids, jnp.int32)
        r_N = jnp.asarray(rewards, jnp.float32)
        if ids_N.ndim != 1 or r_N.shape != ids_N.shape:
            raise ValueError(
                f"arm_ids and rewards must be 1-D of equal length, got shapes {ids_N.shape} and {r_N.shape}"
            )
        state, _ = jax.lax.scan(lambda s, x: (observe_one(s, *x), None), state, (ids_N, r_N))
        return state

    def normalised(state: BanditState):
        observed_K = state.active & (state.count > 0)
        z_K, scale = pol.normalise(state.value, observed_K, normalize, state.sq)
        return observed_K, z_K, scale, pol.optimistic_scores(z_K, observed_K, state.active, optimism)

    def posterior(state: BanditState):
        observed_K, z_K, scale, s_K = normalised(state)
        n_eff_K = pol.effective_count(state.count, state.window_len, estimator, alpha)
        return pol.gaussian_posterior(state.value, state.sq, n_eff_K, observed_K, state.active, z_K, scale, s_K)

    def scores(state: BanditState) -> jax.Array:
        """What the policy ranks: normalised estimates with optimism for unseen arms
        (0 on inactive arms); for 'exp3' the importance-weighted estimates. The UCB bonus
        and Thompson noise are not included."""
        if policy == "exp3":
            return jnp.where(state.active, state.exp3_est, 0.0)
        return normalised(state)[3]

    def probs(state: BanditState) -> jax.Array:
        """f32[K] sampling distribution: >= 0, 0 on inactive arms, sums to 1 (all zeros if
        no arm is active). For 'thompson' a Monte Carlo estimate over fixed draws."""
        active_K = state.active
        if policy == "uniform":
            return pol.uniform_over(active_K)
        if policy == "exp3":
            return pol.exp3_probs(state.exp3_est, active_K, state.t)
        if policy == "thompson":
            return pol.thompson_probs(*posterior(state), active_K, thompson_noise_DxK)
        s_K = scores(state)
        if policy == "boltzmann":
            soft_K = pol.masked_softmax(s_K / tau, active_K)
            return (1.0 - epsilon) * soft_K + epsilon * pol.uniform_over(active_K)
        if policy == "greedy":
            return pol.ties_uniform(s_K, active_K)
        if policy == "epsilon_greedy":
            return (1.0 - epsilon) * pol.ties_uniform(s_K, active_K) + epsilon * pol.uniform_over(active_K)
        # ucb
        n_eff_K = pol.effective_count(state.count, state.window_len, estimator, alpha)
        bonus_K = ucb_c * jnp.sqrt(jnp.log(state.t.astype(jnp.float32) + 1.0) / jnp.maximum(n_eff_K, 1.0))
        return pol.one_hot_argmax(s_K + bonus_K, active_K)

    def sample(state: BanditState, key, n: int) -> jax.Array:
        """i32[n] arm ids drawn i.i.d. from `probs` by inverse CDF (`amr.replay.sampling`; arms with
        probability 0 are never drawn); Thompson: one posterior draw and argmax per slot.
        Every slot is -1 when no arm is active."""
        n = _check_int("n", n, 0)
        if policy == "thompson":
            ids_n = pol.thompson_argmax(key, *posterior(state), state.active, n)
        else:
            ids_n = sampling.sample_from_probs(key, probs(state), (n,))  # inverse CDF, never a p == 0 arm
        return jnp.where(jnp.any(state.active), ids_n, -1)

    return Bandit(
        init=init,
        set_active=set_active,
        observe_one=observe_one,
        observe=observe,
        probs=probs,
        sample=sample,
        scores=scores,
    )
