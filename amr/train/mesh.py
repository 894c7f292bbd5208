"""The data-parallel layout of a chunk: the 1-D device mesh (axis "data"), putting a chunk's inputs on
it (new rows split over the axis, everything else replicated), and stacking per-seed states for
`seed_axis` chunks (`amr.train.chunk.make_chunk_fn`)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from amr.train import distributed

AXIS = "data"
SEEDS_AXIS = "seeds"  # a `seed_axis` chunk's seeds split over devices (`make_seed_mesh`)


def stack_seeds(trees):
    """Per-seed pytrees (e.g. TrainStates) -> one pytree with a leading seed axis (`seed_axis` chunks)."""
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def unstack_seeds(tree, num_seeds: int) -> list:
    """The inverse of `stack_seeds`."""
    return [jax.tree.map(lambda x, i=i: x[i], tree) for i in range(num_seeds)]


def shard_new_batches(mesh, new_SxB: np.ndarray) -> jax.Array:
    """One host->device transfer per chunk, rows split over the "data" axis."""
    return distributed.put_global(new_SxB, NamedSharding(mesh, P(None, AXIS)))


def seeds_axis(mesh) -> str | None:
    """The mesh's "seeds" axis (a `make_seed_mesh` mesh), else None: where a `seed_axis` chunk splits its seeds."""
    return SEEDS_AXIS if SEEDS_AXIS in mesh.axis_names else None


def shard_seed_batches(mesh, new_NxSxB: np.ndarray) -> jax.Array:
    """`shard_new_batches` for a `seed_axis` chunk: [seeds, S, B, ...], rows split over the "data" axis
    (and seeds over the "seeds" axis of a `make_seed_mesh` mesh)."""
    return distributed.put_global(new_NxSxB, NamedSharding(mesh, P(seeds_axis(mesh), None, AXIS)))


def shard_seeds(mesh, stacked):
    """Stacked per-seed states (`stack_seeds`) on the mesh, seeds split over its "seeds" axis if any
    (replicated otherwise, as `replicate`); every leaf gets its own buffer (safe to donate)."""
    return _put_copy(stacked, NamedSharding(mesh, P(seeds_axis(mesh))))


def replicate(mesh, tree):
    """A replicated copy of `tree` on the mesh; every leaf gets its own buffer (safe to donate)."""
    return _put_copy(tree, NamedSharding(mesh, P()))


def _put_copy(tree, sharding):
    # `device_put(..., may_alias=False)` then donating crashes jaxlib 0.10 on CPU; a jitted copy is safe.
    return _copier(sharding)(distributed.put_global(tree, sharding))


@functools.cache
def _copier(sharding):
    return jax.jit(lambda t: jax.tree.map(jnp.copy, t), out_shardings=sharding)


def make_seed_mesh(seed_groups: int, num_devices: int | None = None) -> jax.sharding.Mesh:
    """A 2-D mesh ("seeds", "data") for `seed_axis` chunks: the seeds split over `seed_groups` groups of
    devices, each group data-parallel over its own devices. On XLA:CPU a fake device per core
    (`--xla_force_host_platform_device_count`) lets one program use every core, which one device's
    small kernels do not."""
    devices = _visible(num_devices, "num_devices")
    n = len(devices)
    if seed_groups < 1 or n % seed_groups:
        raise ValueError(f"seed_groups={seed_groups} does not divide the {n} devices")
    return jax.sharding.Mesh(np.asarray(devices).reshape(seed_groups, n // seed_groups), (SEEDS_AXIS, AXIS))


def make_mesh(num_devices: int | None = None) -> jax.sharding.Mesh:
    return jax.sharding.Mesh(np.asarray(_visible(num_devices, "mesh.num_devices")), (AXIS,))


def _visible(num_devices: int | None, key: str) -> list:
    """The first `num_devices` visible devices (all when None or 0); ValueError naming `key` when too few."""
    devices = jax.devices()
    n = num_devices or len(devices)
    if n > len(devices):
        raise ValueError(f"{key}={n} but only {len(devices)} devices are visible")
    return devices[:n]
