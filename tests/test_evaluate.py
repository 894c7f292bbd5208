"""Tests for amr/evaluate.py: forgetting metrics, seeds, confidence intervals."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats

from amr.analysis import forgetting as evaluate

# L[i][j]: loss on task j after training on task i. Values are dyadic, so every
# metric below is exact in floating point.
L3 = [[1.0, 3.0, 4.0], [1.5, 0.75, 3.5], [2.0, 1.25, 0.5]]
INIT3 = [4.0, 4.0, 4.0]


@pytest.mark.parametrize("to_array", [list, np.asarray, jnp.asarray], ids=["list", "numpy", "jax"])
def test_metrics_on_hand_computed_3x3(to_array):
    m = evaluate.forgetting_metrics(to_array(L3), init_losses=to_array(INIT3))
    # Forgetting of task 0: 2.0 - 1.0; task 1: 1.25 - 0.75.
    assert m["forgetting_per_task"] == [1.0, 0.5]
    assert m["avg_forgetting"] == 0.75
    assert m["max_forgetting"] == 1.0
    assert m["final_avg_loss"] == (2.0 + 1.25 + 0.5) / 3 == 1.25
    assert m["new_task_loss"] == (1.0 + 0.75 + 0.5) / 3 == 0.75
    assert m["bwt"] == -0.75
    # Forward transfer: init[1] - L[0][1] = 1.0, init[2] - L[1][2] = 0.5.
    assert m["fwt"] == 0.75
    assert all(type(v) is float for k, v in m.items() if k != "forgetting_per_task")


def test_negative_forgetting_and_no_init():
    # Later training helps task 0 (loss drops from 2 to 1) and hurts task 1.
    L = [[2.0, 5.0, 5.0], [1.5, 1.0, 5.0], [1.0, 1.25, 0.5]]
    m = evaluate.forgetting_metrics(L)
    assert m["forgetting_per_task"] == [-1.0, 0.25]
    assert m["avg_forgetting"] == -0.375
    assert m["max_forgetting"] == 0.25
    assert m["bwt"] == 0.375
    assert m["fwt"] is None


def test_single_task():
    m = evaluate.forgetting_metrics([[2.5]], init_losses=[3.0])
    assert m == {
        "avg_forgetting": 0.0,
        "max_forgetting": 0.0,
        "final_avg_loss": 2.5,
        "new_task_loss": 2.5,
        "bwt": 0.0,
        "fwt": 0.0,
        "forgetting_per_task": [],
    }


def _reference_metrics(L, init):
    """Loop-by-loop transcription of the definitions."""
    T = len(L)
    per = [L[T - 1][j] - L[j][j] for j in range(T - 1)]
    return {
        "avg_forgetting": sum(per) / len(per),
        "max_forgetting": max(per),
        "final_avg_loss": sum(L[T - 1]) / T,
        "new_task_loss": sum(L[j][j] for j in range(T)) / T,
        "bwt": sum(L[j][j] - L[T - 1][j] for j in range(T - 1)) / (T - 1),
        "fwt": sum(init[j] - L[j - 1][j] for j in range(1, T)) / (T - 1),
        "forgetting_per_task": per,
    }


@settings(max_examples=40, deadline=None)
@given(
    hnp.arrays(np.float64, st.integers(2, 6).map(lambda t: (t + 1, t)), elements=st.floats(0.0, 10.0, allow_nan=False)),
    st.floats(-3.0, 3.0),
)
def test_metrics_match_reference_and_properties(LI, shift):
    L, init = LI[:-1], LI[-1]
    m = evaluate.forgetting_metrics(L, init)
    ref = _reference_metrics(L.tolist(), init.tolist())
    chex.assert_trees_all_close(m, ref, atol=1e-12)
    assert m["bwt"] == pytest.approx(-m["avg_forgetting"], abs=1e-12)
    assert m["max_forgetting"] >= m["avg_forgetting"] - 1e-12
    # A constant offset of every loss moves losses, not forgetting or transfer.
    s = evaluate.forgetting_metrics(L + shift, init + shift)
    for k in ("avg_forgetting", "max_forgetting", "bwt", "fwt"):
        assert s[k] == pytest.approx(m[k], abs=1e-9)
    assert s["final_avg_loss"] == pytest.approx(m["final_avg_loss"] + shift, abs=1e-9)


@pytest.mark.parametrize(
    "bad",
    [
        [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]],  # not square
        [1.0, 2.0],  # 1-D
        np.ones((2, 2, 2)),  # 3-D
        np.zeros((0, 0)),  # no task
        [[1.0, np.nan], [1.0, 1.0]],
        [[1.0, 2.0], [np.inf, 1.0]],
        [["a", "b"], ["c", "d"]],
    ],
)
def test_bad_loss_matrix(bad):
    with pytest.raises(ValueError, match="loss_matrix"):
        evaluate.forgetting_metrics(bad)


@pytest.mark.parametrize("bad", [[1.0, 2.0], [1.0, 2.0, np.nan], [[1.0, 2.0, 3.0]]])
def test_bad_init_losses(bad):
    with pytest.raises(ValueError, match="init_losses"):
        evaluate.forgetting_metrics(L3, init_losses=bad)


def test_forgetting_reduction():
    assert evaluate.forgetting_reduction({"avg_forgetting": 0.75}, {"avg_forgetting": 1.0}) == 0.25
    assert evaluate.forgetting_reduction({"avg_forgetting": 1.5}, {"avg_forgetting": 1.0}) == -0.5
    m = evaluate.forgetting_metrics(L3)
    assert evaluate.forgetting_reduction(m, m) == 0.0
    for f, b in [(0.5, 0.0), (0.5, -0.1), (0.5, math.nan), (math.nan, 1.0), (None, 1.0), (0.5, math.inf)]:
        assert math.isnan(evaluate.forgetting_reduction({"avg_forgetting": f}, {"avg_forgetting": b}))
    with pytest.raises(ValueError, match="baseline_metrics"):
        evaluate.forgetting_reduction({"avg_forgetting": 0.5}, {"bwt": 0.1})
    with pytest.raises(ValueError, match="metrics"):
        evaluate.forgetting_reduction(0.5, {"avg_forgetting": 1.0})


# t_{0.975, df} from printed statistical tables (scipy-free reference).
T_TABLE = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 9: 2.262, 29: 2.045}


@pytest.mark.parametrize("n", sorted(k + 1 for k in T_TABLE))
def test_ci95_matches_t_table(n):
    values = np.arange(n, dtype=np.float64) ** 1.5
    expected = T_TABLE[n - 1] * np.std(values, ddof=1) / math.sqrt(n)
    assert evaluate.ci95(values) == pytest.approx(expected, rel=2e-4)


def _t_quantile_975(df):
    """Scipy-free t quantile: integrate the t density (Simpson) and bisect."""
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def upper_tail(t):  # P(T > t), truncated at t + 2000 (the rest is < 1e-6 of it)
        x = np.linspace(t, t + 2000.0, 400_001)
        pdf = np.exp(log_c - (df + 1) / 2 * np.log1p(x * x / df))
        h = x[1] - x[0]
        return h / 3 * (pdf[0] + pdf[-1] + 4 * pdf[1:-1:2].sum() + 2 * pdf[2:-1:2].sum())

    lo, hi = 0.0, 20.0
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if upper_tail(mid) > 0.025 else (lo, mid)
    return (lo + hi) / 2


@pytest.mark.parametrize("df", [2, 5, 12])
def test_ci95_matches_numerical_reference_and_scipy(df):
    values = np.random.default_rng(df).normal(size=df + 1)
    n = df + 1
    expected = _t_quantile_975(df) * np.std(values, ddof=1) / math.sqrt(n)
    assert evaluate.ci95(values) == pytest.approx(expected, rel=1e-4)
    scipy_ref = stats.t.interval(0.95, df, loc=0.0, scale=stats.sem(values))[1]
    assert evaluate.ci95(values) == pytest.approx(scipy_ref, rel=1e-10)


def test_ci95_edge_cases():
    assert evaluate.ci95([0.3]) == 0.0
    assert evaluate.ci95([0.3, 0.3, 0.3]) == 0.0
    assert math.isnan(evaluate.ci95([0.3, math.nan]))
    with pytest.raises(ValueError, match="values"):
        evaluate.ci95([])


def test_aggregate_seeds():
    m0 = evaluate.forgetting_metrics(L3)
    L3b = np.asarray(L3) + np.array([[0, 0, 0], [0, 0, 0], [1.0, 0.5, 0]])  # more forgetting
    m1 = evaluate.forgetting_metrics(L3b)
    for m, L, t in ((m0, L3, 1.0), (m1, L3b, 3.0)):
        m["loss_matrix"] = np.asarray(L).tolist()
        m["flops"] = {"total": t, "eval": 0.5}
        m["tasks"] = ["a", "b", "c"]
    agg = evaluate.aggregate_seeds([m0, m1])
    assert m1["avg_forgetting"] == 1.5
    assert agg["avg_forgetting"] == (0.75 + 1.5) / 2
    assert agg["avg_forgetting_std"] == pytest.approx(np.std([0.75, 1.5], ddof=1))
    assert agg["max_forgetting"] == 1.5 and agg["max_forgetting_std"] == pytest.approx(math.sqrt(0.5))
    assert agg["fwt"] is None and "fwt_std" not in agg
    chex.assert_trees_all_close(np.asarray(agg["loss_matrix"]), (np.asarray(L3) + L3b) / 2)
    assert agg["forgetting_per_task"] == [1.5, 0.75]
    assert agg["flops"] == {"total": 2.0, "total_std": pytest.approx(math.sqrt(2)), "eval": 0.5, "eval_std": 0.0}
    assert agg["tasks"] == ["a", "b", "c"]
    assert agg["n_seeds"] == 2

    one = evaluate.aggregate_seeds([m0])
    assert one["avg_forgetting"] == 0.75 and one["avg_forgetting_std"] == 0.0
    assert one["loss_matrix"] == L3 and one["n_seeds"] == 1


def test_aggregate_seeds_matches_numpy_on_many_seeds():
    rng = np.random.default_rng(0)
    per_seed = [evaluate.forgetting_metrics(rng.uniform(0, 3, (4, 4))) for _ in range(5)]
    agg = evaluate.aggregate_seeds(per_seed)
    vals = [m["avg_forgetting"] for m in per_seed]
    assert agg["avg_forgetting"] == pytest.approx(np.mean(vals))
    assert agg["avg_forgetting_std"] == pytest.approx(np.std(vals, ddof=1))
    assert agg["forgetting_per_task_std"] == pytest.approx(
        np.std([m["forgetting_per_task"] for m in per_seed], axis=0, ddof=1).tolist()
    )


@pytest.mark.parametrize(
    "bad",
    [
        [],
        {"avg_forgetting": 1.0},
        [{"a": 1.0}, {"b": 1.0}],  # different keys
        [{"a": 1.0}, {"a": None}],  # number in one seed, None in the other
        [{"a": [1.0, 2.0]}, {"a": [1.0]}],  # shapes differ
        [{"a": "x"}, {"a": "y"}],  # strings differ
        [1.0, 2.0],
    ],
)
def test_aggregate_seeds_bad_input(bad):
    with pytest.raises(ValueError, match="per_seed"):
        evaluate.aggregate_seeds(bad)


@pytest.mark.parametrize("transform", [lambda x: x, jax.jit(lambda x: x * 1.0)], ids=["host", "jit"])
def test_forgetting_curve_on_device_arrays(transform):
    rows_NxT = transform(jnp.asarray([[1.0, 1.0, 2.0], [1.5, 1.25, 0.5]]))
    diag_P = [1.0, 0.75]
    f = evaluate.forgetting_curve(rows_NxT, diag_P)
    chex.assert_shape(f, (2, 2))
    np.testing.assert_array_equal(f, [[0.0, 0.25], [0.5, 0.5]])
    single = evaluate.forgetting_curve(np.asarray(rows_NxT)[1], diag_P)
    chex.assert_shape(single, (2,))
    np.testing.assert_array_equal(single, [0.5, 0.5])
    chex.assert_shape(evaluate.forgetting_curve(rows_NxT, []), (2, 0))
    # Columns after the P past tasks are not read (may be nan: not evaluated yet).
    np.testing.assert_array_equal(evaluate.forgetting_curve([2.0, np.nan], [1.5]), [0.5])


def test_forgetting_curve_agrees_with_metrics():
    L = np.asarray(L3)
    T = L.shape[0]
    f = evaluate.forgetting_curve(L[T - 1], np.diagonal(L)[: T - 1])
    assert f.tolist() == evaluate.forgetting_metrics(L)["forgetting_per_task"]


def test_forgetting_curve_bad_input():
    with pytest.raises(ValueError, match="diag"):
        evaluate.forgetting_curve([1.0, 2.0], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="diag"):
        evaluate.forgetting_curve([1.0, 2.0], [np.nan])
    with pytest.raises(ValueError, match="loss_rows"):
        evaluate.forgetting_curve(np.ones((2, 2, 2)), [1.0])
    with pytest.raises(ValueError, match="loss_rows"):
        evaluate.forgetting_curve([np.nan, 2.0], [1.0])
