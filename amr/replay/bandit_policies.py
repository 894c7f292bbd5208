"""The pieces of a bandit, optax-style: estimators and policies, one small factory each.

An estimator (`ema(alpha)`, `window(size)`) says how an arm's reward estimate follows
its observations; a policy (`boltzmann(tau, epsilon)`, `greedy()`, `epsilon_greedy(epsilon)`,
`ucb(c)`, `exp3(alpha)`, `thompson()`, `uniform()`) turns the estimates into a sampling
distribution. Each factory binds its hyper-parameters and returns a frozen NamedTuple of
pure functions; `amr.replay.bandit.make_bandit` composes one of each with a normaliser.

Policies read the estimates through a `Scoring` (normalised scores, effective counts),
which `make_bandit` builds from the estimator, the normaliser and the optimism bonus.
The maths lives in `amr.replay.bandit_math`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax.numpy as jnp

from amr.replay import bandit_math as pol
from amr.replay import sampling
from amr.replay._checks import check_int, check_real

# ---------------------------------------------------------------- estimators


class Estimator(NamedTuple):
    name: str
    slots: int  # W, ring slots per arm in the state (1, unused, for 'ema')
    update: Callable  # update(state, a, r) -> state with arm a's value / sq (and ring) after finite reward r
    effective_count: Callable  # effective_count(state) -> f32[K] effective sample size of each estimate


def ema(alpha: float = 0.3) -> Estimator:
    """value <- (1 - alpha) value + alpha r (the first reward of an arm initialises it)."""
    alpha = check_real("alpha", alpha, 0.0, 1.0, lo_open=True)

    def update(state, a, r):
        first = state.count[a] == 0
        v = jnp.where(first, r, (1.0 - alpha) * state.value[a] + alpha * r)
        s = jnp.where(first, r * r, (1.0 - alpha) * state.sq[a] + alpha * r * r)
        return state.replace(value=state.value.at[a].set(v), sq=state.sq.at[a].set(s))

    return Estimator("ema", 1, update, lambda state: pol.ema_effective_count(state.count, alpha))


def window(size: int = 16) -> Estimator:
    """value = mean of the arm's last `size` rewards (a ring buffer per arm)."""
    W = check_int("window", size, 1)

    def update(state, a, r):
        row_W = state.window[a].at[state.window_pos[a]].set(r)
        n = jnp.minimum(state.window_len[a] + 1, W)
        filled_W = jnp.arange(W) < n
        v = jnp.where(filled_W, row_W, 0.0).sum() / n
        s = jnp.where(filled_W, row_W * row_W, 0.0).sum() / n
        return state.replace(
            window=state.window.at[a].set(row_W),
            window_len=state.window_len.at[a].set(n),
            window_pos=state.window_pos.at[a].set((state.window_pos[a] + 1) % W),
            value=state.value.at[a].set(v),
            sq=state.sq.at[a].set(s),
        )

    return Estimator("window", W, update, lambda state: state.window_len.astype(jnp.float32))


# ---------------------------------------------------------------- policies


class Scoring(NamedTuple):
    """What a policy reads besides the state; built by `make_bandit`."""

    normalised: Callable  # normalised(state) -> (observed_K, z_K, scale, scores_K with optimism)
    effective_count: Callable  # effective_count(state) -> f32[K]


class BanditPolicy(NamedTuple):
    name: str
    probs: Callable  # probs(state, scoring) -> f32[K], 0 on inactive arms
    sample: Callable  # sample(state, scoring, key, n: static) -> i32[n] (make_bandit masks "no active arm")
    scores: Callable  # scores(state, scoring) -> f32[K], what the policy ranks
    update: Callable  # update(old, new, a, r) -> new with the policy's own statistics after arm a's reward r


def _normalised_scores(state, scoring):
    return scoring.normalised(state)[3]


def _keep(old, new, a, r):
    return new


def _policy(name: str, probs: Callable, **overrides: Any) -> BanditPolicy:
    """A policy drawing i.i.d. from `probs` by inverse CDF (arms with probability 0 never come out)."""

    def sample(state, scoring, key, n):
        return sampling.sample_from_probs(key, probs(state, scoring), (n,))

    fns = dict(probs=probs, sample=sample, scores=_normalised_scores, update=_keep)
    fns.update(overrides)
    return BanditPolicy(name=name, **fns)


def boltzmann(tau: float = 1.0, epsilon: float = 0.1) -> BanditPolicy:
    """(1 - epsilon) softmax(score / tau) + epsilon / K_active: AMR's policy."""
    tau = check_real("tau", tau, 0.0, math.inf, lo_open=True)
    epsilon = check_real("epsilon", epsilon, 0.0, 1.0, lo_open=False)

    def probs(state, scoring):
        soft_K = pol.masked_softmax(_normalised_scores(state, scoring) / tau, state.active)
        return (1.0 - epsilon) * soft_K + epsilon * pol.uniform_over(state.active)

    return _policy("boltzmann", probs)


