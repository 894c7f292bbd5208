"""Measured FLOPs of the methods' work, for the plan (zero-cost trimming) and the ledger.

`task_end_flops` is what the ledger charges at a task end (XLA's cost analysis of the jitted hooks on
global shapes, scans unrolled: `amr.compute.measure.loop_flops`); the plan adds it to the boundary
selection it pays for. `step_flops` is the plan's prediction of what the methods add to one train
step (their loss terms' gradients and `after_step`); the ledger charges the chunk as compiled, which
includes that work in its measured selection share.
"""

from __future__ import annotations

import functools

import jax

from amr.compute import measure
from amr.methods import hooks
from amr.methods.base import Method


def task_end_flops(methods: tuple[Method, ...], states, params, rows) -> float:
    """One call of every method's task-end hook (args may be abstract; `rows` as the hooks get them)."""
    if not hooks.has_task_end(methods):
        return 0.0
    key = jax.eval_shape(lambda: jax.random.key(0))
    fn = functools.partial(hooks.task_end, methods)
    return measure.loop_flops(fn, measure.abstract(states), measure.abstract(params), key, measure.abstract(rows))


def step_flops(methods: tuple[Method, ...], states, params, rows, keys, num_new: int) -> float:
    """What the methods add to one train step on `rows` (with their `keys`, the first `num_new` new):
    their loss terms' value and gradient, and `after_step`. Args may be abstract."""
    if not methods:
        return 0.0

    def extra(states, params, rows, keys):
        batch_aux = {"rows": rows, "keys": keys, "num_new": num_new}
        grads = jax.grad(lambda p: hooks.loss_terms(methods, states, p, batch_aux))(params)
        return grads, hooks.after_step(methods, states, params)

    abstract = measure.abstract
    return measure.loop_flops(extra, abstract(states), abstract(params), abstract(rows), abstract(keys))
