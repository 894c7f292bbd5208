"""LiNeS: at every task end, scale each layer's update since the previous task end by its depth.

    λ(ℓ) = α + β (ℓ − 1)/(L − 1),   ℓ = 1..L from the input (layers: `amr.methods.layers`)
    θ ← θ_prev + λ(ℓ) (θ − θ_prev) leaf by leaf,   then θ_prev ← θ   (θ_prev = θ_0 at the start)

Shallow layers stay closest to the weights of the previous task end; the output layer keeps α + β of
its update. Wang et al., "LiNeS: Post-training layer scaling prevents forgetting and enhances model
merging", ICLR 2025, arXiv 2410.17146 (there θ_prev is the pre-trained model and the edit is applied
once after fine-tuning; in continual pre-training it is applied at every task end but the last).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from amr.methods import layers
from amr.methods.base import Method


def layer_scales(params, alpha: float, beta: float):
    """A tree shaped like `params` of each leaf's λ(ℓ) (Python floats)."""
    num = layers.num_layers(params)
    return jax.tree.map(lambda ell: alpha + beta * (ell - 1) / max(num - 1, 1), layers.layer_indices(params))


def scale_updates(params, anchor, scales):
    """θ_prev + λ (θ − θ_prev) leaf by leaf."""
    return jax.tree.map(lambda p, a, s: a + s * (p - a), params, anchor, scales)


def lines(alpha: float, beta: float) -> Method:
    """`alpha` α (the first layer's scale), `beta` β (the last layer's scale minus α)."""

    def init(params):
        return {"anchor": jax.tree.map(jnp.copy, params)}

    def task_end(state, params, key, rows):
        del key, rows
        scaled = scale_updates(params, state["anchor"], layer_scales(params, alpha, beta))
        return {"anchor": scaled}, scaled

    return Method("lines", init, task_end=task_end)
