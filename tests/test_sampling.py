"""Tests of amr/sampling.py: inverse-CDF draws follow the probabilities, never a p == 0 arm."""

import chex
import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from amr.replay import sampling

JITS = pytest.mark.parametrize("jit", [False, True], ids=["nojit", "jit"])
U_BELOW_ONE = np.nextafter(np.float32(1), np.float32(0))  # the largest float32 uniform: 1 - 2**-24
# float32 sums to 1 - 2**-24 (checked below): the CDF's last entry ends BELOW 1.
SHORT_SUM_P = np.array([0.0, 0.35, 0.0, 0.45, 0.2, 0.0, 0.0], np.float32)


def _sampler(jit):
    return jax.jit(sampling.sample_from_probs, static_argnums=2) if jit else sampling.sample_from_probs


def _inverse_cdf(jit):
    return jax.jit(sampling.inverse_cdf) if jit else sampling.inverse_cdf


@JITS
@pytest.mark.parametrize(
    "probs",
    [
        [0.1, 0.0, 0.3, 0.6],
        [5.0, 1.0, 0.0, 0.0, 2.0, 0.0],  # unnormalised, trailing zeros
        SHORT_SUM_P.tolist(),
        list(np.random.default_rng(0).dirichlet(np.ones(100)) * (np.arange(100) % 3 > 0)),  # K > 64: binary search
    ],
    ids=["zeros", "unnormalised", "short_sum", "k100"],
)
def test_draws_follow_probs_chi_square(probs, jit):
    n = 100_000
    p = np.asarray(probs, np.float64)
    ids = np.asarray(_sampler(jit)(jax.random.key(7), jnp.asarray(p, jnp.float32), (n,)))
    assert ids.shape == (n,) and ids.dtype == np.int32
    counts = np.bincount(ids, minlength=len(p))
    assert counts.shape == (len(p),)  # no id >= K
    support = p > 0
    assert np.all(counts[~support] == 0), counts
    expected = n * p[support] / p[support].sum()
    _, pvalue = scipy.stats.chisquare(counts[support], expected)
    assert pvalue > 1e-3, (pvalue, counts[support], expected)


def test_chi_square_detects_a_wrong_distribution():
    """The chi-square check above has power: draws of p do not pass as draws of a nearby q."""
    n, p = 100_000, np.array([0.1, 0.3, 0.6])
    counts = np.bincount(np.asarray(sampling.sample_from_probs(jax.random.key(7), p, n)), minlength=3)
    _, pvalue = scipy.stats.chisquare(counts, n * np.array([0.11, 0.3, 0.59]))
    assert pvalue < 1e-3


def test_short_sum_vector_really_ends_below_one():
    assert float(jnp.cumsum(jnp.asarray(SHORT_SUM_P))[-1]) < 1.0
    assert float(np.cumsum(SHORT_SUM_P)[-1]) < 1.0


@JITS
def test_extreme_uniforms_never_reach_zero_arms(jit):
    inv = _inverse_cdf(jit)
    u = jnp.asarray([0.0, 1e-30, 0.36, U_BELOW_ONE, 1.0], jnp.float32)  # 1.0 is outside [0, 1) but still safe
    ids = np.asarray(inv(jnp.asarray(SHORT_SUM_P), u))
    np.testing.assert_array_equal(ids, [1, 1, 3, 4, 4])
    # a CDF ending above 1, zeros at both ends
    p = jnp.asarray([0.0, 0.1] * 10 + [0.0], jnp.float32)
    assert float(jnp.cumsum(p)[-1]) > 1.0
    np.testing.assert_array_equal(np.asarray(inv(p, u)), [1, 1, 7, 19, 19])


@st.composite
def _probs_with_zeros(draw):
    k = draw(st.integers(1, 80))
    w = draw(st.lists(st.floats(2.0**-100, 1024.0, width=32, allow_subnormal=False), min_size=k, max_size=k))
    zero = draw(st.lists(st.booleans(), min_size=k, max_size=k))
    p = np.where(zero, 0.0, w).astype(np.float32)
    hypothesis.assume(p.sum() > 0)
    if draw(st.booleans()):
        p = (p / p.sum()).astype(np.float32)  # normalised in float32: the sum may end below or above 1
    p[p < np.finfo(np.float32).tiny] = 0.0  # no subnormals (XLA on CPU flushes them to zero)
    hypothesis.assume(p.sum() > 0)
    return p


