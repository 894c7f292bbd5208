"""A non-stationary K-armed bandit as pure functions over a small state, optax-style.

    bandit = make_bandit(num_arms=16, estimator="ema", alpha=0.3, policy="boltzmann")
    bandit = make_bandit(16, estimator=bp.ema(0.3), policy=bp.boltzmann(tau=1.0, epsilon=0.1))  # the same
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
arms are added. The estimators and policies are small factories in
`amr.replay.bandit_policies` (`bp` above); their maths lives in `amr.replay.bandit_math`.

`aggregate` says what one estimator step sees. 'row' (the default): `observe` makes one
step per replayed row, so an EMA with alpha=0.3 tracks roughly an arm's last five rows,
single-row noise included. 'segment': `observe` first averages each arm's finite rewards
among the N it is given (one chunk's rows; ignored rows are left out exactly as
`observe_one` leaves them out), then makes ONE step per arm that got at least one, on that
mean, in increasing arm id order through `observe_one`. The estimate then follows chunks
rather than rows, and the z-score compares arms on means of many rows. `count` and `t`
count one observation per arm per call, and `sq` (the second moment behind 'pooled',
UCB and Thompson) is that of the chunk means.

`new_arms` says what a change of the active set (a task arrived) does to what was learned.
'keep' (the default): every estimate is carried over and the new arms, never observed, score
`optimism` above the best observed one, so the first draws after a task boundary follow a
fixed ratio set by the old estimates and the bonus (a newest-first tilt when arms are tasks).
'reset': the state starts again from `init` over the new active set (estimates, counts, `t`),
so every active arm is unseen, scores the same, and the draws start uniform over the arms
until this task's rewards move them. A `set_active` that changes nothing keeps the state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import flax.struct
import jax
import jax.numpy as jnp

from amr.replay import bandit_math as pol
from amr.replay._checks import check_choice, check_int, check_real
from amr.replay.bandit_policies import ESTIMATOR_FACTORIES, POLICY_FACTORIES, BanditPolicy, Estimator, Scoring

AGGREGATES = ("row", "segment")  # make_bandit's `aggregate`: one estimator step per row, or per arm per call
NEW_ARMS = ("keep", "reset")  # make_bandit's `new_arms`: what `set_active` does to the estimates when arms change


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
    observe: Callable  # observe(state, arm_ids i32[N], rewards f32[N]) -> state (one lax.scan, by row or by arm)
    probs: Callable  # probs(state) -> f32[K]
    sample: Callable  # sample(state, key, n: static int) -> i32[n]
    scores: Callable  # scores(state) -> f32[K]


def make_bandit(
    num_arms: int,
    *,
    estimator: str | Estimator = "ema",
    alpha: float = 0.3,
    window: int = 16,
    policy: str | BanditPolicy = "boltzmann",
    tau: float = 1.0,
    epsilon: float = 0.1,
    normalize: str = "zscore",
    ucb_c: float = 1.0,
    exp3_alpha: float = 0.9,
    optimism: float = 1.0,
    aggregate: str = "row",
    new_arms: str = "keep",
) -> Bandit:
    """Binds the hyper-parameters of a K-armed non-stationary bandit (the config-facing constructor).

    Args:
      num_arms: K, arms allocated (static); `active` masks which exist.
      estimator: an `Estimator` (`ema(alpha)`, `window(size)`) or its name: 'ema'
        (value <- (1-alpha) value + alpha r, the first reward of an arm initialises it) or
        'window' (mean of the arm's last `window` rewards).
      alpha: EMA rate in (0, 1] (used by the name 'ema').
      window: W >= 1, ring size for 'window' (the state holds a [K, 1] dummy for 'ema').
      policy: a `BanditPolicy` or its name: 'boltzmann' ((1-epsilon) softmax(score/tau) +
        epsilon/K_active, AMR's), 'greedy' (argmax, ties split evenly), 'epsilon_greedy',
        'ucb' (score + ucb_c sqrt(log(t+1) / n_eff), deterministic argmax; n_eff is the
        effective sample size of the estimate: the window fill, or the EMA's 1/sum(w^2)),
        'exp3' (Online Data Mixing: EMA `exp3_alpha` of rewards / p_arm, decaying
        exploration; uses raw rewards, not the normalised scores), 'thompson' (Gaussian
        posterior on the normalised score, see `bandit_math.gaussian_posterior`), or 'uniform'.
      tau: Boltzmann temperature > 0, in normalised-score units.
      epsilon: uniform floor in [0, 1] for 'boltzmann' and 'epsilon_greedy'.
      normalize: 'zscore', 'pooled', 'minmax' (to [0, 1]) or 'none', over active observed arms.
      ucb_c: UCB bonus scale >= 0.
      exp3_alpha: EXP3 smoothing in [0, 1) (est <- a est + (1-a) r / p).
      optimism: score bonus (finite) of unseen arms over the best observed score.
      aggregate: 'row' (one estimator step per observed row) or 'segment' (one step per
        arm per `observe` call, on the mean of that arm's finite rewards; see the module doc).
      new_arms: 'keep' (estimates carried over a change of the active set, unseen arms optimistic)
        or 'reset' (the state restarts from `init` when the active set changes; see the module doc).

    Every keyword is validated whatever the names chosen (a typo is still a typo).

    Returns:
      A `Bandit` of pure functions. With no active arm, `probs` is all zeros and
      `sample` returns -1 in every slot (which `observe` then ignores).
    """
    K = check_int("num_arms", num_arms, 1)
    kw = dict(
        alpha=check_real("alpha", alpha, 0.0, 1.0, lo_open=True),
        window=check_int("window", window, 1),
        tau=check_real("tau", tau, 0.0, float("inf"), lo_open=True),
        epsilon=check_real("epsilon", epsilon, 0.0, 1.0, lo_open=False),
        ucb_c=check_real("ucb_c", ucb_c, 0.0, float("inf"), lo_open=False),
        exp3_alpha=check_real("exp3_alpha", exp3_alpha, 0.0, 1.0, lo_open=False, hi_open=True),
    )
    optimism = check_real("optimism", optimism, -float("inf"), float("inf"), lo_open=False)
    if not isinstance(estimator, Estimator):
        estimator = ESTIMATOR_FACTORIES[check_choice("estimator", estimator, ESTIMATOR_FACTORIES)](kw)
    if not isinstance(policy, BanditPolicy):
        policy = POLICY_FACTORIES[check_choice("policy", policy, POLICY_FACTORIES)](kw)
    normaliser = pol.NORMALISERS[check_choice("normalize", normalize, pol.NORMALISERS)]
    aggregate = check_choice("aggregate", aggregate, AGGREGATES)
    new_arms = check_choice("new_arms", new_arms, NEW_ARMS)
    return compose(K, estimator, policy, normaliser, optimism, aggregate, new_arms)


def _as_mask(active, K: int) -> jax.Array:
    active_K = jnp.asarray(active)
    if active_K.shape != (K,):
        raise ValueError(f"active must have shape ({K},), got {active_K.shape}")
    return active_K.astype(bool)


def segment_means(arm_ids_N, rewards_N, active_K) -> jax.Array:
    """f32[K]: per arm, the mean of its rewards among the N that `observe_one` would take (id in
    [0, K), arm active, reward r with r*r finite); NaN for an arm with none (which `observe_one` ignores)."""
    K = active_K.shape[0]
    ids_N = jnp.asarray(arm_ids_N, jnp.int32)
    r_N = jnp.asarray(rewards_N, jnp.float32)
    valid_N = (ids_N >= 0) & (ids_N < K) & active_K[jnp.clip(ids_N, 0, K - 1)] & jnp.isfinite(r_N * r_N)
    seg_N = jnp.where(valid_N, ids_N, K)  # ignored rows go to a spare segment K, dropped below
    sum_K = jax.ops.segment_sum(jnp.where(valid_N, r_N, 0.0), seg_N, num_segments=K + 1)[:K]
    n_K = jax.ops.segment_sum(valid_N.astype(jnp.int32), seg_N, num_segments=K + 1)[:K]
    return jnp.where(n_K > 0, sum_K / jnp.maximum(n_K, 1).astype(jnp.float32), jnp.nan)


def _initial_state(K: int, slots: int, active) -> BanditState:
    """No observation yet: zero estimates, an empty window of `slots` per arm, `active` arms."""
    f32_K, i32_K = jnp.zeros((K,), jnp.float32), jnp.zeros((K,), jnp.int32)
    return BanditState(
        value=f32_K,
        sq=f32_K,
        count=i32_K,
        window=jnp.zeros((K, slots), jnp.float32),
        window_len=i32_K,
        window_pos=i32_K,
        exp3_est=f32_K,
        active=_as_mask(active, K),
        t=jnp.zeros((), jnp.int32),
    )


def compose(
    K: int,
    estimator: Estimator,
    policy: BanditPolicy,
    normaliser: Callable,
    optimism: float,
    aggregate: str = "row",
    new_arms: str = "keep",
) -> Bandit:
    """The `Bandit` of K arms made of one estimator, one policy and one normaliser
    (`bandit_math.NORMALISERS`), unseen active arms scoring `optimism` above the best;
    `aggregate` ('row' or 'segment', `AGGREGATES`) says what one estimator step of `observe` sees, and
    `new_arms` ('keep' or 'reset', `NEW_ARMS`) what `set_active` does to the estimates."""
    aggregate = check_choice("aggregate", aggregate, AGGREGATES)
    new_arms = check_choice("new_arms", new_arms, NEW_ARMS)

    def normalised(state: BanditState):
        observed_K = state.active & (state.count > 0)
        z_K, scale = pol.normalise(state.value, observed_K, normaliser, state.sq)
        return observed_K, z_K, scale, pol.optimistic_scores(z_K, observed_K, state.active, optimism)

    scoring = Scoring(normalised, estimator.effective_count)

    def init(active) -> BanditState:
        return _initial_state(K, estimator.slots, active)

    def set_active(state: BanditState, active) -> BanditState:
        """New active mask. 'keep': estimates of every arm (also deactivated ones) are kept;
        'reset': a changed mask restarts the state from `init` (an unchanged one keeps it)."""
        active_K = _as_mask(active, K)
        kept = state.replace(active=active_K)
        if new_arms == "keep":
            return kept
        changed = jnp.any(active_K != state.active)
        return jax.tree.map(lambda f, k: jnp.where(changed, f, k), init(active_K), kept)

    def observe_one(state: BanditState, arm_id, reward) -> BanditState:
        arm = jnp.asarray(arm_id, jnp.int32)
        r = jnp.asarray(reward, jnp.float32)
        if arm.shape != () or r.shape != ():
            raise ValueError(f"arm_id and reward must be scalars, got shapes {arm.shape} and {r.shape}")
        a = jnp.clip(arm, 0, K - 1)
        # also drops |r| > ~1.8e19 (r*r overflows)
        valid = (arm >= 0) & (arm < K) & state.active[a] & jnp.isfinite(r * r)
        r = jnp.where(valid, r, 0.0)
        new = estimator.update(state, a, r)
        new = policy.update(state, new, a, r).replace(count=state.count.at[a].add(1), t=state.t + 1)
        return jax.tree.map(lambda n, o: jnp.where(valid, n, o), new, state)

    def observe(state: BanditState, arm_ids, rewards) -> BanditState:
        ids_N = jnp.asarray(arm_ids, jnp.int32)
        r_N = jnp.asarray(rewards, jnp.float32)
        if ids_N.ndim != 1 or r_N.shape != ids_N.shape:
            raise ValueError(
                f"arm_ids and rewards must be 1-D of equal length, got shapes {ids_N.shape} and {r_N.shape}"
            )
        if aggregate == "segment":  # static: one step per arm, on the mean of its rewards, in id order
            ids_N, r_N = jnp.arange(K, dtype=jnp.int32), segment_means(ids_N, r_N, state.active)
        state, _ = jax.lax.scan(lambda s, x: (observe_one(s, *x), None), state, (ids_N, r_N))
        return state

    def scores(state: BanditState) -> jax.Array:
        """What the policy ranks: normalised estimates with optimism for unseen arms
        (0 on inactive arms); for 'exp3' the importance-weighted estimates. The UCB bonus
        and Thompson noise are not included."""
        return policy.scores(state, scoring)

    def probs(state: BanditState) -> jax.Array:
        """f32[K] sampling distribution: >= 0, 0 on inactive arms, sums to 1 (all zeros if
        no arm is active). For 'thompson' a Monte Carlo estimate over fixed draws."""
        return policy.probs(state, scoring)

    def sample(state: BanditState, key, n: int) -> jax.Array:
        """i32[n] arm ids drawn i.i.d. from `probs` by inverse CDF (`amr.replay.sampling`; arms with
        probability 0 are never drawn); Thompson: one posterior draw and argmax per slot.
        Every slot is -1 when no arm is active."""
        n = check_int("n", n, 0)
        return jnp.where(jnp.any(state.active), policy.sample(state, scoring, key, n), -1)

    return Bandit(init, set_active, observe_one, observe, probs, sample, scores)
