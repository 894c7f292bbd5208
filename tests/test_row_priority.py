"""Selection inside an arm (`amr.replay.row_priority`, `memory.draw_weighted`): draws follow the weights, stay
inside the drawn arm, and AMR with `row_priority` records each observed row's reward and draws by it."""

import chex
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings

from amr.io.checkpoint import state_digest
from amr.replay import memory as memory_lib
from amr.replay import policies
from amr.replay import row_priority as rp
from tests.support.checkpoint_round_trip import round_trip


def _index(sizes_per_task=((3, 3), (4,)), capacity=20, max_arms=4):
    index, start = memory_lib.empty_index(max_arms, capacity), 0
    for t, sizes in enumerate(sizes_per_task):
        labels = np.repeat(np.arange(len(sizes)), sizes)
        index, _ = memory_lib.add_task(index, np.arange(start, start + len(labels)), labels, t)
        start += len(labels)
    return index


def test_arm_of_position_follows_the_slices():
    index = _index()
    chex.assert_trees_all_close(rp.arm_of_position(index)[:10], jnp.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 2]))
    assert int(rp.arm_of_position(index)[12]) == index.max_arms  # past the stored prefix: no arm


def test_weights_are_relative_to_the_arm_and_neutral_where_unseen():
    index = _index()
    gap = jnp.full((20,), jnp.nan).at[0].set(1.0).at[1].set(-1.0).at[3].set(5.0)
    w = rp.weights_sorted(index, gap, 1.0)
    chex.assert_shape(w, (20,))
    assert float(w[0]) > 1.0 > float(w[1])  # above / below its arm's mean
    chex.assert_trees_all_close(w[2], 1.0)  # never observed: the arm's average
    chex.assert_trees_all_close(w[3:10], jnp.ones(7))  # arm 1's only observation is its own mean: no spread
    chex.assert_trees_all_close(w[10:], jnp.zeros(10))  # nothing stored there
    chex.assert_trees_all_close(rp.weights_sorted(index, gap, 0.0)[:10], jnp.ones(10))  # beta 0: uniform


@pytest.mark.parametrize("jit", [False, True])
def test_draws_follow_the_weights_inside_the_arm(jit):
    index = _index()
    w = jnp.zeros((20,)).at[0].set(3.0).at[1].set(1.0).at[3:6].set(1.0).at[6:10].set(1.0)
    draw = jax.jit(memory_lib.draw_weighted) if jit else memory_lib.draw_weighted
    ids = np.asarray(draw(index, jax.random.key(0), jnp.zeros((40_000,), jnp.int32), w))
    freq = np.bincount(ids, minlength=10) / ids.size
    np.testing.assert_allclose(freq[:3], [0.75, 0.25, 0.0], atol=0.01)  # row 2 has weight 0: never drawn
    assert not freq[3:].any()  # never outside arm 0
    # Negative control: the unweighted draw spreads over all three rows of the arm.
    plain = np.bincount(np.asarray(memory_lib.draw(index, jax.random.key(0), jnp.zeros((40_000,), jnp.int32))))
    assert plain[2] > 0.3 * ids.size


def test_zero_weight_arms_fall_back_to_uniform_and_bad_arms_to_minus_one():
    index = _index()
    w = jnp.zeros((20,)).at[0].set(1.0)  # arm 1 (rows 3..5) has no weight at all
    ids = np.asarray(memory_lib.draw_weighted(index, jax.random.key(1), jnp.full((3000,), 1, jnp.int32), w))
    assert set(ids.tolist()) == {3, 4, 5}
    out = memory_lib.draw_weighted(index, jax.random.key(1), jnp.array([3, -1, 7]), w)  # unallocated, negative, past
    chex.assert_trees_all_close(out, jnp.array([-1, -1, -1]))
    with pytest.raises(ValueError, match="weights_sorted"):
        memory_lib.draw_weighted(index, jax.random.key(1), jnp.array([0]), jnp.ones((5,)))


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 6), min_size=1, max_size=5),
    weights=st.lists(st.floats(0.0, 10.0), min_size=30, max_size=30),
    seed=st.integers(0, 2**16),
)
def test_every_draw_is_a_row_of_its_arm(sizes, weights, seed):
    if sum(sizes) == 0:
        sizes = [*sizes[:-1], 1]
    index = _index((tuple(sizes),), capacity=30, max_arms=8)
    arms = jax.random.randint(jax.random.key(seed), (64,), 0, len(sizes))
    ids = np.asarray(memory_lib.draw_weighted(index, jax.random.key(seed + 1), arms, jnp.asarray(weights)))
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    for a, i in zip(np.asarray(arms), ids):
        if sizes[a] == 0:
            assert i == -1
        else:
            assert bounds[a] <= i < bounds[a + 1]


