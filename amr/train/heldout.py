"""Forward-only passes over whole arrays: held-out losses, embeddings, reference losses.

Each pass pads the rows to whole batches (one compiled shape per batch size), runs
jitted batches with rows split over the mesh, and returns host numpy. MAE masks are
drawn from a fixed key per row, so held-out losses are deterministic.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from amr.compute import measure
from amr.train.chunk import AXIS, per_example_losses
from amr.train.distributed import put_global
from amr.train.free_embeddings import per_example_train_embeddings

EVAL_KEY = 1234


def _padded_batches(x: np.ndarray, batch: int):
    n = x.shape[0]
    padded = -(-n // batch) * batch
    if padded != n:
        x = np.concatenate([x, np.repeat(x[-1:], padded - n, axis=0)])
    return x.reshape((padded // batch, batch) + x.shape[1:]), n


class ForwardPass:
    """A jitted per-row function applied batch by batch; `flops(params)` is one batch's measured cost."""

    def __init__(self, fn: Callable, mesh, batch: int, example: jax.ShapeDtypeStruct | None = None):
        n_dev = mesh.shape[AXIS]
        self.batch = -(-batch // n_dev) * n_dev
        self._raw, self._example, self._flops = fn, example, None
        self.sharding = NamedSharding(mesh, P(AXIS))
        # Replicated outputs: every process can read them (a sharded output is not fully addressable
        # when the mesh spans several processes).
        self._fn = jax.jit(
            fn,
            in_shardings=(NamedSharding(mesh, P()), self.sharding, self.sharding),
            out_shardings=NamedSharding(mesh, P()),
        )

    def __call__(self, params, x: np.ndarray) -> tuple[np.ndarray, int]:
        """(outputs for every row, number of batches run)."""
        batches, n = _padded_batches(np.asarray(x), self.batch)
        outs = []
        for i, b in enumerate(batches):
            idx = np.arange(i * self.batch, (i + 1) * self.batch, dtype=np.int32)
            outs.append(self._fn(params, put_global(b, self.sharding), put_global(idx, self.sharding)))
        return np.concatenate([np.asarray(o) for o in outs])[:n], len(batches)

    def flops(self, params) -> float:
        """FLOPs of one batch: XLA's cost analysis of this pass's function on the global batch (one
        device, so the number does not depend on the mesh), loops unrolled; analysed once."""
        if self._flops is None:
            rows = jax.ShapeDtypeStruct((self.batch,) + tuple(self._example.shape), self._example.dtype)
            idx = jax.ShapeDtypeStruct((self.batch,), np.int32)
            self._flops = measure.loop_flops(self._raw, measure.abstract(params), rows, idx)
        return self._flops


def _example(model) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(tuple(model.example_shape), model.example_dtype)


def loss_pass(model, mesh, batch: int) -> ForwardPass:
    def fn(params, rows, idx):
        keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(EVAL_KEY), i))(idx)
        return per_example_losses(model, params, rows, keys)

    return ForwardPass(fn, mesh, batch, _example(model))


def embed_pass(model, mesh, batch: int) -> ForwardPass:
    def fn(params, rows, idx):
        del idx
        return model.embed(params, rows)

    return ForwardPass(fn, mesh, batch, _example(model))


def train_embed_pass(model, mesh, batch: int) -> ForwardPass:
    """The free embeddings' paid fallback: `model.train_embed` of rows never trained on, with the
    held-out passes' fixed per-row keys (vit_mae: fixed masks), so they land in the same space."""

    def fn(params, rows, idx):
        keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(EVAL_KEY), i))(idx)
        return per_example_train_embeddings(model, params, rows, keys)

    return ForwardPass(fn, mesh, batch, _example(model))
