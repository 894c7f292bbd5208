"""Tests for amr/memory.py: the arm -> sample-id index and its O(1) draws."""

import chex
import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from amr.replay import memory as m

MAPS = pytest.mark.parametrize("fn_map", [lambda f: f, jax.jit], ids=["eager", "jit"])


def _three_tasks(capacity=400, max_arms=16, donate=False):
    """Tasks 0, 1 stored (3 + 2 clusters, one empty); task 2 is 'current', not stored."""
    rng = np.random.default_rng(0)
    perm = rng.permutation(capacity)
    t0, t1, t2 = perm[:120], perm[120:200], perm[200:300]
    index = m.empty_index(max_arms, capacity)
    index, arms0 = m.add_task(index, t0, rng.integers(0, 3, t0.size), 0, donate=donate)
    labels1 = np.where(rng.random(t1.size) < 0.5, 0, 2)  # cluster 1 empty
    index, arms1 = m.add_task(index, t1, labels1, 1, num_clusters=3, donate=donate)
    return index, (t0, t1, t2), (arms0, arms1)


@MAPS
def test_draw_stays_inside_chosen_arm(fn_map):
    index, (t0, t1, t2), (arms0, arms1) = _three_tasks()
    sizes = np.asarray(index.sizes)
    active = np.flatnonzero(sizes)
    chex.assert_trees_all_equal(active, np.array([0, 1, 2, 3, 5]))  # arm 4 = empty cluster
    arms = jnp.asarray(np.resize(active, 5000).astype(np.int32))
    draw = fn_map(m.draw)
    ids = draw(index, jax.random.key(1), arms)
    chex.assert_shape(ids, arms.shape)
    chex.assert_trees_all_equal(m.arms_of(index, ids), arms)
    ids = np.asarray(ids)
    # Only stored tasks' ids, never the current task's, never an unstored id.
    assert np.isin(ids[np.asarray(arms) <= 2], t0).all()
    assert np.isin(ids[np.asarray(arms) >= 3], t1).all()
    assert not np.isin(ids, t2).any()
    # Every id of an arm gets drawn (5000 draws over arms of <= ~45 ids).
    for a in active:
        got = np.unique(ids[np.asarray(arms) == a])
        want = np.sort(np.asarray(index.sorted_ids)[index.offsets[a] : index.offsets[a] + sizes[a]])
        chex.assert_trees_all_equal(got, want)


@MAPS
def test_empty_unused_and_out_of_range_arms_give_minus_one(fn_map):
    index, _, _ = _three_tasks()
    arms = jnp.array([[4, 5, 6], [15, -1, 16]], jnp.int32)  # empty, active, unused / out of range
    ids = np.array(fn_map(m.draw)(index, jax.random.key(0), arms))
    assert ids[0, 1] >= 0 and int(m.arms_of(index, ids[0, 1])) == 5
    ids[0, 1] = -1
    chex.assert_trees_all_equal(ids, np.full((2, 3), -1, np.int32))


@MAPS
def test_draw_uniform_is_uniform(fn_map):
    index, (t0, t1, t2), _ = _three_tasks()
    stored = np.concatenate([t0, t1])
    draw_uniform = jax.jit(m.draw_uniform, static_argnums=2) if fn_map is jax.jit else m.draw_uniform
    ids = np.asarray(draw_uniform(index, jax.random.key(3), (100_000,)))
    chex.assert_shape(ids, (100_000,))
    assert np.isin(ids, stored).all()
    counts = np.bincount(ids, minlength=index.capacity)[stored]
    assert scipy.stats.chisquare(counts).pvalue > 1e-3
    # A clearly non-uniform sampler (one id twice as likely) must fail the same test.
    skewed = counts.copy()
    skewed[0] += counts.mean()
    assert scipy.stats.chisquare(skewed).pvalue < 1e-3


