"""HFT (Half Fine-Tuning): each task trains a seeded random half of each block's matrices; the rest is frozen.

In every trunk or decoder block, per group: of the attention's four matrices (Q, K, V, the output
projection; Q, K, V are slices of the fused `qkv` kernel) two are frozen, of the MLP's two (`fc1`,
`fc2`) one; a matrix's bias goes with it. Embeddings, LayerNorms and the head outside blocks always
train. The choice is a function of (seed, task): unit u of group g in block b gets the score

    score = mix(mix(mix(8b + 4g + j) ^ task) ^ seed)      (uint32; mix = murmur3's 32-bit finaliser)

and the half of each group with the lowest scores is frozen (`frozen_units`). The mask of task 0 is
set by `init`, the next task's at every task end. Frozen parameters get zero updates: the 0/1 mask
selects the optimizer's updates (`post_update`: zero where 0), so neither Adam's moments nor weight decay move
them; the moments keep tracking their gradients (unlike PyTorch's requires_grad=False, which skips
them), and gradient clipping sees every gradient.

Hui et al., "HFT: Half Fine-Tuning for Large Language Models", arXiv 2404.18466 (ACL 2025).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from amr.methods import layers
from amr.methods.base import Method

ATTENTION, MLP = 0, 1
UNITS = {ATTENTION: ("q", "k", "v", "out"), MLP: ("fc1", "fc2")}  # per block; half of each is frozen


def mix(h):
    """murmur3's 32-bit finaliser (works on NumPy and jax uint32 alike)."""
    h = h ^ (h >> 16)
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> 13)
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> 16)


def unit_scores(seed: int, task, block: int, group: int):
    """uint32[units of `group`]: the scores of one group's units in task `task` (a traced int is fine)."""
    units = jnp.arange(len(UNITS[group]), dtype=jnp.uint32) + np.uint32(8 * block + 4 * group)
    task = jnp.asarray(task).astype(jnp.uint32)
    return mix(mix(mix(units) ^ task) ^ np.uint32(seed))


def frozen_units(seed: int, task, block: int, group: int):
    """f32[units]: 1 for the trainable half, 0 for the frozen half (the lowest scores)."""
    scores = unit_scores(seed, task, block, group)
    rank = jnp.argsort(jnp.argsort(scores, stable=True), stable=True)
    return (rank >= len(UNITS[group]) // 2).astype(jnp.float32)


def _blocks(params) -> dict:
    """(top, block name) -> block ordinal, in tree order (trunk blocks, then the MAE's decoder blocks)."""
    found = {}
    for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]:
        p = layers.names(path)
        if len(p) > 2 and p[1].startswith("block") and p[2] in ("attn", "mlp"):
            found.setdefault((p[0], p[1]), len(found))
    return found


def update_mask(params, seed: int, task):
    """A tree shaped like `params` of 0/1 masks broadcastable to each leaf (1 = trains in task `task`)."""
    blocks = _blocks(params)
    cache = {}

    def group(b, g):
        if (b, g) not in cache:
            cache[(b, g)] = frozen_units(seed, task, b, g)
        return cache[(b, g)]

    def leaf_mask(path, x):
        p = layers.names(path)
        if len(p) < 4 or (p[0], p[1]) not in blocks or p[2] not in ("attn", "mlp"):
            return jnp.ones((), jnp.float32)  # outside blocks, or a block's LayerNorm: always trains
        b = blocks[(p[0], p[1])]
        if p[2] == "mlp":
            return group(b, MLP)[UNITS[MLP].index(p[3])]
        attn = group(b, ATTENTION)
        if p[3] == "out":
            return attn[3]
        qkv = attn[:3]  # the fused kernel [D, 3, heads, head_dim], bias [3, heads, head_dim]
        axis = 1 if p[4] == "kernel" else 0
        return qkv.reshape((1,) * axis + (3,) + (1,) * (x.ndim - axis - 1))

    return jax.tree_util.tree_map_with_path(leaf_mask, params)


def hft(seed: int) -> Method:
    """`seed`: the masks' seed (the mask of task t is a function of (seed, t) only)."""

    def init(params):
        task = jnp.zeros((), jnp.int32)
        return {"task": task, "mask": update_mask(params, seed, task)}

    def task_end(state, params, key, rows):
        del key, rows
        task = state["task"] + 1
        return {"task": task, "mask": update_mask(params, seed, task)}, params

    def post_update(state, updates):
        return jax.tree.map(lambda u, m: jnp.where(m > 0, u, jnp.zeros_like(u)), updates, state["mask"])

    return Method("hft", init, task_end=task_end, post_update=post_update)
