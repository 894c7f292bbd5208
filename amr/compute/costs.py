"""FLOPs of single passes, from XLA's cost analysis of single-device functions on global shapes.

`CostModel` is what the plan predicts with (one train step, a forward, a gradient, an
embedding batch); the ledger charges measured costs (`amr.compute.measure`), of which the
plain train step `CostModel.train` is the training share. Numbers are computed on global
shapes without sharding, so they are the same on one device or many. Each function is
compiled once per row count and cached.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax

from amr.compute import ledger as budget
from amr.compute import measure
from amr.replay import clustering
from amr.train.chunk import per_example_losses


class CostModel:
    def __init__(self, model, tx: optax.GradientTransformation, params, opt_state):
        self.model, self.tx = model, tx
        self._params = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), params)
        self._opt = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), opt_state)

    def _rows(self, n: int):
        rows = jax.ShapeDtypeStruct((n,) + tuple(self.model.example_shape), self.model.example_dtype)
        keys = jax.eval_shape(lambda: jax.random.split(jax.random.key(0), n))
        return rows, keys

    @functools.cache
    def forward(self, n: int) -> float:
        """Per-example losses of n rows."""
        if n <= 0:
            return 0.0
        fn = lambda p, x, k: per_example_losses(self.model, p, x, k)  # noqa: E731
        return budget.compiled_flops(fn, self._params, *self._rows(n))

    @functools.cache
    def grad(self, n: int) -> float:
        """Mean loss and gradient over n rows (forward + backward)."""
        if n <= 0:
            return 0.0
        fn = jax.grad(lambda p, x, k: per_example_losses(self.model, p, x, k).mean())
        return budget.compiled_flops(fn, self._params, *self._rows(n))

    @functools.cache
    def train(self, n: int) -> float:
        """One optimizer step on n rows: forward, backward and the update."""
        if n <= 0:
            return 0.0

        def step(p, o, x, k):
            g = jax.grad(lambda q: per_example_losses(self.model, q, x, k).mean())(p)
            updates, o = self.tx.update(g, o, p)
            return optax.apply_updates(p, updates), o

        return budget.compiled_flops(step, self._params, self._opt, *self._rows(n))

    @functools.cache
    def embed(self, n: int) -> float:
        if n <= 0:
            return 0.0
        rows, _ = self._rows(n)
        return budget.compiled_flops(lambda p, x: self.model.embed(p, x), self._params, rows)

    @functools.cache
    def train_embed(self, n: int) -> float:
        """Free embeddings' fallback: `model.train_embed` of n rows (the encoder / trunk only)."""
        if n <= 0:
            return 0.0
        fn = lambda p, x, k: jax.vmap(lambda r, kk: self.model.train_embed(p, r[None], kk)[0])(x, k)  # noqa: E731
        return budget.compiled_flops(fn, self._params, *self._rows(n))


def kmeans_flops(num_rows: int, dim: int, k: int, iters: int) -> float:
    """The plan's estimate: distance computations of Lloyd iterations plus k-means++ seeding
    (3 flops per coordinate). The ledger charges `kmeans_cost`."""
    return 3.0 * num_rows * dim * k * (iters + 1)


@functools.cache
def kmeans_cost(num_rows: int, dim: int, k: int, iters: int) -> float:
    """Measured FLOPs of `amr.replay.clustering.kmeans` (Lloyd) on [num_rows, dim] with k centres.

    The compiled k-means with its scans unrolled (k-means++ seeding, chunked assignment) counts the
    Lloyd while loop's body once; the other `iters - 1` iterations are added from the body's own
    analysis. Lloyd stops early once the assignment is stable, so this is an upper bound: every
    allowed iteration is charged."""
    key = jax.eval_shape(lambda: jax.random.key(0))
    x = jax.ShapeDtypeStruct((num_rows, dim), jnp.float32)
    whole = measure.loop_flops(lambda kk, xx: clustering._kmeans_jit(kk, xx, k, iters, None), key, x)
    carry = (
        jax.ShapeDtypeStruct((), jnp.int32),
        jax.ShapeDtypeStruct((k, dim), jnp.float32),
        jax.ShapeDtypeStruct((num_rows,), jnp.int32),
        jax.ShapeDtypeStruct((), jnp.bool_),
    )
    body = measure.loop_flops(clustering._lloyd_step, x, carry)
    return whole + (iters - 1) * body
