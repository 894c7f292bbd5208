"""The configured methods together: how the chunk, the optimizer and evaluation call their hooks.

Every function takes the tuple of `Method`s and the dict of their states (name -> state). With no
methods each is the identity or absent, so a run without methods computes exactly what it did before
methods existed (the chunk only calls these when `methods` is non-empty).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from amr.methods.base import Method


def init_states(methods: tuple[Method, ...], params) -> dict:
    """{name: state}; {} without methods (a pytree with no leaves: checkpoints keep their structure)."""
    return {m.name: m.init(params) for m in methods}


def loss_terms(methods: tuple[Method, ...], states: dict, params, batch_aux: dict):
    """Sum of the methods' loss terms (f32[]), 0 when none has one."""
    terms = [m.loss_term(states[m.name], params, batch_aux) for m in methods if m.loss_term is not None]
    return sum(terms, jnp.zeros((), jnp.float32))


def after_step(methods: tuple[Method, ...], states: dict, params) -> dict:
    """Every method's state after an optimizer step that produced `params`."""
    return {m.name: m.after_step(states[m.name], params) if m.after_step else states[m.name] for m in methods}


def eval_params(methods: tuple[Method, ...], states: dict, params):
    """The parameters held-out evaluation uses (the registry allows at most one method to change them)."""
    for m in methods:
        if m.eval_params is not None:
            return m.eval_params(states[m.name], params)
    return params


def with_transforms(methods: tuple[Method, ...], tx: optax.GradientTransformation) -> optax.GradientTransformation:
    """`tx` preceded by the methods' gradient transformations; `tx` itself when none has one."""
    transforms = [m.transform for m in methods if m.transform is not None]
    return optax.chain(*transforms, tx) if transforms else tx


def task_end(methods: tuple[Method, ...], states: dict, params, key, rows):
    """(states, params) after every method's task-end hook, in the configured order.

    `rows` holds `max(task_end_rows)` rows; each method reads its first `task_end_rows`."""
    states = dict(states)
    for i, m in enumerate(methods):
        if m.task_end is not None:
            key_i, mine = jax.random.fold_in(key, i), rows[: m.task_end_rows]
            states[m.name], params = m.task_end(states[m.name], params, key_i, mine)
    return states, params


def has_task_end(methods: tuple[Method, ...]) -> bool:
    return any(m.task_end is not None for m in methods)


def task_end_rows(methods: tuple[Method, ...]) -> int:
    return max((m.task_end_rows for m in methods), default=0)
