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

from amr.train.chunk import AXIS, per_example_losses
from amr.train.distributed import put_global

EVAL_KEY = 1234


def _padded_batches(x: np.ndarray, batch: int):
    n = x.shape[0]
    padded = -(-n // batch) * batch
    if padded != n:
        x = np.concatenate([x, np.repeat(x[-1:], padded - n, axis=0)])
    return x.reshape((padded // batch, batch) + x.shape[1:]), n


class ForwardPass:
    """A jitted per-row function applied batch by batch (its FLOPs: `amr.compute.costs.CostModel`)."""

    def __init__(self, fn: Callable, mesh, batch: int):
        n_dev = mesh.shape[AXIS]
        self.batch = -(-batch // n_dev) * n_dev
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


def loss_pass(model, mesh, batch: int) -> ForwardPass:
    def fn(params, rows, idx):
        keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(EVAL_KEY), i))(idx)
        return per_example_losses(model, params, rows, keys)

    return ForwardPass(fn, mesh, batch)


def embed_pass(model, mesh, batch: int) -> ForwardPass:
    def fn(params, rows, idx):
        del idx
        return model.embed(params, rows)

    return ForwardPass(fn, mesh, batch)