def test_draw_inside_arm_is_uniform():
    index, (t0, _, _), _ = _three_tasks()
    ids = np.asarray(jax.jit(m.draw)(index, jax.random.key(4), jnp.zeros((100_000,), jnp.int32)))
    members = np.asarray(index.sorted_ids)[: int(index.sizes[0])]
    counts = np.bincount(ids, minlength=index.capacity)[members]
    assert counts.sum() == 100_000
    assert scipy.stats.chisquare(counts).pvalue > 1e-3


def test_jit_matches_eager():
    index, _, _ = _three_tasks()
    arms = jnp.array([0, 1, 2, 3, 5] * 20, jnp.int32)
    key = jax.random.key(7)
    chex.assert_trees_all_equal(jax.jit(m.draw)(index, key, arms), m.draw(index, key, arms))
    chex.assert_trees_all_equal(
        jax.jit(m.draw_uniform, static_argnums=2)(index, key, (64,)), m.draw_uniform(index, key, (64,))
    )
    chex.assert_trees_all_equal(jax.jit(m.arms_of)(index, arms), m.arms_of(index, arms))


@pytest.mark.parametrize("donate", [False, True])
def test_no_retrace_while_tasks_are_added(donate):
    chex.clear_trace_counter()  # the nested function below is traced once per parametrization
    mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    index = jax.device_put(m.empty_index(32, 5000), replicated)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def presample(index, key, probs_K):
        arms = jax.random.categorical(key, jnp.log(probs_K), shape=(256,)).astype(jnp.int32)
        return arms, m.draw(index, jax.random.fold_in(key, 1), arms)

    rng = np.random.default_rng(0)
    perm, start = rng.permutation(5000), 0
    for task, (n, k) in enumerate([(7, 1), (1500, 4), (100, 3), (2000, 8), (3, 2)]):
        ids = perm[start : start + n]
        start += n
        m.check_nonempty(index) if task else None
        index, arm_ids = m.add_task(index, ids, rng.integers(0, k, n), task, num_clusters=k, donate=donate)
        assert index.sizes.sharding == replicated and index.sorted_ids.sharding.is_fully_replicated
        probs = np.asarray(index.sizes, np.float32)
        arms, drawn = presample(index, jax.random.key(task), jnp.asarray(probs / probs.sum()))
        chex.assert_trees_all_equal(m.arms_of(index, drawn), arms)
        assert np.isin(np.asarray(drawn), perm[:start]).all()
    assert int(index.num_samples) == start and int(index.num_arms) == 18


def test_donate_writes_in_place_and_copy_keeps_the_old_index():
    index, (_, _, t2), _ = _three_tasks()
    before = jax.tree.map(np.array, index)
    new_ids = t2[:10]
    copied, _ = m.add_task(index, new_ids, np.zeros(10, int), 2)
    chex.assert_trees_all_equal(jax.tree.map(np.asarray, index), before)  # untouched
    ptr = index.sorted_ids.unsafe_buffer_pointer()
    donated, _ = m.add_task(index, new_ids, np.zeros(10, int), 2, donate=True)
    assert donated.sorted_ids.unsafe_buffer_pointer() == ptr
    assert index.sorted_ids.is_deleted() and index.arm_of.is_deleted()
    chex.assert_trees_all_equal(jax.tree.map(np.asarray, donated), jax.tree.map(np.asarray, copied))


