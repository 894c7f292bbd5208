"""L2-SP: a pull of strength λ toward the parameters at the last task end.

    loss term = active · λ/2 · ||θ − θ*||²,   θ* ← θ and active ← 1 at every task end

No pull during the first task (active = 0). Li, Grandvalet & Davoine, "Explicit Inductive Bias for
Transfer Learning with Convolutional Networks", ICML 2018, arXiv 1802.01483 (there θ* is the
pre-trained starting point; in continual pre-training it is the last task end's model).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from amr.methods.base import Method


def squared_distance(params, anchor, weights=None):
    """Σ w·(θ − θ*)² over every leaf (w = 1 without `weights`)."""
    if weights is None:
        sq = jax.tree.map(lambda p, a: jnp.sum(jnp.square(p - a)), params, anchor)
    else:
        sq = jax.tree.map(lambda p, a, w: jnp.sum(w * jnp.square(p - a)), params, anchor, weights)
    return sum(jax.tree.leaves(sq), jnp.zeros((), jnp.float32))


def l2sp(strength: float) -> Method:
    """`strength` is λ."""

    def init(params):
        return {"anchor": jax.tree.map(jnp.copy, params), "active": jnp.zeros((), jnp.float32)}

    def loss_term(state, params, batch_aux):
        del batch_aux
        return state["active"] * (0.5 * strength) * squared_distance(params, state["anchor"])

    def task_end(state, params, key, rows):
        del state, key, rows
        return {"anchor": params, "active": jnp.ones((), jnp.float32)}, params

    return Method("l2sp", init, loss_term=loss_term, task_end=task_end)
