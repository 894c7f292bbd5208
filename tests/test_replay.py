"""Replay policies: ids stay in memory and in active arms, draws follow the arm distribution."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from amr.replay import memory as memory_lib
from amr.replay import policies as replay_lib

CAPACITY = 1000


def _filled(policy, sizes_per_task=((100, 50), (200,)), current_task_rows=300):
    """Tasks 0..n-1 stored with the given cluster sizes; ids after them belong to the current task."""
    state = policy.init()
    start = 0
    for t, sizes in enumerate(sizes_per_task):
        labels = np.concatenate([np.full(s, c) for c, s in enumerate(sizes)]).astype(np.int32)
        ids = start + np.arange(len(labels))
        state = policy.add_task(
            state, ids, labels, t, ref_losses=np.ones(len(sizes), np.float32), num_clusters=len(sizes)
        )
        start += len(labels)
    return state, start


@pytest.mark.parametrize("name", ["uniform", "task_balanced", "amr", "mir"])
@pytest.mark.parametrize("jit", [False, True])
def test_presample_stays_in_past_memory(name, jit):
    policy = replay_lib.make_replay(name, max_arms=8, capacity=CAPACITY, candidates=3 if name == "mir" else 1)
    state, stored = _filled(policy)
    presample = jax.jit(policy.presample, static_argnums=(2, 3)) if jit else policy.presample
    ids = presample(state, jax.random.key(0), 5, 7)
    chex.assert_shape(ids, (5, 7 * policy.candidates))
    chex.assert_type(ids, jnp.int32)
    ids = np.asarray(ids)
    assert ids.min() >= 0 and ids.max() < stored  # never the current task, never unused ids
    arms = np.asarray(memory_lib.arms_of(state.memory, jnp.asarray(ids)))
    assert np.all(arms >= 0) and np.all(np.asarray(state.memory.sizes)[arms] > 0)


def test_none_has_no_slots():
    policy = replay_lib.make_replay("none", max_arms=4, capacity=CAPACITY)
    state, _ = _filled(policy)
    chex.assert_shape(policy.presample(state, jax.random.key(0), 3, 4), (3, 0))


def test_task_balanced_gives_tasks_equal_mass():
    policy = replay_lib.make_replay("task_balanced", max_arms=8, capacity=CAPACITY)
    state, _ = _filled(policy, sizes_per_task=((30, 10), (500,), (60,)))
    p = np.asarray(policy.arm_probs(state))
    np.testing.assert_allclose([p[0] + p[1], p[2], p[3]], [1 / 3] * 3, rtol=1e-6)
    np.testing.assert_allclose(p[0] / p[1], 3.0, rtol=1e-6)


@pytest.mark.parametrize("name", ["task_balanced", "amr"])
def test_draws_follow_arm_probs(name):
    policy = replay_lib.make_replay(name, max_arms=8, capacity=CAPACITY, reference="arm")
    state, _ = _filled(policy, sizes_per_task=((100, 50), (200,), (40, 40)))
    if name == "amr":  # make the arms unequal
        arms = jnp.array([0, 1, 2, 3, 4] * 4, jnp.int32)
        state = policy.observe(state, None, arms, jnp.linspace(1.0, 3.0, 20))
    p = np.asarray(policy.arm_probs(state), np.float64)
    ids = policy.presample(state, jax.random.key(1), 100, 1000)
    arms = np.asarray(memory_lib.arms_of(state.memory, ids)).reshape(-1)
    counts = np.bincount(arms, minlength=8)
    active = p > 0
    _, pvalue = stats.chisquare(counts[active], p[active] / p[active].sum() * counts.sum())
    assert pvalue > 1e-3, (counts, p)


def test_uniform_is_uniform_over_samples():
    policy = replay_lib.make_replay("uniform", max_arms=8, capacity=CAPACITY)
    state, stored = _filled(policy)
    ids = np.asarray(policy.presample(state, jax.random.key(2), 100, 1000)).reshape(-1)
    counts = np.bincount(ids, minlength=stored)
    _, pvalue = stats.chisquare(counts)
    assert pvalue > 1e-3


def test_rewards():
    arms = jnp.array([0, 2], jnp.int32)
    losses = jnp.array([3.0, 5.0])
    for reward, expected in (("loss", [3.0, 5.0]), ("loss_increase", [2.0, 4.0])):
        policy = replay_lib.make_replay("amr", max_arms=4, capacity=CAPACITY, reward=reward, reference="arm")
        state, _ = _filled(policy)
        chex.assert_trees_all_close(policy.rewards(state, arms, losses), jnp.array(expected))
    policy = replay_lib.make_replay("amr", max_arms=4, capacity=CAPACITY, reward="marginal")
    state, _ = _filled(policy)
    chex.assert_trees_all_close(policy.rewards(state, arms, losses, jnp.array([2.5, 5.5])), jnp.array([0.5, -0.5]))
    assert policy.needs_loss_after


def test_observe_moves_amr_towards_forgotten_arm():
    policy = replay_lib.make_replay(
        "amr", max_arms=4, capacity=CAPACITY, reference="arm", bandit=dict(tau=0.5, epsilon=0.05)
    )
    state, _ = _filled(policy)
    before = np.asarray(policy.arm_probs(state))
    arms = jnp.array([0, 1, 2] * 10, jnp.int32)
    losses = jnp.where(arms == 1, 3.0, 1.1)
    observe = jax.jit(policy.observe)
    state = observe(state, None, arms, losses)
    after = np.asarray(policy.arm_probs(state))
    assert after[1] > before[1] and after[1] == after.max()


def test_no_recompile_when_tasks_are_added():
    policy = replay_lib.make_replay("amr", max_arms=8, capacity=CAPACITY)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def presample_and_observe(state, key):
        ids = policy.presample(state, key, 4, 8)
        arms = memory_lib.arms_of(state.memory, ids)
        return policy.observe(state, ids, arms, jnp.ones(ids.shape))

    state = policy.init()
    start = 0
    for t in range(4):
        labels = np.arange(50) % 2
        state = policy.add_task(state, start + np.arange(50), labels, t, np.ones(2, np.float32), num_clusters=2)
        start += 50
        state = presample_and_observe(state, jax.random.key(t))


def test_bad_input():
    with pytest.raises(ValueError, match="strategy"):
        replay_lib.make_replay("bogus", max_arms=4, capacity=10)
    with pytest.raises(ValueError, match="reward"):
        replay_lib.make_replay("amr", max_arms=4, capacity=10, reward="bogus")
    with pytest.raises(ValueError, match="candidates"):
        replay_lib.make_replay("mir", max_arms=4, capacity=10, candidates=1)
    policy = replay_lib.make_replay("amr", max_arms=2, capacity=100)
    state = policy.init()
    with pytest.raises(ValueError, match="batch"):
        policy.presample(state, jax.random.key(0), 2, -1)
    with pytest.raises(ValueError, match="ref_losses"):
        policy.add_task(state, np.arange(10), np.zeros(10, np.int32), 0, np.ones(3), num_clusters=1)
    state = policy.add_task(state, np.arange(10), np.zeros(10, np.int32), 0, np.ones(1), num_clusters=1)
    state = policy.add_task(state, 10 + np.arange(10), np.zeros(10, np.int32), 1, np.ones(1), num_clusters=1)
    with pytest.raises(ValueError, match="arms"):
        policy.add_task(state, 20 + np.arange(10), np.zeros(10, np.int32), 2, np.ones(1), num_clusters=1)


@pytest.mark.slow  # 25 shapes, each compiled afresh on a fresh clone: the slow tier
@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.lists(st.integers(0, 40), min_size=1, max_size=3), min_size=1, max_size=4),
    batch=st.integers(1, 16),
    name=st.sampled_from(["uniform", "task_balanced", "amr"]),
)
def test_any_cluster_sizes(sizes, batch, name):
    if sum(map(sum, sizes)) == 0:
        sizes[0][0] = 1
    policy = replay_lib.make_replay(name, max_arms=12, capacity=400)
    state, stored = _filled(policy, sizes_per_task=sizes)
    p = np.asarray(policy.arm_probs(state))
    assert np.all(p >= 0) and abs(p.sum() - 1) < 1e-5
    assert np.all(p[np.asarray(state.memory.sizes) == 0] == 0)
    ids = np.asarray(policy.presample(state, jax.random.key(batch), 2, batch))
    assert ids.min() >= 0 and ids.max() < stored
    arms = np.asarray(memory_lib.arms_of(state.memory, jnp.asarray(ids)))
    assert np.all(np.asarray(state.memory.sizes)[arms] > 0)


@pytest.mark.parametrize("jit", [False, True])
def test_per_sample_reference(jit):
    policy = replay_lib.make_replay("amr", max_arms=4, capacity=CAPACITY, reference="sample")
    state, _ = _filled(policy)
    record = jax.jit(policy.record_new) if jit else policy.record_new
    state = record(state, jnp.array([[3, 7]], jnp.int32), jnp.array([[2.0, jnp.nan]]))
    ids = jnp.array([3, 7, 9], jnp.int32)
    arms = memory_lib.arms_of(state.memory, ids)
    r = np.asarray(policy.rewards(state, arms, jnp.array([2.5, 1.0, 1.0]), sample_ids=ids))
    np.testing.assert_allclose(r[0], 0.5)
    assert np.isnan(r[1]) and np.isnan(r[2])  # no reference yet: the bandit ignores them
    before = jax.device_get(state.bandit)
    state = policy.observe(state, ids[1:], arms[1:], jnp.array([1.0, 1.0]))
    chex.assert_trees_all_equal(jax.device_get(state.bandit), before)
    with pytest.raises(ValueError, match="reference"):
        replay_lib.make_replay("amr", max_arms=4, capacity=10, reference="bogus")


def test_visit_reference_resets_on_replay():
    for reference, expected in (("sample", 1.0), ("visit", 0.25)):
        policy = replay_lib.make_replay("amr", max_arms=4, capacity=CAPACITY, reference=reference)
        state, _ = _filled(policy)
        state = policy.record_new(state, jnp.array([5], jnp.int32), jnp.array([2.0]))
        state = policy.record_new(state, jnp.array([5], jnp.int32), jnp.array([2.75]), replayed=True)
        ids = jnp.array([5], jnp.int32)
        r = policy.rewards(state, memory_lib.arms_of(state.memory, ids), jnp.array([3.0]), sample_ids=ids)
        np.testing.assert_allclose(np.asarray(r), [expected])
