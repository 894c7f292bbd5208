"""Online EWC: a diagonal empirical Fisher, accumulated over task ends, weighting a pull toward θ*.

At every task end, on `rows` rows of the finished task (per-example loss ℓ_i, one key per row):

    F_new = mean_i (∇θ ℓ_i(θ))²      (the diagonal empirical Fisher)
    F ← γ·F + F_new,   θ* ← θ
    loss term = λ/2 · Σ F·(θ − θ*)²

Kirkpatrick et al., "Overcoming catastrophic forgetting in neural networks", PNAS 2017,
arXiv 1612.00796 (EWC); Schwarz et al., "Progress & Compress", ICML 2018, arXiv 1805.06370 (online
EWC: one running Fisher decayed by γ, one anchor). Huszár, "Note on the quadratic penalties in elastic
weight consolidation", PNAS 2018, argues for the accumulated Fishers with the latest anchor (γ = 1).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from amr.methods.base import Method
from amr.methods.l2sp import squared_distance

FISHER_BLOCK = 16  # rows whose per-example gradients are computed at once (vmapped); blocks are scanned


def empirical_fisher(loss_fn, params, rows, keys):
    """mean over rows of the squared per-example gradients of `loss_fn(params, row, key) -> f32[]`.

    Rows are taken `FISHER_BLOCK` at a time (a scan over blocks of vmapped gradients), so memory holds
    one block's gradients, not every row's."""
    n = rows.shape[0]
    block = min(FISHER_BLOCK, n)
    blocks = -(-n // block)
    pad = blocks * block - n
    weight = jnp.concatenate([jnp.ones((n,), jnp.float32), jnp.zeros((pad,), jnp.float32)]) / n
    rows = jnp.concatenate([rows, jnp.repeat(rows[-1:], pad, axis=0)]) if pad else rows
    keys = jnp.concatenate([keys, jnp.repeat(keys[-1:], pad, axis=0)]) if pad else keys
    per_row_grad = jax.vmap(jax.grad(loss_fn), in_axes=(None, 0, 0))

    def add_block(total, xs):
        x, k, w = xs
        g = per_row_grad(params, x, k)
        return jax.tree.map(lambda t, gi: t + jnp.tensordot(w, jnp.square(gi), axes=1), total, g), None

    shaped = lambda a: a.reshape((blocks, block) + a.shape[1:])  # noqa: E731
    zero = jax.tree.map(jnp.zeros_like, params)
    fisher, _ = jax.lax.scan(add_block, zero, (shaped(rows), shaped(keys), shaped(weight)))
    return fisher


def ewc(model, strength: float, decay: float, rows: int) -> Method:
    """`strength` λ, `decay` γ, `rows` the rows of each finished task the Fisher is estimated on."""

    def row_loss(params, row, key):
        return model.loss(params, row[None], key)[0]

    def init(params):
        return {"fisher": jax.tree.map(jnp.zeros_like, params), "anchor": jax.tree.map(jnp.copy, params)}

    def loss_term(state, params, batch_aux):
        del batch_aux
        return (0.5 * strength) * squared_distance(params, state["anchor"], state["fisher"])

    def task_end(state, params, key, task_rows):
        keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(task_rows.shape[0]))
        new = empirical_fisher(row_loss, params, task_rows, keys)
        fisher = jax.tree.map(lambda f, g: decay * f + g, state["fisher"], new)
        return {"fisher": fisher, "anchor": params}, params

    return Method("ewc", init, loss_term=loss_term, task_end=task_end, task_end_rows=rows)
