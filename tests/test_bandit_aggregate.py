"""The bandit's `aggregate` option: 'segment' makes one estimator step per arm per `observe` call
on the mean of that arm's finite rewards; 'row' (the default) is one step per row, unchanged."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amr.replay import policies as replay_lib
from amr.replay import registry
from amr.replay.bandit import AGGREGATES, make_bandit
from configs import tiny
from tests.support import bandit_keys

K = 5
ACTIVE = np.array([1, 1, 0, 1, 1], bool)  # arm 2 is inactive
JITS = pytest.mark.parametrize("jit", [False, True], ids=["nojit", "jit"])


def _chunk(seed, n=40):
    """ids in [-1, K] (so -1, K and the inactive arm 2 all occur) and rewards with NaN / inf mixed in."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(-1, K + 1, size=n).astype(np.int32)
    ids[:4] = [-1, K, 2, 3]  # each ignored kind at least once; arm 3 keeps a finite reward below
    rewards = rng.normal(1.0, 2.0, size=n).astype(np.float32)
    rewards[5::4] = np.nan
    rewards[7::11] = np.inf
    rewards[3] = 0.25
    return ids, rewards


def _numpy_means(ids, rewards):
    """{arm: NumPy mean of its finite rewards} over active in-range arms with at least one."""
    out = {}
    for a in range(K):
        r = rewards[(ids == a) & np.isfinite(rewards)].astype(np.float64)
        if ACTIVE[a] and r.size:
            out[a] = float(r.mean())
    return out


@JITS
@pytest.mark.parametrize("estimator,policy", [("ema", "boltzmann"), ("window", "boltzmann"), ("ema", "exp3")])
def test_segment_equals_one_observe_one_per_arm_on_numpy_means(estimator, policy, jit):
    seg = make_bandit(K, estimator=estimator, policy=policy, window=3, aggregate="segment")
    observe = jax.jit(seg.observe) if jit else seg.observe
    state = expected = seg.init(ACTIVE)
    for seed in range(3):  # several calls, so the estimators' recursions (and the window ring) are exercised
        ids, rewards = _chunk(seed)
        state = observe(state, ids, rewards)
        means = _numpy_means(ids, rewards)
        assert set(means) == {0, 1, 3, 4}, means  # arm 2 is inactive: never observed
        for a in sorted(means):
            expected = seg.observe_one(expected, a, np.float32(means[a]))
        chex.assert_trees_all_close(state, expected, rtol=1e-5, atol=1e-6)
    chex.assert_shape(state.value, (K,))
    np.testing.assert_array_equal(state.count, [3, 3, 0, 3, 3])  # one observation per arm per call
    assert int(state.t) == 12


def test_segment_leaves_state_unchanged_when_every_row_is_ignored():
    seg = make_bandit(K, aggregate="segment")
    state = seg.observe(seg.init(ACTIVE), *_chunk(0))
    ids = np.array([-1, K, 2, 0, 1], np.int32)
    rewards = np.array([1.0, 1.0, 1.0, np.nan, np.inf], np.float32)
    chex.assert_trees_all_equal(seg.observe(state, ids, rewards), state)
    chex.assert_trees_all_equal(seg.observe(state, np.zeros(0, np.int32), np.zeros(0, np.float32)), state)


@pytest.mark.parametrize("estimator", registry.ESTIMATORS)
def test_row_is_bit_identical_to_the_default(estimator):
    default = make_bandit(K, estimator=estimator, policy="exp3", window=3)
    row = make_bandit(K, estimator=estimator, policy="exp3", window=3, aggregate="row")
    seg = make_bandit(K, estimator=estimator, policy="exp3", window=3, aggregate="segment")
    s_default = s_row = s_seg = default.init(ACTIVE)
    for seed in range(3):
        ids, rewards = _chunk(seed)
        s_default = jax.jit(default.observe)(s_default, ids, rewards)
        s_row = jax.jit(row.observe)(s_row, ids, rewards)
        s_seg = jax.jit(seg.observe)(s_seg, ids, rewards)
    chex.assert_trees_all_equal(s_row, s_default)
    # ... and the comparison can tell: aggregating does change the state.
    assert int(s_seg.t) < int(s_row.t)
    assert not np.allclose(s_seg.value, s_row.value)


