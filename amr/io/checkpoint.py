"""Orbax checkpoints of one run: the whole TrainState plus the host-side progress.

A checkpoint holds `state` (params, optimizer, replay/bandit state, rng, step, task)
and `host` (JSON: ledger, loss-matrix rows and curves so far, the position in the
task stream and the data iterator). The host JSON also carries a SHA-256 digest of
the state and of itself: orbax stores arrays zstd-compressed without a checksum, so
a flipped bit would otherwise restore wrong values silently.

`restore_latest` takes the newest step that restores *and* matches its digest. An
unreadable step (truncated, garbage, missing files, wrong digest) is logged, moved
to `<directory>.damaged/` (so the step number is free again and the bytes are kept
for a post-mortem) and the next older one is tried; when none is readable the run
starts from scratch with a warning. Steps a killed process left half-written
(`<step>.orbax-checkpoint-tmp*`) are never listed by orbax and are overwritten.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from amr.io import faults

DIGEST_KEY = "_amr_sha256"  # in the host JSON: digest of (state, host without this key)


def state_digest(state: Any, host: dict[str, Any]) -> str:
    """SHA-256 over every state leaf (path, dtype, shape, bytes) and the canonical host JSON."""
    h = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_leaves_with_path(state):
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        x = np.ascontiguousarray(jax.device_get(leaf))
        h.update(f"{jax.tree_util.keystr(path)}|{x.dtype.str}|{x.shape}|".encode())
        h.update(x.tobytes())
    h.update(json.dumps(host, sort_keys=True).encode())
    return h.hexdigest()


class DamagedCheckpoint(ValueError):
    pass


class RunCheckpoints:
    def __init__(self, directory: str, max_to_keep: int = 2):
        self.directory = os.path.abspath(directory)
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
            item_names=("state", "host"),
        )

    def save(self, step: int, state: Any, host: dict[str, Any]) -> None:
        host = {k: v for k, v in host.items() if k != DIGEST_KEY}
        host[DIGEST_KEY] = state_digest(state, host)
        self.manager.save(
            step, args=ocp.args.Composite(state=ocp.args.StandardSave(state), host=ocp.args.JsonSave(host)), force=True
        )
        faults.fault_point("checkpoint_write")  # orbax writes asynchronously: a kill here leaves a partial step
        self.manager.wait_until_finished()

    def _restore(self, step: int, abstract: Any) -> tuple[Any, dict[str, Any]]:
        restored = self.manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), host=ocp.args.JsonRestore())
        )
        state, host = restored["state"], dict(restored["host"])
        expected = host.pop(DIGEST_KEY, None)
        if expected is None:
            logging.warning(
                "checkpoint step %d in %s has no digest (written by an older amr); not verified", step, self.directory
            )
        elif state_digest(state, host) != expected:
            raise DamagedCheckpoint("its contents do not match the SHA-256 digest written with it")
        return state, host

    def _quarantine(self, step: int) -> str:
        """Moves a damaged step out of orbax's sight, to `<directory>.damaged/<step>[.n]`."""
        src = os.path.join(self.directory, str(step))
        dst = os.path.join(self.directory + ".damaged", str(step))
        n = 0
        while os.path.exists(dst + (f".{n}" if n else "")):
            n += 1
        dst += f".{n}" if n else ""
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if os.path.exists(src):
            shutil.move(src, dst)
        return dst

    def restore_latest(self, template_state: Any) -> tuple[Any, dict[str, Any]] | None:
        """(state, host) from the newest readable checkpoint, or None when there is none."""
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template_state)
        steps = sorted(self.manager.all_steps(), reverse=True)
        damaged = []
        for step in steps:
            try:
                return self._restore(step, abstract)
            except Exception as err:  # pylint: disable=broad-except  # any damage: fall back to an older step
                moved = self._quarantine(step)
                damaged.append(step)
                logging.warning(
                    "checkpoint step %d in %s is unreadable (%s: %s); moved it to %s and trying an older one",
                    step,
                    self.directory,
                    type(err).__name__,
                    str(err)[:300],
                    moved,
                )
                self.manager.reload()
        if damaged:
            logging.warning(
                "no readable checkpoint left in %s (damaged steps %s, kept in %s.damaged): this run "
                "starts again from scratch",
                self.directory,
                damaged,
                self.directory,
            )
        return None

    def close(self) -> None:
        self.manager.close()
