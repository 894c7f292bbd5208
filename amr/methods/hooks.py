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


def after_step(methods: tuple[Method, ...], states: dict, params, grads) -> dict:
    """Every method's state after an optimizer step that produced `params` from `grads` (as the optimizer
    got them: averaged over devices, after `edit_grads`)."""

    def one(m):
        if m.after_step is None:
            return states[m.name]
        return (
            m.after_step(states[m.name], params, grads) if m.after_step_grads else m.after_step(states[m.name], params)
        )

    return {m.name: one(m) for m in methods}


def eval_params(methods: tuple[Method, ...], states: dict, params):
    """The parameters held-out evaluation uses (the registry allows at most one method to change them)."""
    for m in methods:
        if m.eval_params is not None:
            return m.eval_params(states[m.name], params)
    return params


def with_transforms(methods: tuple[Method, ...], tx: optax.GradientTransformation) -> optax.GradientTransformation:
    """`tx` preceded by the methods' gradient transformations, then wrapped by their `wrap_optimizer`s in
    the configured order; `tx` itself when no method has either."""
    transforms = [m.transform for m in methods if m.transform is not None]
    tx = optax.chain(*transforms, tx) if transforms else tx
    for m in methods:
        if m.wrap_optimizer is not None:
            tx = m.wrap_optimizer(tx)
    return tx


def post_update(methods: tuple[Method, ...], states: dict, updates):
    """The optimizer's `updates` after every method's `post_update`, in the configured order."""
    for m in methods:
        if m.post_update is not None:
            updates = m.post_update(states[m.name], updates)
    return updates


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


def needs_outputs(methods: tuple[Method, ...]) -> bool:
    return any(m.needs_outputs for m in methods)


def per_example(fn, params, rows, keys):
    """`fn(params, batch, key)` row by row (one key per row, as the chunk's per-example losses), its
    outputs' leaves with a leading row axis."""
    return jax.vmap(lambda x, k: jax.tree.map(lambda a: a[0], fn(params, x[None], k)))(rows, keys)


def per_example_outputs(model, params, rows, keys):
    """`model.outputs` row by row: `ModelOutputs` whose leaves have a leading row axis."""
    return per_example(model.outputs, params, rows, keys)


def step_objective(
    model, methods: tuple[Method, ...], states: dict, params, rows, keys, num_new: int, embed: bool = False
):
    """(objective, (per-example losses f32[B], layer_outputs, embeddings)) of one train step on this
    device's rows, from one forward pass.

    The objective is the mean per-example loss plus the methods' loss terms (none without methods: then
    it is exactly the plain step's). The forward is
      - `model.outputs` when a method `needs_outputs`: its loss, outputs and hidden states reach the loss
        terms through `batch_aux["outputs"]`, and `layer_outputs` are the linear layers' output
        magnitudes averaged over the rows (no gradient);
      - else `model.loss_and_embed` when `embed` (free embeddings), else `model.loss`; `layer_outputs` {}.
    `embeddings` are the pass's pooled representations f32[B, width] when `embed` (the same as
    `loss_and_embed`'s, whichever forward ran), else None."""
    if needs_outputs(methods):
        outputs = per_example_outputs(model, params, rows, keys)
        losses, embeddings = outputs.loss, (outputs.embedding if embed else None)
        layer_outputs = jax.tree.map(lambda a: jnp.mean(jax.lax.stop_gradient(a), axis=0), outputs.layer_outputs)
    else:
        outputs, layer_outputs = None, {}
        if embed:
            losses, embeddings = per_example(model.loss_and_embed, params, rows, keys)
        else:
            losses, embeddings = per_example(model.loss, params, rows, keys), None
    objective = losses.mean()
    if any(m.loss_term is not None for m in methods):
        batch_aux = {"rows": rows, "keys": keys, "num_new": num_new, "outputs": outputs}
        objective = objective + loss_terms(methods, states, params, batch_aux)
    return objective, (losses, layer_outputs, embeddings)


def edit_grads(methods: tuple[Method, ...], states: dict, grads, layer_outputs: dict):
    """The step's gradients after every method's `edit_grads`, in the configured order."""
    for m in methods:
        if m.edit_grads is not None:
            grads = m.edit_grads(states[m.name], grads, layer_outputs)
    return grads