def test_layout_and_returned_arm_ids():
    index = m.empty_index(6, 20)
    index, a0 = m.add_task(index, [5, 3, 9, 1], [1, 0, 1, 0], 7)
    index, a1 = m.add_task(index, [2, 4], [2, 2], 8, num_clusters=4)
    chex.assert_trees_all_equal(a0, np.array([0, 1], np.int32))
    chex.assert_trees_all_equal(a1, np.array([2, 3, 4, 5], np.int32))
    chex.assert_trees_all_equal(index.sizes, jnp.array([2, 2, 0, 0, 2, 0], jnp.int32))
    chex.assert_trees_all_equal(index.offsets[:2], jnp.array([0, 2], jnp.int32))
    chex.assert_trees_all_equal(index.offsets[4], jnp.array(4, jnp.int32))
    chex.assert_trees_all_equal(index.sorted_ids[:6], jnp.array([3, 1, 5, 9, 2, 4], jnp.int32))
    chex.assert_trees_all_equal(index.arm_task, jnp.array([7, 7, 8, 8, 8, 8], jnp.int32))
    chex.assert_trees_all_equal(index.active, jnp.array([1, 1, 0, 0, 1, 0], bool))
    assert (index.max_arms, index.capacity) == (6, 20)
    for x in jax.tree.leaves(index):
        assert not x.weak_type
    assert index.sorted_ids.dtype == jnp.int32


@st.composite
def _tasks(draw):
    capacity = draw(st.integers(1, 300))
    max_arms = draw(st.integers(1, 12))
    num_tasks = draw(st.integers(1, 4))
    perm = draw(st.permutations(range(capacity)))
    tasks, start, arms = [], 0, 0
    for _t in range(num_tasks):
        k = draw(st.integers(1, max(1, max_arms - arms)))
        sizes = draw(st.lists(st.integers(0, 40), min_size=k, max_size=k))
        n = min(sum(sizes), capacity - start)
        labels = np.repeat(np.arange(k), sizes)[:n]
        labels = draw(st.permutations(labels.tolist())) if n else []
        tasks.append((np.array(perm[start : start + n], np.int64), np.array(labels, np.int64), k))
        start, arms = start + n, arms + k
    return max_arms, capacity, tasks


@jax.jit
def _draw_all(index, key, arms):
    ids = m.draw(index, key, arms)
    return ids, m.draw_uniform(index, jax.random.fold_in(key, 1), (32,)), m.arms_of(index, ids)


@hypothesis.settings(max_examples=30, deadline=None)
@hypothesis.given(_tasks(), st.integers(0, 2**31 - 1))
def test_properties_over_arbitrary_cluster_sizes(spec, seed):
    max_arms, capacity, tasks = spec
    index = m.empty_index(max_arms, capacity)
    stored, arms_used = [], 0
    for t, (ids, labels, k) in enumerate(tasks):
        if arms_used + k > max_arms:
            with pytest.raises(ValueError, match="max_arms"):
                m.add_task(index, ids, labels, t, num_clusters=k)
            break
        index, arm_ids = m.add_task(index, ids, labels, t, num_clusters=k)
        chex.assert_trees_all_equal(arm_ids, np.arange(arms_used, arms_used + k, dtype=np.int32))
        stored.append(ids)
        host = jax.tree.map(np.asarray, index)
        for c in range(k):
            a = arm_ids[c]
            off, size = host.offsets[a], host.sizes[a]
            members = host.sorted_ids[off : off + size]
            chex.assert_trees_all_equal(np.sort(members), np.sort(ids[labels == c]))
            assert host.arm_task[a] == t
        arms_used += k
    stored = np.concatenate(stored)
    assert int(index.num_samples) == stored.size and int(index.num_arms) == arms_used
    chex.assert_trees_all_equal(np.sort(np.asarray(index.sorted_ids)[: stored.size]), np.sort(stored))
    arm_of = np.asarray(index.arm_of)
    assert (arm_of[stored] >= 0).all() and (np.delete(arm_of, stored) == -1).all()
    if stored.size == 0:
        with pytest.raises(ValueError, match="index"):
            m.draw_uniform(index, jax.random.key(seed), (4,))
        return
    arms = jnp.arange(-1, max_arms + 1, dtype=jnp.int32)
    ids, uni, arms_back = _draw_all(index, jax.random.key(seed), arms)  # jit: one compile per shape
    sizes = np.concatenate([[0], np.asarray(index.sizes), [0]])
    chex.assert_trees_all_equal(arms_back, jnp.where(sizes > 0, arms, -1))
    assert np.isin(uni, stored).all()


