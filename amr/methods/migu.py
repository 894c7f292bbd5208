"""MIGU: update only the output units of each linear layer whose outputs are largest in magnitude.

Every step, for every linear layer (flax `nn.Dense` / `nn.DenseGeneral`) with output units u, from the
step's own forward pass (`ModelOutputs.layer_outputs`, averaged over the global batch):

    m_u = mean |output_u| over rows and positions,   m̂ = m / Σ_u m_u      (L1-normalised)
    keep_u = 1 for the ceil(f · U) units with the largest m̂, else 0        (f = `migu_fraction`)
    grad kernel[..., u] ← keep_u · grad kernel[..., u],   grad bias[u] ← keep_u · grad bias[u]

on the averaged gradients before the optimizer (so Adam's moments of a masked unit decay, as with a zero
gradient). Masked leaves: every linear layer's kernel and bias (byte_lm: each block's attention qkv and
out, MLP fc1 and fc2, the output head; vit_mae: the patch embedding, encoder and decoder blocks' qkv,
out, fc1, fc2, decoder_embed, decoder_pred); a fused qkv layer ranks its 3·heads·head_dim units together.
Not masked: embeddings, positions, layer norms, cls and mask tokens. No mask during the first task
(active = 0 until the first task end), as in the authors' code.

Du et al., "Unlocking Continual Learning Abilities in Language Models", EMNLP 2024 Findings, arXiv
2406.17245; the authors' code (github.com/wenyudu/MIGU, `compute_importance_mask`) keeps the units at or
above the T-quantile of the magnitudes, with T = 0.7 in their benchmark scripts: the top 30%, f = 0.3.
It masks the linear layers' weights (its T5 layers have no biases); masking a unit's bias too is ours.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import traverse_util

from amr.methods.base import Method


def top_units_mask(magnitudes, fraction: float):
    """f32 mask shaped like `magnitudes` [*units]: 1 for the ceil(fraction · U) largest L1-normalised ones."""
    flat = magnitudes.reshape(-1)
    normalised = flat / jnp.maximum(jnp.sum(flat), 1e-30)
    k = max(1, math.ceil(fraction * flat.size - 1e-9))
    _, top = jax.lax.top_k(normalised, k)
    return jnp.zeros_like(flat).at[top].set(1.0).reshape(magnitudes.shape)


def mask_linear_grads(grads, layer_outputs: dict, fraction: float):
    """`grads` with each recorded linear layer's kernel and bias gradients masked by its units' top fraction."""
    flat = traverse_util.flatten_dict(grads)
    for layer, magnitudes in layer_outputs.items():
        keep = top_units_mask(magnitudes, fraction)
        for leaf in ("kernel", "bias"):
            path = tuple(layer) + (leaf,)
            if path in flat:
                g = flat[path]  # kernel: [*inputs, *units]; bias: [*units]
                flat[path] = g * keep.reshape((1,) * (g.ndim - keep.ndim) + keep.shape).astype(g.dtype)
    return traverse_util.unflatten_dict(flat)


def migu(fraction: float) -> Method:
    """`fraction` f: the share of each linear layer's output units whose weights are updated."""

    def init(params):
        del params
        return {"active": jnp.zeros((), jnp.float32)}

    def edit_grads(state, grads, layer_outputs):
        masked = mask_linear_grads(grads, layer_outputs, fraction)
        return jax.tree.map(lambda m, g: jnp.where(state["active"] > 0, m, g), masked, grads)

    def task_end(state, params, key, rows):
        del state, key, rows
        return {"active": jnp.ones((), jnp.float32)}, params

    return Method("migu", init, task_end=task_end, edit_grads=edit_grads, needs_outputs=True)
