"""What one forward pass produces beyond the loss, in a form every model shares (`ModelSpec.outputs`).

    out = spec.outputs(params, batch, key)   # ModelOutputs, one forward pass
    out.loss            float32[B]             the per-example loss, as `spec.loss` computes it
    out.out             float32[B, ...]        the model's outputs: next-byte logits [B, L-1, 256] (byte_lm),
                                               reconstructions of every patch [B, N, P*P*C] (vit_mae)
    out.hidden          float32[B, T, width]   the last layer's hidden states (after the final layer norm)
    out.layer_outputs   {module path: float32[B, *features]}
                                               for every linear layer (flax `nn.Dense` / `nn.DenseGeneral`)
                                               the mean |output| of each output unit over the row's positions
    out.embedding       float32[B, width]      the pass's pooled representation, `spec.loss_and_embed`'s
                                               (free embeddings): the mean of `hidden` over the L-1 trained
                                               positions (byte_lm), over the visible patch tokens (vit_mae)

Each model has one such forward (`forward(params, batch, key, record_layers)` in its module): `outputs` is
it with `record_layers=True`, `loss_and_embed` is its (loss, embedding) without the recording, so the loss,
the free embedding and the methods' outputs of a step come from a single pass.

`layer_outputs` comes from a flax method interceptor (`apply_recording_linear_outputs`), so any flax model
gets it without changing its modules; its keys are the layers' paths in the params tree (a layer's kernel
is `params[path + ("kernel",)]`). Unused fields cost nothing under jit (dead code is eliminated).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import flax.linen as nn
import jax.numpy as jnp
from flax import traverse_util

COLLECTION = "linear_output_magnitudes"
_LINEAR = (nn.Dense, nn.DenseGeneral)


class ModelOutputs(NamedTuple):
    loss: Any  # float32[B]
    out: Any  # float32[B, ...]: logits or reconstructions
    hidden: Any  # float32[B, T, width]
    layer_outputs: dict  # {module path tuple: float32[B, *features]} ({} when not recorded)
    embedding: Any  # float32[B, width]: the pooled representation (replay.embeddings="free")


def feature_ndim(module: nn.Module) -> int:
    """How many trailing axes of a linear layer's output are its output units (its `features`)."""
    return len(module.features) if isinstance(module.features, (tuple, list)) else 1


def _record_linear_outputs(next_fun, args, kwargs, context):
    y = next_fun(*args, **kwargs)
    module = context.module
    if context.method_name == "__call__" and isinstance(module, _LINEAR):
        positions = tuple(range(1, y.ndim - feature_ndim(module)))  # all but the row and the unit axes
        module.sow(COLLECTION, "mean_abs", jnp.mean(jnp.abs(y.astype(jnp.float32)), axis=positions))
    return y


def apply_recording_linear_outputs(module: nn.Module, params, *args, method=None, record: bool = True):
    """(`module.apply({"params": params}, *args, method=method)`, {layer path: float32[B, *features]}).

    A layer called several times in one pass gets the mean of its calls' magnitudes. With `record=False`
    it is the plain `apply` (no interceptor) and {}."""
    if not record:
        return module.apply({"params": params}, *args, method=method), {}
    with nn.intercept_methods(_record_linear_outputs):
        out, recorded = module.apply({"params": params}, *args, method=method, mutable=[COLLECTION])
    flat = traverse_util.flatten_dict(recorded.get(COLLECTION, {}))
    layers = {path[:-1]: sum(calls) / len(calls) for path, calls in flat.items()}
    return out, layers
