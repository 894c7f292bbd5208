"""Measured FLOPs of the methods' work, for the plan (zero-cost trimming) and the ledger.

`task_end_flops` is what the ledger charges at a task end (XLA's cost analysis of the jitted hooks on
global shapes, scans unrolled: `amr.compute.measure.loop_flops`); the plan adds it to the boundary
selection it pays for. `step_flops` is the plan's prediction of what the methods add to one train
step (their loss terms' gradients, gradient edits, `post_update` and `after_step`, measured as the step with
them minus the step without; `optimizer_flops` what their transforms and optimizer wrappers add); the ledger charges the chunk as compiled, which includes that work in its measured
selection share.
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


def step_flops(methods: tuple[Method, ...], states, params, rows, keys, num_new: int, model) -> float:
    """What the methods add to one train step of `model` on `rows` (with their `keys`, the first `num_new`
    new): the step's objective with the methods (`hooks.step_objective`: their loss terms, the forward's
    outputs when one needs them) and its gradient, `edit_grads`, `post_update` (on updates shaped like
    `params`) and `after_step`, minus the plain objective and its gradient. Args may be abstract. (What
    `wrap_optimizer` and `transform` add to the optimizer is `optimizer_flops`.)"""
    if not methods:
        return 0.0

    def objective_grads(methods, states, params, rows, keys):
        objective = functools.partial(hooks.step_objective, model, methods, states)
        grads, (_, layer_outputs, _) = jax.grad(objective, has_aux=True)(params, rows, keys, num_new)
        grads = hooks.edit_grads(methods, states, grads, layer_outputs)
        return hooks.post_update(methods, states, grads), hooks.after_step(methods, states, params, grads)

    abstract = measure.abstract
    args = (abstract(params), abstract(rows), abstract(keys))
    with_methods = measure.loop_flops(functools.partial(objective_grads, methods), abstract(states), *args)
    plain = measure.loop_flops(functools.partial(objective_grads, ()), {}, *args)
    return max(with_methods - plain, 0.0)


def optimizer_flops(plain, with_methods) -> float:
    """What the methods' `transform`s and `wrap_optimizer`s add to one optimizer step: the measured train
    step of one row with `with_methods` minus the same with the `plain` optimizer (`CostModel`s)."""
    return max(with_methods.train(1) - plain.train(1), 0.0)
