"""Orbax checkpoints of one run: the whole TrainState plus the host-side progress.

A checkpoint holds `state` (params, optimizer, replay/bandit state, rng, step, task)
and `host` (JSON: ledger, loss-matrix rows and curves so far, the position in the
task stream and the data iterator). `restore_latest` falls back to an older step
when the newest one is unreadable.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import jax
import orbax.checkpoint as ocp


class RunCheckpoints:
    def __init__(self, directory: str, max_to_keep: int = 2):
        self.directory = os.path.abspath(directory)
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
            item_names=("state", "host"),
        )

    def save(self, step: int, state: Any, host: dict[str, Any]) -> None:
        self.manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), host=ocp.args.JsonSave(host)), force=True)
        self.manager.wait_until_finished()

    def restore_latest(self, template_state: Any) -> tuple[Any, dict[str, Any]] | None:
        """(state, host) from the newest readable checkpoint, or None when there is none."""
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template_state)
        for step in sorted(self.manager.all_steps(), reverse=True):
            try:
                restored = self.manager.restore(step, args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract), host=ocp.args.JsonRestore()))
                return restored["state"], dict(restored["host"])
            except Exception as err:  # a damaged checkpoint: fall back to an older one
                logging.warning("checkpoint step %d in %s is unreadable (%s); trying an older one",
                                step, self.directory, err)
        return None

    def close(self) -> None:
        self.manager.close()