@pytest.mark.parametrize("policy", registry.BANDIT_POLICIES)
def test_every_policy_works_with_segment(policy):
    b = make_bandit(K, policy=policy, aggregate="segment")
    state = b.init(ACTIVE)
    for seed in range(2):
        state = b.observe(state, *_chunk(seed))
    p = np.asarray(b.probs(state))
    assert np.all(np.isfinite(p)) and np.all(p >= 0) and p[2] == 0
    np.testing.assert_allclose(p.sum(), 1.0, atol=1e-5)
    assert np.all(np.isin(np.asarray(b.sample(state, jax.random.key(0), 16)), [0, 1, 3, 4]))


def _final_gaps(aggregate, seeds=32, chunks=20, per_arm=64, gap=0.5):
    """value[1] - value[0] of an EMA bandit after `chunks` calls, each with `per_arm` N(mu, 1)
    rewards per arm (arm 0: mu=0, arm 1: mu=gap) in shuffled order; one entry per seed."""
    rng = np.random.default_rng(0)
    ids = np.tile(np.repeat(np.arange(2, dtype=np.int32), per_arm), (seeds, chunks, 1))
    ids = rng.permuted(ids, axis=-1)
    rewards = (gap * ids + rng.normal(0.0, 1.0, size=ids.shape)).astype(np.float32)
    b = make_bandit(2, estimator="ema", alpha=0.3, aggregate=aggregate)

    def run(ids_CxN, rewards_CxN):
        state, _ = jax.lax.scan(lambda s, x: (b.observe(s, *x), None), b.init(np.ones(2, bool)), (ids_CxN, rewards_CxN))
        return state.value[1] - state.value[0]

    gaps = jax.jit(jax.vmap(run))(ids, rewards)
    chex.assert_shape(gaps, (seeds,))
    return np.asarray(gaps)


def test_segment_estimate_is_much_steadier_than_row():
    row, seg = _final_gaps("row"), _final_gaps("segment")
    # row: an EMA(0.3) over single N(., 1) rows has sd ~0.42 per arm; segment: over means of 64 rows, ~8x less.
    assert seg.std() < 0.5 * row.std(), (seg.std(), row.std())
    assert abs(seg.mean() - 0.5) < 0.05, seg.mean()


def test_bogus_aggregate_is_refused_and_names_the_key():
    bandit_keys.assert_bogus_refused("aggregate", K)


def test_every_aggregate_passes_and_old_configs_default_to_row():
    assert registry.AGGREGATES == AGGREGATES == ("row", "segment")
    bandit_keys.assert_every_choice_passes("aggregate", AGGREGATES, "row")


@pytest.mark.parametrize("aggregate,steps", [(None, 6), ("row", 6), ("segment", 2)])
def test_config_key_reaches_the_bandit_through_make_replay(aggregate, steps):
    """The trainer passes `bandit=dict(cfg.bandit)` to make_replay; the key (or its absence) must flow."""
    bandit_cfg = dict(tiny.get_config().bandit)
    bandit_cfg.pop("aggregate", None)
    if aggregate is not None:
        bandit_cfg["aggregate"] = aggregate
    policy = replay_lib.make_replay("amr", max_arms=2, capacity=20, reward="loss", bandit=bandit_cfg)
    state = policy.init()
    for task in range(2):  # two tasks of one arm each: arms 0 and 1 active
        ids = 10 * task + np.arange(10)
        state = policy.add_task(state, ids, np.zeros(10, np.int32), task, np.ones(1, np.float32), num_clusters=1)
    arms = np.array([0, 0, 0, 1, 1, 1], np.int32)
    state = policy.observe(state, np.array([0, 1, 2, 10, 11, 12]), arms, np.arange(6, dtype=np.float32))
    assert int(state.bandit.t) == steps


@pytest.mark.parametrize("aggregate", AGGREGATES)
def test_observe_traces_once(aggregate):
    chex.clear_trace_counter()
    b = make_bandit(K, estimator="window", window=3, aggregate=aggregate)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def two_chunks(state, ids_2xN, rewards_2xN):
        state = b.observe(state, ids_2xN[0], rewards_2xN[0])
        return b.observe(state, ids_2xN[1], rewards_2xN[1])

    state = b.init(ACTIVE)
    for seed in (0, 1):  # same shapes, other values: no retrace (a second trace would raise)
        (i0, r0), (i1, r1) = _chunk(2 * seed), _chunk(2 * seed + 1)
        state = two_chunks(state, jnp.stack([i0, i1]), jnp.stack([r0, r1]))
    assert int(state.t) > 0