@JITS
@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(
    p=_probs_with_zeros(),
    seed=st.integers(0, 2**31 - 1),
    extra_u=st.lists(st.floats(0.0, float(U_BELOW_ONE), width=32), max_size=8),
)
def test_zero_probability_arms_never_drawn(jit, p, seed, extra_u):
    positive = np.flatnonzero(p > 0)
    ids = np.asarray(_sampler(jit)(jax.random.key(seed), p, (512,)))
    assert np.all(np.isin(ids, positive)), (p, np.unique(ids))
    u = np.asarray([0.0, U_BELOW_ONE, *extra_u], np.float32)
    ids_u = np.asarray(_inverse_cdf(jit)(p, u))
    assert np.all(np.isin(ids_u, positive)), (p, u, ids_u)
    assert ids_u[0] == positive[0]  # u = 0 is the first positive arm, u -> 1 the last
    if p[positive[-1]] >= 1e-4 * p.sum():  # (a weight below the CDF's float resolution cannot be hit)
        assert ids_u[1] == positive[-1]


@JITS
def test_nonpositive_and_nonfinite_weights_count_as_zero(jit):
    p = jnp.asarray([np.nan, -1.0, 2.0, np.inf, -np.inf, 0.0, 1.0], jnp.float32)
    ids = np.asarray(_sampler(jit)(jax.random.key(0), p, (20_000,)))
    assert set(np.unique(ids)) == {2, 6}
    np.testing.assert_allclose(np.mean(ids == 2), 2 / 3, atol=0.02)


@JITS
def test_all_zero_gives_minus_one(jit):
    ids = _sampler(jit)(jax.random.key(0), jnp.zeros((5,), jnp.float32), (3, 4))
    chex.assert_shape(ids, (3, 4))
    chex.assert_trees_all_equal(ids, jnp.full((3, 4), -1, jnp.int32))


def test_shapes_dtypes_and_jit_agree():
    p = jnp.asarray([0.2, 0.0, 0.8])
    key = jax.random.key(3)
    for shape, expect in [((), ()), (5, (5,)), ((2, 3), (2, 3)), ((0,), (0,))]:
        ids = sampling.sample_from_probs(key, p, shape)
        chex.assert_shape(ids, expect)
        chex.assert_type(ids, jnp.int32)
        chex.assert_trees_all_equal(ids, jax.jit(sampling.sample_from_probs, static_argnums=2)(key, p, shape))
    ints = sampling.sample_from_probs(key, jnp.asarray([0, 3, 1]), (100,))  # integer weights
    assert set(np.unique(np.asarray(ints))) <= {1, 2}


def test_one_trace_for_new_probabilities():
    chex.clear_trace_counter()
    draw = jax.jit(chex.assert_max_traces(sampling.sample_from_probs, n=1), static_argnums=2)
    rng = np.random.default_rng(0)
    for i in range(4):
        p = (rng.random(8) * (rng.random(8) > 0.5)).astype(np.float32)
        p[i] = 1.0
        ids = np.asarray(draw(jax.random.key(i), jnp.asarray(p), (64,)))
        assert np.all(p[ids] > 0)


@pytest.mark.parametrize(
    "bad", [np.float32(0.5), np.zeros((0,), np.float32), np.ones((2, 3), np.float32)], ids=["scalar", "empty", "2d"]
)
def test_bad_probs_raise_naming_the_argument(bad):
    with pytest.raises(ValueError, match="probs_K"):
        sampling.sample_from_probs(jax.random.key(0), bad, (3,))
    with pytest.raises(ValueError, match="probs_K"):
        jax.jit(sampling.sample_from_probs, static_argnums=2)(jax.random.key(0), bad, (3,))