def _amr(**kw):
    pol = policies.make_replay("amr", max_arms=4, capacity=20, **kw)
    state = pol.add_task(pol.init(), np.arange(6), np.zeros(6, int), 0)
    return pol, pol.record_new(state, jnp.arange(6), jnp.ones(6))


def test_amr_records_observed_rewards_and_draws_by_them():
    pol, state = _amr(row_priority=2.0)
    chex.assert_shape(state.row_gap.gap, (20,))
    state = pol.observe(state, jnp.array([0, 1, 2]), jnp.zeros(3, jnp.int32), jnp.array([4.0, 1.0, jnp.nan]))
    chex.assert_trees_all_close(state.row_gap.gap[:3], jnp.array([3.0, 0.0, jnp.nan]))  # loss - own reference 1
    presample = jax.jit(chex.assert_max_traces(lambda s, k: pol.presample(s, k, 50, 40), n=1))
    ids = np.asarray(presample(state, jax.random.key(0)))
    presample(pol.observe(state, jnp.array([3]), jnp.zeros(1, jnp.int32), jnp.array([2.0])), jax.random.key(1))
    counts = np.bincount(ids.reshape(-1), minlength=6)
    assert counts[0] > 2 * counts[1] and counts[0] > 2 * counts[3]  # the row seen forgetting most is drawn most
    # Negative control: without the priority the same observations leave the draw uniform inside the arm.
    plain, plain_state = _amr()
    plain_state = plain.observe(plain_state, jnp.array([0, 1]), jnp.zeros(2, jnp.int32), jnp.array([4.0, 1.0]))
    assert plain_state.row_gap is None
    flat = np.bincount(np.asarray(plain.presample(plain_state, jax.random.key(0), 50, 40)).reshape(-1), minlength=6)
    assert flat[0] < 1.3 * flat[1]


def test_row_priority_needs_per_row_rewards_and_a_sane_beta():
    with pytest.raises(ValueError, match="row_priority"):
        policies.make_replay("amr", max_arms=4, capacity=20, reference="arm", row_priority=1.0)
    with pytest.raises(ValueError, match="row_priority"):
        policies.make_replay("amr", max_arms=4, capacity=20, reward="loss", row_priority=1.0)
    with pytest.raises(ValueError, match="row_priority"):
        policies.make_replay("amr", max_arms=4, capacity=20, row_priority=-1.0)
    policies.make_replay("amr", max_arms=4, capacity=20, reference="arm", row_priority=0.0)  # off: any reward


def test_states_without_the_priority_keep_their_leaves():
    with_gap = _amr(row_priority=1.0)[1]
    without = _amr()[1]
    paths = lambda s: [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(s)]  # noqa: E731
    assert paths(with_gap) == paths(without) + [".row_gap.gap"]
    rebuilt = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(with_gap), jax.tree_util.tree_leaves(with_gap))
    chex.assert_trees_all_close(rebuilt.row_gap.gap, with_gap.row_gap.gap)
    # A tree mapped to None leaves (as orbax builds its save args) keeps the structure of the state.
    nones = jax.tree_util.tree_map(lambda _: None, with_gap)
    jax.tree_util.tree_map(lambda a, b: None, with_gap, nones, is_leaf=lambda x: x is None)


def test_row_gaps_are_checkpointed_and_restored(tmp_path):
    pol, state = _amr(row_priority=1.0)
    state = pol.observe(state, jnp.array([0, 4]), jnp.zeros(2, jnp.int32), jnp.array([4.0, 0.5]))
    restored, _ = round_trip(str(tmp_path / "ckpt"), state, pol.init())
    chex.assert_trees_all_equal(restored, state)
    other = state.replace(row_gap=rp.record(state.row_gap, jnp.array([1]), jnp.array([2.0])))
    assert state_digest(other, {"task": 0}) != state_digest(state, {"task": 0})  # the digest covers the gaps
