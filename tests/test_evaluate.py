"""Tests for amr/analysis/forgetting.py: forgetting metrics of one run (across-seed statistics: test_stats.py)."""

import math

import chex
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

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
    assert m["new_task_loss_excl_first"] == (0.75 + 0.5) / 2 == 0.625  # tasks 2..T: task 1's 1.0 left out
    assert m["bwt"] == -0.75
    # Forward transfer: init[1] - L[0][1] = 1.0, init[2] - L[1][2] = 0.5.
    assert m["fwt"] == 0.75
    assert all(type(v) is float for k, v in m.items() if k != "forgetting_per_task")


def test_new_task_loss_ignores_task_one_which_no_strategy_can_change():
    """Two runs that differ only in task 1's own loss (L[0][0]) have the same new-task loss over tasks 2..T;
    the whole-diagonal mean (the negative control) moves with it."""
    a = [[1.0, 3.0, 4.0, 4.0], [1.5, 0.75, 3.5, 4.0], [2.0, 1.25, 0.5, 4.0], [2.5, 1.5, 1.0, 0.25]]
    b = [row[:] for row in a]
    b[0][0] = 0.5
    ma, mb = evaluate.forgetting_metrics(a), evaluate.forgetting_metrics(b)
    assert ma["new_task_loss_excl_first"] == mb["new_task_loss_excl_first"] == (0.75 + 0.5 + 0.25) / 3 == 0.5
    assert ma["new_task_loss"] != mb["new_task_loss"]
    # a change on the diagonal of tasks 2..T moves it by exactly that change / (T - 1)
    b[2][2] += 0.75
    assert evaluate.forgetting_metrics(b)["new_task_loss_excl_first"] == 0.5 + 0.75 / 3
    assert evaluate.NEW_TASK_LOSS == "new_task_loss_excl_first"


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
        "new_task_loss_excl_first": None,  # there is no task 2
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
        "new_task_loss_excl_first": sum(L[j][j] for j in range(1, T)) / (T - 1),
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
