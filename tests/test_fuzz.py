"""Property-based fuzzing (hypothesis) of the bandit, the memory index and the replay policies.

Shapes are fixed (K arms, N observations, a memory of CAPACITY ids) and every jitted
function is built once per policy, so examples never recompile.
"""

import functools
import math

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amr.replay import bandit as bandit_lib
from amr.replay import memory as memory_lib
from amr.replay import policies as replay_lib
from amr.replay import registry

K, N, DRAWS, CAPACITY = 6, 12, 64, 48
FUZZ = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Finite rewards, including ones beyond ~1.8e19 whose square overflows float32 (the bandit ignores those
# like non-finite ones), plus NaN and +-inf.
rewards_st = st.one_of(
    st.floats(-1e9, 1e9, width=32),
    st.floats(width=32, allow_nan=False, allow_infinity=False),
    st.sampled_from([float("nan"), float("inf"), -float("inf")]),
)
active_st = st.lists(st.booleans(), min_size=K, max_size=K)
arm_ids_st = st.lists(st.integers(-2, K + 1), min_size=N, max_size=N)  # includes out-of-range ids


@functools.cache
def _bandit(policy, estimator):
    """(observe, probs, sample) jitted once for a policy; observe runs twice (state reuse)."""
    b = bandit_lib.make_bandit(K, policy=policy, estimator=estimator, window=4)

    @jax.jit
    def run(active, ids1, r1, ids2, r2, key):
        s = b.observe(b.init(active), ids1, r1)
        s = b.observe(s, ids2, r2)
        return s, b.probs(s), b.sample(s, key, DRAWS)

    return b, run


def _obs(draw):
    ids = np.asarray(draw(arm_ids_st), np.int32)
    rewards = np.asarray(draw(st.lists(rewards_st, min_size=N, max_size=N)), np.float32)
    return ids, rewards


@FUZZ
@given(data=st.data(), policy=st.sampled_from(registry.BANDIT_POLICIES), estimator=st.sampled_from(registry.ESTIMATORS))
def test_bandit_probs_are_a_distribution_over_active_arms_and_draws_stay_on_them(data, policy, estimator):
    active = np.asarray(data.draw(active_st))
    (ids1, r1), (ids2, r2) = _obs(data.draw), _obs(data.draw)
    _, run = _bandit(policy, estimator)
    state, probs, arms = run(active, ids1, r1, ids2, r2, jax.random.key(data.draw(st.integers(0, 2**31 - 1))))
    probs, arms = np.asarray(probs), np.asarray(arms)
    for leaf in jax.tree.leaves(state):
        assert np.all(np.isfinite(leaf)), "non-finite rewards leaked into the state"
    assert np.all(probs >= 0) and np.all(probs[~active] == 0)
    if active.any():
        assert math.isclose(probs.sum(), 1.0, rel_tol=0, abs_tol=1e-5)
        assert np.all(active[arms]), (arms, active)
        if policy != "thompson":  # thompson's probs are a Monte Carlo estimate; its draws are exact argmaxes
            assert np.all(probs[arms] > 0)
    else:
        assert np.all(probs == 0) and np.all(arms == -1)


@FUZZ
@given(data=st.data(), policy=st.sampled_from(registry.BANDIT_POLICIES), estimator=st.sampled_from(registry.ESTIMATORS))
def test_bandit_ignores_non_finite_rewards_and_invalid_arms(data, policy, estimator):
    """Observing (ids, rewards) equals observing only the finite rewards of valid active arms."""
    active = np.asarray(data.draw(active_st))
    ids, rewards = _obs(data.draw)
    with np.errstate(over="ignore"):
        valid = np.isfinite(rewards * rewards) & (ids >= 0) & (ids < K)  # r*r overflowing float32 = not finite
    valid[valid] &= active[ids[valid]]
    # the same valid observations, in the same order, padded at the end with ignored ones
    kept = np.flatnonzero(valid)
    ids_clean = np.concatenate([ids[kept], np.zeros(N - kept.size, np.int32)])
    r_clean = np.concatenate([rewards[kept], np.full(N - kept.size, np.nan, np.float32)])
    nothing = np.full(N, np.nan, np.float32)
    _, run = _bandit(policy, estimator)
    key = jax.random.key(0)
    s1, p1, _ = run(active, ids, rewards, ids, nothing, key)
    s2, p2, _ = run(active, ids_clean, r_clean, ids_clean, nothing, key)
    jax.tree.map(np.testing.assert_array_equal, s1, s2)
    np.testing.assert_array_equal(p1, p2)
    assert int(s1.t) == kept.size and int(np.sum(s1.count)) == kept.size


bad_hparams = st.one_of(
    st.tuples(
        st.just("alpha"),
        st.one_of(st.floats(max_value=0.0), st.floats(min_value=1.0, exclude_min=True), st.just(float("nan"))),
    ),
    st.tuples(st.just("tau"), st.one_of(st.floats(max_value=0.0), st.just(float("inf")), st.just(float("nan")))),
    st.tuples(
        st.just("epsilon"),
        st.one_of(st.floats(max_value=0.0, exclude_max=True), st.floats(min_value=1.0, exclude_min=True)),
    ),
    st.tuples(st.just("window"), st.integers(max_value=0)),
    st.tuples(st.just("exp3_alpha"), st.one_of(st.floats(min_value=1.0), st.floats(max_value=0.0, exclude_max=True))),
    st.tuples(st.just("optimism"), st.sampled_from([float("nan"), float("inf"), "a"])),
    st.tuples(st.just("policy"), st.text(max_size=8).filter(lambda s: s not in registry.BANDIT_POLICIES)),
    st.tuples(st.just("num_arms"), st.one_of(st.integers(max_value=0), st.just(True), st.just(2.5))),
)


@FUZZ
@given(bad=bad_hparams)
def test_bandit_bad_hyper_parameters_raise_value_error(bad):
    name, value = bad
    kwargs = {"num_arms": K, name: value}
    with pytest.raises(ValueError, match=name):
        bandit_lib.make_bandit(**kwargs)


# ------------------------------------------------------------------ memory index


@st.composite
def task_stream(draw):
    """1-3 tasks: disjoint ids from a shuffled [0, CAPACITY), labels in [0, clusters)."""
    perm = draw(st.permutations(range(CAPACITY)))
    tasks, start = [], 0
    for _ in range(draw(st.integers(1, 3))):
        n = draw(st.integers(0, 12))
        clusters = draw(st.integers(1, 2))
        labels = draw(st.lists(st.integers(0, clusters - 1), min_size=n, max_size=n))
        tasks.append((np.asarray(perm[start : start + n], np.int32), np.asarray(labels, np.int32), clusters))
        start += n
    return tasks


_draw = jax.jit(memory_lib.draw)
_draw_uniform = jax.jit(memory_lib.draw_uniform, static_argnums=2)


def _check_index(index, added):
    """The index holds exactly `added` = [(ids, labels, first_arm, task)], every arm a contiguous sorted range."""
    sorted_ids, offsets, sizes = map(np.asarray, (index.sorted_ids, index.offsets, index.sizes))
    arm_of, arm_task = np.asarray(index.arm_of), np.asarray(index.arm_task)
    expected_arm_of = np.full(CAPACITY, -1)
    for ids, labels, first, task in added:
        expected_arm_of[ids] = first + labels
        for c in range(labels.max(initial=-1) + 1):
            a = first + c
            got = sorted_ids[offsets[a] : offsets[a] + sizes[a]]
            assert sorted(got.tolist()) == sorted(ids[labels == c].tolist())
            assert arm_task[a] == task
    np.testing.assert_array_equal(arm_of, expected_arm_of)
    assert int(index.num_samples) == sum(len(ids) for ids, *_ in added) == int(sizes.sum())


@FUZZ
@given(tasks=task_stream(), seed=st.integers(0, 2**31 - 1))
def test_memory_add_task_keeps_the_index_consistent_and_draws_land_in_their_arm(tasks, seed):
    index, added = memory_lib.empty_index(K, CAPACITY), []
    for t, (ids, labels, clusters) in enumerate(tasks):
        if int(index.num_arms) + clusters > K:
            with pytest.raises(ValueError, match="max_arms"):
                memory_lib.add_task(index, ids, labels, t, num_clusters=clusters)
            break
        first = int(index.num_arms)
        index, arm_ids = memory_lib.add_task(index, ids, labels, t, num_clusters=clusters)
        np.testing.assert_array_equal(arm_ids, np.arange(first, first + clusters))
        added.append((ids, labels, first, t))
        _check_index(index, added)
    if int(index.num_samples) == 0:
        return
    arms = jax.random.randint(jax.random.key(seed), (DRAWS,), -2, K + 2)
    got = np.asarray(_draw(index, jax.random.key(seed + 1), arms))
    arms, sizes, arm_of = np.asarray(arms), np.asarray(index.sizes), np.asarray(index.arm_of)
    drawable = (arms >= 0) & (arms < K)
    drawable[drawable] &= sizes[arms[drawable]] > 0
    assert np.all(got[~drawable] == -1)
    assert np.all(arm_of[got[drawable]] == arms[drawable]), "a draw left its arm"
    uniform = np.asarray(_draw_uniform(index, jax.random.key(seed + 2), (DRAWS,)))
    assert np.all(arm_of[uniform] >= 0), "a uniform draw returned an id that is not stored"


@FUZZ
@given(tasks=task_stream(), data=st.data())
def test_memory_bad_add_task_raises_value_error_and_leaves_the_index_intact(tasks, data):
    ids, labels, clusters = tasks[0]
    index, _ = memory_lib.add_task(memory_lib.empty_index(K, CAPACITY), ids, labels, 0, num_clusters=clusters)
    before = jax.tree.map(np.asarray, index)
    fresh = np.setdiff1d(np.arange(CAPACITY), ids)[:4].astype(np.int32)
    bad = data.draw(
        st.sampled_from(
            [
                ("duplicate", np.concatenate([fresh[:2], fresh[:1]]), np.zeros(3, np.int32), 1),
                ("already stored", ids[:1] if len(ids) else None, np.zeros(1, np.int32), 1),
                ("capacity", np.asarray([CAPACITY + data.draw(st.integers(0, 5))], np.int32), np.zeros(1, np.int32), 1),
                ("capacity", np.asarray([-1 - data.draw(st.integers(0, 5))], np.int32), np.zeros(1, np.int32), 1),
                ("cluster_labels", fresh[:2], np.asarray([0, data.draw(st.integers(1, 4))], np.int32), 1),
                ("cluster_labels", fresh[:2], np.asarray([-1, 0], np.int32), 1),
                ("same length", fresh[:2], np.zeros(3, np.int32), 1),
                ("integer", fresh[:2].astype(np.float32), np.zeros(2, np.int32), 1),
                ("num_clusters", fresh[:2], np.zeros(2, np.int32), 0),
                ("max_arms", fresh[:2], np.zeros(2, np.int32), K),
            ]
        )
    )
    what, bad_ids, bad_labels, bad_clusters = bad
    if bad_ids is None:
        return
    with pytest.raises(ValueError, match=what):
        memory_lib.add_task(index, bad_ids, bad_labels, 1, num_clusters=bad_clusters)
    jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.asarray, index), before)


