"""Tests for amr/clustering.py: per-task arms and k-means in JAX (checked against scikit-learn)."""

import chex
import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sklearn.cluster
import sklearn.datasets

from amr.replay import clustering as c


@pytest.fixture(scope="module")
def digits():
    return sklearn.datasets.load_digits().data.astype(np.float32)  # real data: 1797 x 64


@pytest.fixture(scope="module")
def blobs():
    x, y = sklearn.datasets.make_blobs(3000, n_features=8, centers=12, random_state=0)
    return x.astype(np.float32), y


def _best_of(x, k, seeds, **kw):
    """Inertias of len(seeds) independent k-means runs, vmapped into one call."""
    keys = jax.vmap(jax.random.key)(jnp.arange(seeds))
    return np.asarray(jax.vmap(lambda key: c.kmeans(key, x, k, **kw).inertia)(keys))


@pytest.mark.parametrize("data, k", [("blobs", 12), ("digits", 10), pytest.param("digits", 32, marks=pytest.mark.slow)])
def test_lloyd_inertia_matches_sklearn(data, k, request):
    x = request.getfixturevalue(data)
    x = x[0] if isinstance(x, tuple) else x
    n_init = 4
    ref = sklearn.cluster.KMeans(k, n_init=n_init, random_state=0).fit(x).inertia_
    ours = _best_of(x, k, n_init, num_iters=100)
    assert ours.min() <= 1.02 * ref, (ours, ref)  # best of the same number of restarts
    assert np.median(ours) <= 1.02 * ref, (ours, ref)  # and a typical single run
    assert ours.min() >= 0.98 * ref  # a sanity bound: sklearn is no far worse than us


@pytest.mark.parametrize("data, k", [("blobs", 12), pytest.param("digits", 10, marks=pytest.mark.slow)])
def test_minibatch_inertia_close_to_full_kmeans(data, k, request):
    x = request.getfixturevalue(data)
    x = x[0] if isinstance(x, tuple) else x
    ref = sklearn.cluster.KMeans(k, n_init=4, random_state=0).fit(x).inertia_
    ours = _best_of(x, k, 4, num_iters=200, batch_size=256)
    assert np.median(ours) <= 1.06 * ref, (ours, ref)
    # Mini-batch refinement must improve on its k-means++ seeding.
    seeds = c.kmeans_plus_plus_init(jax.random.key(0), x, k)
    seed_inertia = float(np.sum(np.min(((x[:, None] - np.asarray(seeds)[None]) ** 2).sum(-1), 1)))
    assert np.median(ours) < seed_inertia


def test_blobs_recovered_exactly(blobs):
    x, y = blobs
    res = c.kmeans(jax.random.key(1), x, 12)
    chex.assert_shape(res.centroids, (12, 8))
    chex.assert_shape(res.labels, (3000,))
    assert res.labels.dtype == jnp.int32 and res.centroids.dtype == jnp.float32
    # Same partition as the generating labels, up to renaming.
    pairs = set(zip(np.asarray(res.labels).tolist(), y.tolist()))
    assert len(pairs) == 12


