"""The compute ledger: XLA flop counts, per-task accounting, zero-cost trimming."""

import jax
import jax.numpy as jnp
import pytest

from amr.compute import ledger as budget


def test_compiled_flops_of_a_matmul():
    a = jax.ShapeDtypeStruct((64, 32), jnp.float32)
    b = jax.ShapeDtypeStruct((32, 16), jnp.float32)
    assert budget.compiled_flops(jnp.matmul, a, b) == 2 * 64 * 32 * 16


def test_ledger_per_task_and_json_round_trip():
    ledger = budget.Ledger()
    ledger.charge("train_new", 10.0, samples=4, calls=3)
    ledger.start_task(1)
    ledger.charge("selection", 5.0)
    ledger.charge("eval", 100.0)  # outside the training budget
    assert ledger.budget_flops(0) == 30.0 and ledger.budget_flops(1) == 5.0
    assert ledger.summary()["total"] == 35.0 and ledger.samples["train_new"] == 12
    again = budget.Ledger.from_json(ledger.to_json())
    assert again.to_json() == ledger.to_json()
    with pytest.raises(ValueError, match="category"):
        ledger.charge("lunch", 1.0)


def test_zero_cost_tolerance():
    assert budget.check_zero_cost(100.4, 100.0) and not budget.check_zero_cost(101.0, 100.0)