def greedy() -> BanditPolicy:
    """All mass on the best score, ties split evenly."""
    return _policy("greedy", lambda state, scoring: pol.ties_uniform(_normalised_scores(state, scoring), state.active))


def epsilon_greedy(epsilon: float = 0.1) -> BanditPolicy:
    """(1 - epsilon) greedy + epsilon uniform over the active arms."""
    epsilon = check_real("epsilon", epsilon, 0.0, 1.0, lo_open=False)

    def probs(state, scoring):
        best_K = pol.ties_uniform(_normalised_scores(state, scoring), state.active)
        return (1.0 - epsilon) * best_K + epsilon * pol.uniform_over(state.active)

    return _policy("epsilon_greedy", probs)


def ucb(c: float = 1.0) -> BanditPolicy:
    """Deterministic argmax of score + c sqrt(log(t + 1) / n_eff) (n_eff: the estimator's
    effective sample size, which saturates for an EMA so exploration never stops)."""
    c = check_real("ucb_c", c, 0.0, math.inf, lo_open=False)

    def probs(state, scoring):
        n_eff_K = scoring.effective_count(state)
        bonus_K = c * jnp.sqrt(jnp.log(state.t.astype(jnp.float32) + 1.0) / jnp.maximum(n_eff_K, 1.0))
        return pol.one_hot_argmax(_normalised_scores(state, scoring) + bonus_K, state.active)

    return _policy("ucb", probs)


def exp3(alpha: float = 0.9) -> BanditPolicy:
    """Online Data Mixing's EXP3: an EMA (smoothing `alpha`) of raw rewards / p_arm, with
    decaying exploration (`bandit_math.exp3_probs`); ignores the normalised scores."""
    alpha = check_real("exp3_alpha", alpha, 0.0, 1.0, lo_open=False, hi_open=True)

    def probs(state, scoring):
        return pol.exp3_probs(state.exp3_est, state.active, state.t)

    def update(old, new, a, r):  # importance weight by the probability the arm had
        p = jnp.maximum(pol.exp3_probs(old.exp3_est, old.active, old.t)[a], pol.EXP3_P_FLOOR)
        est_K = old.exp3_est
        return new.replace(exp3_est=est_K.at[a].set(alpha * est_K[a] + (1.0 - alpha) * r / p))

    return _policy(
        "exp3", probs, scores=lambda state, scoring: jnp.where(state.active, state.exp3_est, 0.0), update=update
    )


def _posterior(state, scoring):
    observed_K, z_K, scale, s_K = scoring.normalised(state)
    n_eff_K = scoring.effective_count(state)
    return pol.gaussian_posterior(state.value, state.sq, n_eff_K, observed_K, state.active, z_K, scale, s_K)


def thompson() -> BanditPolicy:
    """Gaussian posterior on the normalised score (`bandit_math.gaussian_posterior`); `sample`
    draws once per slot and takes the argmax, `probs` is a Monte Carlo estimate over fixed draws."""

    def probs(state, scoring):
        noise_DxK = pol.thompson_noise(state.value.shape[0])
        return pol.thompson_probs(*_posterior(state, scoring), state.active, noise_DxK)

    def sample(state, scoring, key, n):
        return pol.thompson_argmax(key, *_posterior(state, scoring), state.active, n)

    return _policy("thompson", probs, sample=sample)


def uniform() -> BanditPolicy:
    """Uniform over the active arms (ignores every observation)."""
    return _policy("uniform", lambda state, scoring: pol.uniform_over(state.active))


# ---------------------------------------------------------------- registries (config names -> factories)

# Each entry builds the piece from `make_bandit`'s keyword arguments.
ESTIMATOR_FACTORIES: dict[str, Callable[..., Estimator]] = {
    "ema": lambda kw: ema(kw["alpha"]),
    "window": lambda kw: window(kw["window"]),
}
POLICY_FACTORIES: dict[str, Callable[..., BanditPolicy]] = {
    "boltzmann": lambda kw: boltzmann(kw["tau"], kw["epsilon"]),
    "greedy": lambda kw: greedy(),
    "epsilon_greedy": lambda kw: epsilon_greedy(kw["epsilon"]),
    "ucb": lambda kw: ucb(kw["ucb_c"]),
    "exp3": lambda kw: exp3(kw["exp3_alpha"]),
    "thompson": lambda kw: thompson(),
    "uniform": lambda kw: uniform(),
}
