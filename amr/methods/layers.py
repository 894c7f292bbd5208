"""Which layer, counted from the input, each parameter belongs to, and which parameters are the head.

Both models (amr/models/byte_lm.py, amr/models/vit_mae.py) are an input embedding, a trunk of
transformer blocks and an output part; with `depth` trunk blocks there are L = depth + 2 layers:

  layer 1          the input embedding: `tok_embed`, `pos_embed` (byte LM); `patch_embed`, `cls_token` (MAE)
  layer i + 2      trunk block i: `transformer/block{i}` (byte LM), `encoder/block{i}` (MAE)
  layer L          the rest: the trunk's final LayerNorm and the head: the byte LM's output projection
                   `head`; the MAE's whole decoder (`decoder_embed`, `mask_token`, `decoder`,
                   `decoder_pred`), its reconstruction head (dropped after pre-training)

A top-level name outside these lists is an error, so a new model has to decide where its parameters go.
"""

from __future__ import annotations

import re

import jax

EMBEDDING = ("tok_embed", "pos_embed", "patch_embed", "cls_token")  # layer 1
TRUNK = ("transformer", "encoder")  # their `block{i}` are layers i + 2, the rest (ln_final) layer L
HEAD = ("head", "decoder_embed", "mask_token", "decoder", "decoder_pred")  # layer L; the slow learner's head

_BLOCK = re.compile(r"block(\d+)$")


def names(path) -> tuple[str, ...]:
    """A tree path's keys as strings: ('transformer', 'block0', 'attn', 'qkv', 'kernel')."""
    return tuple(str(getattr(k, "key", getattr(k, "name", k))) for k in path)


def _paths(params):
    return [names(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]


def _check_top(top: str, path) -> None:
    if top not in EMBEDDING + TRUNK + HEAD:
        raise ValueError(f"amr.methods.layers: parameter {'/'.join(path)} is in no known layer; add {top!r} to a list")


def trunk_depth(params) -> int:
    """How many trunk blocks the parameters hold."""
    blocks = {p[1] for p in _paths(params) if p[0] in TRUNK and len(p) > 1 and _BLOCK.match(p[1])}
    return len(blocks)


def num_layers(params) -> int:
    """L = trunk depth + 2."""
    return trunk_depth(params) + 2


def layer_of(path, num: int) -> int:
    """The layer (1..num) of the parameter at `path` (a tuple of names)."""
    _check_top(path[0], path)
    if path[0] in EMBEDDING:
        return 1
    if path[0] in TRUNK and len(path) > 1 and (m := _BLOCK.match(path[1])):
        return int(m.group(1)) + 2
    return num


def layer_indices(params):
    """A tree shaped like `params` holding each leaf's layer (Python ints, 1..L)."""
    num = num_layers(params)
    return jax.tree_util.tree_map_with_path(lambda p, _: layer_of(names(p), num), params)


def is_head(path) -> bool:
    _check_top(path[0], path)
    return path[0] in HEAD


def head_labels(params):
    """A tree shaped like `params` of 'head' / 'backbone' (`optax.multi_transform` labels)."""
    return jax.tree_util.tree_map_with_path(lambda p, _: "head" if is_head(names(p)) else "backbone", params)
