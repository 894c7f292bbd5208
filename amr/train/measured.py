"""Measured FLOPs of a strategy's compiled chunks, for the ledger (`amr.compute.measure`).

Each chunk variant a run calls (a strategy's first-task chunk, its replay chunk, `joint`'s
chunk of task t) is built again by `make_chunk_fn` with the same model, optimizer, policy and
batch split, on a one-device mesh with global shapes: the ledger is then the same on one
device or many (on n devices the compiled program is per device; its replicated parts, the
optimizer update and the bandit, would otherwise count n times). It is analysed at S = 1 and
S = 2 with loops unrolled; the chunk of S steps costs `outside + S * body`. The same chunk at
the run's S, compiled as it runs (loops rolled), can be analysed too (`check`, used by the tests:
one more compile): `outside + body` should match its number, `ChunkCost.rolled`. With
host placement the chunk's draws run in `make_presample_fn`, analysed the same way and added.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from amr.compute import measure
from amr.compute.costs import CostModel
from amr.replay import policies as replay_lib
from amr.train import chunk as step_lib


def one_device_mesh() -> jax.sharding.Mesh:
    return jax.sharding.Mesh(np.asarray(jax.local_devices()[:1]), (step_lib.AXIS,))


def _local_memory(model, spec: step_lib.ChunkSpec, candidates: int) -> step_lib.LocalMemory:
    width, ex = spec.replay_batch * candidates, tuple(model.example_shape)

    def sds(shape, dtype=jnp.int32):
        return jax.ShapeDtypeStruct(shape, dtype)

    S, P = spec.steps, spec.probe_samples
    return step_lib.LocalMemory(
        sds((S, width)), sds((S, width)), sds((S, width) + ex, model.example_dtype), sds((P,)), sds((P,)),
        sds((P,) + ex, model.example_dtype),
    )  # fmt: skip


def _chunk_and_args(ctx, tx, policy, spec: step_lib.ChunkSpec, state, on_host: bool, methods: tuple = (), share=None):
    """(function, abstract args) of the chunk of `spec` (with host placement: its presample added)."""
    model, mesh = ctx.model, one_device_mesh()
    chunk = step_lib.make_chunk_fn(model, tx, policy, mesh, spec, host_memory=on_host, methods=methods, share=share)

    def new_rows(width):
        return jax.ShapeDtypeStruct((spec.steps, width) + tuple(model.example_shape), model.example_dtype)

    new, ids = new_rows(spec.new_batch), jax.ShapeDtypeStruct((spec.steps, spec.new_batch), jnp.int32)
    if spec.flex:  # (always, flex) pairs, see amr.train.flex_batch
        new, ids = (new, new_rows(spec.flex)), (ids, jax.ShapeDtypeStruct((spec.steps, spec.flex), jnp.int32))
    memory = _local_memory(model, spec, policy.candidates) if on_host else measure.abstract(ctx.memory)
    if not on_host:
        return chunk, (state, new, ids, memory)
    presample = step_lib.make_presample_fn(policy, spec)

    def both(state, new, ids, memory):
        return presample(state.replay, state.rng, state.step), chunk(state, new, ids, memory)

    return both, (state, new, ids, memory)


def chunk_cost(
    ctx,
    tx,
    policy: replay_lib.ReplayPolicy,
    spec: step_lib.ChunkSpec,
    state,
    costs: CostModel,
    on_host: bool,
    check: bool = False,
    methods: tuple = (),
    share=None,
    nominal_replay: int | None = None,
) -> measure.ChunkCost:
    """The measured cost of the chunk of `spec`; `state` is the abstract TrainState it takes.

    `check`: also analyse the chunk at the run's S as it runs (one more compile; `ChunkCost.rolled`).
    `methods`: the `amr.methods` the chunk runs (their per-step work counts as selection).
    `share`, `nominal_replay` (a chunk with flex slots): its share rule, and the replay rows per step
    by which the ledger splits training FLOPs into new and replay (the target share; the total does
    not depend on the rows a chunk actually replays)."""
    rows = spec.new_batch + spec.replay_batch
    replay = spec.replay_batch if nominal_replay is None else nominal_replay
    return measure.measure_chunk(
        lambda s: _chunk_and_args(ctx, tx, policy, spec._replace(steps=s), state, on_host, methods, share),
        spec.steps,
        costs.train(rows),
        rows - replay,
        replay,
        spec.probe_samples,
        check=_chunk_and_args(ctx, tx, policy, spec, state, on_host, methods, share) if check else None,
    )
