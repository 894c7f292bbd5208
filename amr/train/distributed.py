"""Multi-process runs: joining the JAX distributed runtime, and who writes the files.

Every process runs the same program on the same global batches (built from the same
seed); `jax.device_put` keeps each process's addressable slice, and every array the
host reads back (metrics, held-out losses, embeddings) is replicated. Only process 0
writes results, plots, metrics and TensorBoard; orbax checkpoints are collective.

A process that cannot reach its coordinator would abort inside XLA (SIGABRT, no
Python error) when `initialization_timeout` expires, so `initialize` first waits for
the coordinator's port itself and raises `CoordinatorUnreachable` naming the address.
"""

from __future__ import annotations

import logging
import socket
import time

import jax
import numpy as np


class CoordinatorUnreachable(ConnectionError):
    pass


def _split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"coordinator address {address!r}: expected host:port, e.g. localhost:12345 or 10.0.0.2:8476")
    return host.strip("[]"), int(port)


def wait_for_coordinator(address: str, timeout_s: float, poll_s: float = 0.25) -> float:
    """Waits until a TCP connection to `address` succeeds; returns the seconds waited.

    Raises CoordinatorUnreachable after `timeout_s` seconds."""
    host, port = _split_address(address)
    start = time.monotonic()
    last_err: Exception | None = None
    while True:
        try:
            with socket.create_connection((host, port), timeout=max(poll_s, 1.0)):
                return time.monotonic() - start
        except OSError as err:
            last_err = err
        if time.monotonic() - start >= timeout_s:
            raise CoordinatorUnreachable(
                f"coordinator {address!r} could not be reached within {timeout_s:g} s ({last_err}); start process 0 "
                "first (it hosts the coordinator), check --coordinator is process 0's host:port and that the port "
                "is open between the hosts"
            )
        time.sleep(poll_s)


def initialize(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    timeout_s: int = 300,
) -> None:
    """`jax.distributed.initialize` with a bounded, explained wait.

    With no arguments the cluster is auto-detected (Cloud TPU pod slices, SLURM, ...).
    Otherwise all three of coordinator ('host:port' of process 0), num_processes and
    process_id are required."""
    given = {"coordinator": coordinator, "num_processes": num_processes, "process_id": process_id}
    if all(v is None for v in given.values()):
        logging.warning("jax.distributed: auto-detecting the cluster (waiting up to %d s)", timeout_s)
        jax.distributed.initialize(initialization_timeout=int(timeout_s))
        return
    missing = [k for k, v in given.items() if v is None]
    if missing:
        raise ValueError(
            f"multi-process launch: {', '.join(missing)} missing; give coordinator, num_processes and "
            "process_id together, or none of them to auto-detect the cluster"
        )
    if num_processes < 1 or not 0 <= process_id < num_processes:
        raise ValueError(f"process_id={process_id} must lie in [0, num_processes={num_processes})")
    _split_address(coordinator)
    remaining = float(timeout_s)
    if process_id != 0:  # process 0 hosts the coordinator service; the others must reach it
        remaining -= wait_for_coordinator(coordinator, timeout_s)
    logging.warning(
        "process %d of %d: joining coordinator %s (waiting up to %d s for all processes)",
        process_id,
        num_processes,
        coordinator,
        max(int(remaining), 1),
    )
    jax.distributed.initialize(
        coordinator_address=coordinator,
        num_processes=num_processes,
        process_id=process_id,
        initialization_timeout=max(int(remaining), 1),
    )


def is_primary() -> bool:
    """True on the one process that writes results, plots and logs."""
    return jax.process_index() == 0


def put_global(tree, sharding: jax.sharding.Sharding):
    """`jax.device_put(tree, sharding)` of host data that is the same on every process.

    With one process this is exactly `jax.device_put`. With several, each process fills
    only its addressable shards (`jax.make_array_from_callback`): no cross-process
    equality check (jax's check is an extra all-gather per call and fails on NaN, which
    e.g. unset reference losses hold). Leaves that already span several processes are
    passed through `jax.device_put`."""
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)
    return jax.tree.map(lambda x: _put_leaf(x, sharding), tree)


def _put_leaf(x, sharding):
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        return jax.device_put(x, sharding)
    if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        data = _put_leaf(jax.random.key_data(x), sharding)
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])
