"""Issue #12 item 2, "never an argmax at a fixed ratio": with aggregate='segment', 'pooled'
normalisation makes the arm probabilities follow the size of the real reward gap (against the
within-arm spread of chunk means), while 'zscore' over 2-3 arms maps every gap to the same scores
(+-1 for two arms), so the probabilities sit at a fixed ratio whatever the gap. This documents
the flaw; the defaults are not changed here."""

import functools

import chex
import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amr.replay.bandit import make_bandit

ALPHA, TAU, EPS, SPREAD, CHUNKS = 0.3, 1.0, 0.1, 0.05, 24
ROW_NOISE = np.array([-0.2, 0.2, -0.1, 0.1], np.float32)  # within a chunk; sums to 0, so segment means are exact


def _chunk_means(gaps_K):
    """f32[CHUNKS, K]: arm a's chunk mean is 1 + gaps_K[a] + SPREAD * (+-1 alternating by chunk)."""
    sign_C = np.where(np.arange(CHUNKS) % 2 == 0, 1.0, -1.0)
    return (1.0 + np.asarray(gaps_K)[None, :] + SPREAD * sign_C[:, None]).astype(np.float32)


@functools.cache
def _bandit(normalize, K):
    """(bandit, its jitted observe), built once per normalisation and arm count (one compile)."""
    bandit = make_bandit(K, alpha=ALPHA, tau=TAU, epsilon=EPS, normalize=normalize, aggregate="segment")
    return bandit, jax.jit(bandit.observe)


def _probs(normalize, gaps_K, jit=True):
    K = len(gaps_K)
    bandit, jitted = _bandit(normalize, K)
    observe = jitted if jit else bandit.observe
    state = bandit.init(np.ones(K, bool))
    ids = np.repeat(np.arange(K, dtype=np.int32), len(ROW_NOISE))
    for means_K in _chunk_means(gaps_K):
        state = observe(state, ids, np.repeat(means_K, len(ROW_NOISE)) + np.tile(ROW_NOISE, K))
    return np.asarray(bandit.probs(state), np.float64)


def _numpy_probs(normalize, gaps_K):
    """The Boltzmann probabilities from NumPy EMAs of the chunk means (first one initialises)."""
    means_CxK = _chunk_means(gaps_K).astype(np.float64)
    value, sq = means_CxK[0].copy(), means_CxK[0] ** 2
    for m in means_CxK[1:]:
        value, sq = (1 - ALPHA) * value + ALPHA * m, (1 - ALPHA) * sq + ALPHA * m**2
    between = np.mean((value - value.mean()) ** 2)
    within = np.mean(np.maximum(sq - value**2, 0.0))
    spread = np.sqrt(between + within) if normalize == "pooled" else np.sqrt(between)
    z = (value - value.mean()) / spread
    soft = np.exp(z / TAU - np.max(z / TAU))
    return (1 - EPS) * soft / soft.sum() + EPS / len(z)


@pytest.mark.parametrize("jit", [False, True], ids=["nojit", "jit"])
@pytest.mark.parametrize("normalize", ["pooled", "zscore"])
def test_probabilities_equal_the_numpy_reference(normalize, jit):
    for gaps in ([0.0, 0.01], [0.0, 0.1], [0.0, 0.01, 0.02]):
        got = _probs(normalize, gaps, jit)
        chex.assert_shape(got, (len(gaps),))
        chex.assert_trees_all_close(got, _numpy_probs(normalize, gaps), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("arms", [2, 3])
def test_pooled_follows_the_gap_where_zscore_sits_at_a_fixed_ratio(arms):
    small, large = np.arange(arms) * 0.01, np.arange(arms) * 0.1  # equally spaced: the same shape of scores
    pooled_small, pooled_large = _probs("pooled", small), _probs("pooled", large)
    zscore_small, zscore_large = _probs("zscore", small), _probs("zscore", large)
    # pooled: a gap small against the within-arm spread gives a mild preference, a large one a strong one
    assert pooled_large[-1] - pooled_small[-1] > 0.1, (pooled_small, pooled_large)
    assert pooled_small[-1] < 1.2 / arms  # near uniform at gap 0.01 against a spread of 0.05
    # zscore (the flaw): the same probabilities for a tenfold gap
    chex.assert_trees_all_close(zscore_small, zscore_large, rtol=1e-4)
    # negative control: the check that pooled passes fails for zscore, and vice versa
    assert not zscore_large[-1] - zscore_small[-1] > 0.1
    assert not np.allclose(pooled_small, pooled_large, rtol=1e-4)


@settings(max_examples=20, deadline=None)
@given(gap_a=st.floats(0.002, 0.5), gap_b=st.floats(0.002, 0.5))
def test_pooled_is_monotone_in_the_gap_and_zscore_is_blind_to_it(gap_a, gap_b):
    lo, hi = sorted((gap_a, gap_b))
    p_lo, p_hi = _probs("pooled", [0.0, lo])[1], _probs("pooled", [0.0, hi])[1]
    assert p_hi >= p_lo - 1e-5
    np.testing.assert_allclose(_probs("zscore", [0.0, lo]), _probs("zscore", [0.0, hi]), rtol=1e-4)