def test_result_is_consistent_and_a_lloyd_fixed_point(digits):
    res = c.kmeans(jax.random.key(2), digits, 10, num_iters=200)
    cent, labels = np.asarray(res.centroids, np.float64), np.asarray(res.labels)
    d = ((digits[:, None, :] - cent[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(labels, d.argmin(1))
    np.testing.assert_allclose(float(res.inertia), d.min(1).sum(), rtol=1e-5)
    for j in range(10):
        np.testing.assert_allclose(cent[j], digits[labels == j].mean(0), rtol=1e-4, atol=1e-3)


def test_jit_and_eager_paths_agree():
    x = np.random.default_rng(0).normal(size=(30, 2)).astype(np.float32)
    key = jax.random.key(3)
    jitted = jax.jit(lambda key, x: c.kmeans(key, x, 2, num_iters=4))(key, x)
    with jax.disable_jit():
        eager = c.kmeans(key, x, 2, num_iters=4)
    direct = c.kmeans(key, x, 2, num_iters=4)
    chex.assert_trees_all_equal(jitted.labels, eager.labels, direct.labels)
    chex.assert_trees_all_close(jitted, eager, direct, rtol=1e-5, atol=1e-4)


def test_kmeans_compiles_once_per_shape():
    x = np.random.default_rng(1).normal(size=(50, 2)).astype(np.float32)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def fit(key, x):
        return c.kmeans(key, x, 4, num_iters=5, batch_size=16)

    for s in range(3):
        fit(jax.random.key(s), x + s)


def test_kmeans_plus_plus_picks_rows_and_spreads_out(blobs):
    x, y = blobs
    for jit in (False, True):
        f = jax.jit(c.kmeans_plus_plus_init, static_argnums=2) if jit else c.kmeans_plus_plus_init
        cent = np.asarray(f(jax.random.key(4), x, 12))
        chex.assert_shape(cent, (12, 8))
        rows = np.flatnonzero((x[:, None, :] == cent[None]).all(-1).any(1))
        assert len(rows) == 12 and len(set(y[rows])) == 12  # one seed in each blob
    # k == N: every row once; duplicate points: no NaN, still rows of x.
    small = x[:7]
    cent = np.asarray(c.kmeans_plus_plus_init(jax.random.key(5), small, 7))
    np.testing.assert_array_equal(np.sort(cent, 0), np.sort(small, 0))
    dup = np.repeat(x[:2], 5, axis=0)
    res = c.kmeans(jax.random.key(6), dup, 3)
    assert np.isfinite(np.asarray(res.centroids)).all() and float(res.inertia) < 1e-9


def test_chunked_assignment_matches_direct(monkeypatch):
    x = jnp.asarray(np.random.default_rng(2).normal(size=(301, 5)), jnp.float32)
    cent = x[:7]
    direct = c._assign(x, cent)
    monkeypatch.setattr(c, "_ASSIGN_CHUNK", 64)  # 301 rows: 4 full chunks + a remainder
    labels, d = c._assign(x, cent)
    chex.assert_trees_all_equal(labels, direct[0])
    chex.assert_trees_all_close(d, direct[1], atol=1e-5)


@hypothesis.settings(max_examples=25, deadline=None)
@hypothesis.given(
    st.integers(0, 2**31 - 1), st.sampled_from([(1, None), (3, None), (3, 8), (40, None)]), st.floats(0.01, 100.0)
)
def test_properties(seed, k_and_batch, scale):
    k, batch_size = k_and_batch
    x = (np.random.default_rng(seed).standard_t(3, size=(40, 2)) * scale).astype(np.float32)
    res = c.kmeans(jax.random.key(seed), x, k, num_iters=20, batch_size=batch_size)
    labels = np.asarray(res.labels)
    assert labels.min() >= 0 and labels.max() < k
    d = ((x[:, None, :].astype(np.float64) - np.asarray(res.centroids)[None]) ** 2).sum(-1)
    np.testing.assert_allclose(float(res.inertia), d[np.arange(40), labels].sum(), rtol=1e-4, atol=1e-6 * scale**2)
    seeds = np.asarray(c.kmeans_plus_plus_init(jax.random.split(jax.random.key(seed))[0], x, k))
    seed_inertia = ((x[:, None, :] - seeds[None]) ** 2).sum(-1).min(1).sum()
    if batch_size is None:  # Lloyd never increases the inertia of its seeding
        assert float(res.inertia) <= seed_inertia * (1 + 1e-5) + 1e-6 * scale**2
    if k == 40:  # one centre per point
        assert float(res.inertia) <= 1e-6 * scale**2


def test_per_task_labels():
    np.testing.assert_array_equal(c.per_task_labels(4), np.zeros(4, np.int32))
    assert c.per_task_labels(0).shape == (0,) and c.per_task_labels(3).dtype == np.int32


# --- bad input ----------------------------------------------------------------


@pytest.mark.parametrize(
    "k, kw, name",
    [
        (0, {}, "k must"),
        (-1, {}, "k must"),
        (11, {}, "k must"),
        (2.0, {}, "k must"),
        (2, dict(num_iters=-1), "num_iters"),
        (2, dict(batch_size=0), "batch_size"),
    ],
)
def test_kmeans_rejects(k, kw, name):
    x = np.zeros((10, 2), np.float32)
    with pytest.raises(ValueError, match=name):
        c.kmeans(jax.random.key(0), x, k, **kw)
    if not kw:
        with pytest.raises(ValueError, match=name):
            c.kmeans_plus_plus_init(jax.random.key(0), x, k)


def test_kmeans_rejects_non_matrix():
    with pytest.raises(ValueError, match="x_NxD"):
        c.kmeans(jax.random.key(0), np.zeros(10, np.float32), 2)


def test_per_task_labels_rejects_negative():
    with pytest.raises(ValueError, match="num_samples"):
        c.per_task_labels(-1)