# --- bad input ----------------------------------------------------------------


@pytest.mark.parametrize(
    "kw, name",
    [
        (dict(max_arms=0, capacity=10), "max_arms"),
        (dict(max_arms=-3, capacity=10), "max_arms"),
        (dict(max_arms=2.0, capacity=10), "max_arms"),
        (dict(max_arms=2, capacity=0), "capacity"),
        (dict(max_arms=2, capacity=-1), "capacity"),
        (dict(max_arms=2, capacity=2**31), "capacity"),
    ],
)
def test_empty_index_rejects(kw, name):
    with pytest.raises(ValueError, match=name):
        m.empty_index(**kw)


def test_int64_ids_need_x64():
    with pytest.raises(ValueError, match="jax_enable_x64"):
        m._id_dtype(2**31)
    assert m._id_dtype(2**31 - 1) == jnp.int32
    with jax.enable_x64(True):
        assert m._id_dtype(2**31) == jnp.int64
        index = m.empty_index(3, 50)  # small capacities keep int32 ids even in x64 mode
        index, _ = m.add_task(index, np.arange(10), np.arange(10) % 3, 0)
        ids = m.draw(index, jax.random.key(0), jnp.array([0, 1, 2]))
        assert ids.dtype == jnp.int32
        chex.assert_trees_all_equal(m.arms_of(index, ids), jnp.array([0, 1, 2], jnp.int32))


@pytest.mark.parametrize(
    "args, kw, name",
    [
        (([1, 2], [0]), {}, "sample_ids.*cluster_labels"),
        (([1, 2], [0, -1]), {}, "cluster_labels"),
        (([1, 2], [0, 3]), dict(num_clusters=3), "cluster_labels"),
        (([1, 2], [0.0, 1.0]), {}, "cluster_labels"),
        (([[1, 2]], [[0, 1]]), {}, "sample_ids"),
        (([1, 50], [0, 0]), {}, "sample_ids"),
        (([-1, 2], [0, 0]), {}, "sample_ids"),
        (([4, 4], [0, 0]), {}, "sample_ids"),
        (([7, 8], [0, 0]), {}, "sample_ids.*already stored"),
        (([], []), {}, "sample_ids"),
        (([1, 2], [0, 0]), dict(num_clusters=0), "num_clusters"),
        (([1, 2], [0, 0]), dict(num_clusters=3), "max_arms"),
        (([1, 2], [0, 4]), {}, "max_arms"),
        (([1, 2], [0, 0]), dict(task_id=-1), "task_id"),
    ],
)
def test_add_task_rejects(args, kw, name):
    index = m.empty_index(4, 50)
    index, _ = m.add_task(index, [7, 9], [0, 1], 0)
    before = jax.tree.map(np.array, index)
    kw = dict(kw)
    task_id = kw.pop("task_id", 1)
    with pytest.raises(ValueError, match=name):
        m.add_task(index, *args, task_id, **kw)
    chex.assert_trees_all_equal(jax.tree.map(np.asarray, index), before)


def test_empty_memory_is_rejected_on_the_host():
    index = m.empty_index(4, 50)
    with pytest.raises(ValueError, match="index.*empty"):
        m.check_nonempty(index)
    with pytest.raises(ValueError, match="index.*empty"):
        m.draw(index, jax.random.key(0), jnp.zeros((3,), jnp.int32))
    with pytest.raises(ValueError, match="index.*empty"):
        m.draw_uniform(index, jax.random.key(0), (3,))
    with pytest.raises(ValueError, match="index.*concrete"):
        jax.jit(m.check_nonempty)(index)
    with pytest.raises(ValueError, match="index.*concrete"):
        jax.jit(lambda i: m.add_task(i, [1], [0], 0))(index)
    index, _ = m.add_task(index, [1], [0], 0)
    with pytest.raises(ValueError, match="arm_ids"):
        m.draw(index, jax.random.key(0), jnp.zeros((3,), jnp.float32))
