"""The ledger remembers a program's measured FLOPs per process: the same program is analysed once,
any other program (shape, operation, constant) is analysed on its own."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amr.compute import ledger as budget
from amr.compute import measure
from tests.support.call_count import count_calls


@pytest.fixture
def analyses(monkeypatch):
    """Counts the XLA analyses actually run; starts from an empty memo."""
    monkeypatch.setattr(budget, "_FLOPS_BY_PROGRAM", {})
    return count_calls(monkeypatch, budget, "_analysed_flops")


def _chunk(w_scale):
    """A stand-in for a chunk rebuilt per seed: a new closure each call, the same program."""

    def fn(x, w):
        return jax.lax.scan(lambda c, _: (jnp.tanh(c @ (w * w_scale)), None), x, None, length=3)[0]

    return fn


X, W = jax.ShapeDtypeStruct((4, 8), jnp.float32), jax.ShapeDtypeStruct((8, 8), jnp.float32)


def test_the_same_program_built_again_is_analysed_once(analyses):
    first = measure.loop_flops(_chunk(2.0), X, W)
    again = measure.loop_flops(_chunk(2.0), X, W)
    assert first == again and first >= 3 * 2 * 4 * 8 * 8
    assert len(analyses) == 1


def test_compiled_flops_reads_the_memo_for_the_same_program(analyses):
    fresh = budget.compiled_flops(_chunk(2.0), X, W)
    assert budget.compiled_flops(_chunk(2.0), X, W) == fresh
    assert len(analyses) == 1


@pytest.mark.parametrize(
    "other",
    [
        lambda: measure.loop_flops(_chunk(2.0), jax.ShapeDtypeStruct((6, 8), jnp.float32), W),  # a shape
        lambda: measure.loop_flops(lambda x, w: jax.lax.scan(lambda c, _: (c @ w, None), x, None, length=3)[0], X, W),
        lambda: measure.loop_flops(_chunk(3.0), X, W),  # a literal in the program
    ],
    ids=["shape", "operation", "literal"],
)
def test_any_other_program_is_analysed_on_its_own(analyses, other):
    """Negative control of the memo: a different program is never read from it."""
    measure.loop_flops(_chunk(2.0), X, W)
    other()
    assert len(analyses) == 2


def test_constants_are_part_of_the_key():
    def closing_over(values):
        c = jnp.asarray(values, jnp.float32)
        return jax.make_jaxpr(lambda x: x @ c)(jnp.zeros((2, 2), jnp.float32))

    a, b = closing_over(np.eye(2)), closing_over(np.ones((2, 2)))
    assert budget.program_key(a) == budget.program_key(closing_over(np.eye(2)))
    assert a.consts and str(a.jaxpr) == str(b.jaxpr)  # the same printed program: only the bytes differ
    assert budget.program_key(a) != budget.program_key(b)
    assert budget.program_key(a) != budget.program_key(a, tag="unrolled")