# ------------------------------------------------------------------ replay policies


@functools.cache
def _replay(name):
    policy = replay_lib.make_replay(
        name,
        max_arms=K,
        capacity=CAPACITY,
        reward="loss_increase",
        reference="arm",
        candidates=2 if name == "mir" else 1,
    )

    @jax.jit
    def presample_and_observe(state, key, sample_ids, arm_ids, losses):
        ids = policy.presample(state, key, 2, 8)
        return ids, policy.observe(state, sample_ids, arm_ids, losses), policy.arm_probs(state)

    return policy, presample_and_observe


@FUZZ
@given(name=st.sampled_from(("uniform", "task_balanced", "amr", "mir")), tasks=task_stream(), data=st.data())
def test_replay_draws_only_stored_ids_and_ignores_non_finite_losses(name, tasks, data):
    policy, run = _replay(name)
    state = policy.init()
    for t, (ids, labels, clusters) in enumerate(tasks):
        if int(state.memory.num_arms) + clusters > K:
            break
        ref = np.asarray(
            data.draw(st.lists(st.floats(0, 5, width=32), min_size=clusters, max_size=clusters)), np.float32
        )
        state = policy.add_task(state, ids, labels, t, ref, num_clusters=clusters)
    if int(state.memory.num_samples) == 0:
        return
    arm_ids = np.asarray(data.draw(arm_ids_st), np.int32)
    sample_ids = np.asarray(data.draw(st.lists(st.integers(0, CAPACITY - 1), min_size=N, max_size=N)), np.int32)
    losses = np.full(N, np.nan, np.float32)
    losses[::3] = np.inf
    ids, observed, probs = run(state, jax.random.key(data.draw(st.integers(0, 2**31 - 1))), sample_ids, arm_ids, losses)
    arm_of = np.asarray(state.memory.arm_of)
    assert np.all(arm_of[np.asarray(ids)] >= 0), "replay drew an id that is not in the memory"
    jax.tree.map(np.testing.assert_array_equal, observed, state)  # NaN / inf losses change nothing
    probs, active = np.asarray(probs), np.asarray(state.memory.sizes) > 0
    assert np.all(probs[~active] == 0) and math.isclose(probs.sum(), 1.0, abs_tol=1e-5)


@FUZZ
@given(tasks=task_stream(), extra=st.integers(1, 3))
def test_replay_add_task_with_wrong_reference_count_raises(tasks, extra):
    policy, _ = _replay("amr")
    ids, labels, clusters = tasks[0]
    with pytest.raises(ValueError, match="ref_losses"):
        policy.add_task(policy.init(), ids, labels, 0, np.zeros(clusters + extra, np.float32), num_clusters=clusters)
