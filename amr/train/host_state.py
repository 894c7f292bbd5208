"""`HostState`: the host-side state of one run, checkpointed as JSON next to its TrainState."""

from __future__ import annotations

import dataclasses
from typing import Any

from amr.compute import ledger as budget


@dataclasses.dataclass
class HostState:
    """Where a run is and what it has measured so far (everything that is not a device array).

    A checkpoint stores `to_json()` (the JSON keys are the field names; optional fields only
    when set) and a resumed run continues from `from_json(...)`.
    """

    ledger: budget.Ledger  # FLOPs charged so far, per category and per task
    init_losses: list[float]  # held-out loss of every task before any training
    task: int = 0  # the task being (or next to be) trained; len(tasks) when the run is done
    chunk: int = 0  # the next chunk of `task` to train
    iter_state: dict[str, Any] | None = None  # `task`'s stream position at `chunk` (None: a task's start)
    loss_rows: list[list[float]] = dataclasses.field(default_factory=list)  # row t: held-out losses after task t
    source_rows: list[list[float]] = dataclasses.field(default_factory=list)  # row t: per-source losses (mixtures)
    curves: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # {task, step, losses}: held-out evals
    arm_history: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # {step, probs}: bandit policies
    last_new_loss: float | None = None  # mean new-row loss of the last recorded chunk ("train" arm reference)
    # Host placement, mid-task checkpoints only: replay ids drawn for chunks not yet trained
    # (`HostReplay.pending_json()`); handed back to `HostReplay.start_task` on resume.
    host_replay_pending: dict[str, Any] | None = None
    replay_rows: list[int] = dataclasses.field(default_factory=list)  # per task: replay rows trained (recorded chunks)
    trained_rows: list[int] = dataclasses.field(default_factory=list)  # per task: rows trained (new + replay)

    def count_rows(self, task: int, replay: int, rows: int) -> None:
        """Adds a chunk's replay rows and rows trained to `task`'s counts (the realised replay share)."""
        for counts in (self.replay_rows, self.trained_rows):
            counts.extend([0] * (task + 1 - len(counts)))
        self.replay_rows[task] += replay
        self.trained_rows[task] += rows

    def to_json(self) -> dict[str, Any]:
        """The JSON a checkpoint stores."""
        out = {
            "task": self.task,
            "chunk": self.chunk,
            "iter_state": self.iter_state,
            "loss_rows": self.loss_rows,
            "curves": self.curves,
            "arm_history": self.arm_history,
            "init_losses": self.init_losses,
            "ledger": self.ledger.to_json(),
        }
        if self.source_rows:
            out["source_rows"] = self.source_rows
        if self.last_new_loss is not None:
            out["last_new_loss"] = self.last_new_loss
        if self.host_replay_pending is not None:
            out["host_replay_pending"] = self.host_replay_pending
        if self.trained_rows:
            out["replay_rows"], out["trained_rows"] = self.replay_rows, self.trained_rows
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> HostState:
        """The inverse of `to_json` (a checkpoint's host JSON)."""
        return cls(
            ledger=budget.Ledger.from_json(d["ledger"]),
            init_losses=list(d["init_losses"]),
            task=int(d["task"]),
            chunk=int(d["chunk"]),
            iter_state=d["iter_state"],
            loss_rows=list(d["loss_rows"]),
            source_rows=list(d.get("source_rows", [])),
            curves=list(d["curves"]),
            arm_history=list(d["arm_history"]),
            last_new_loss=d.get("last_new_loss"),
            host_replay_pending=d.get("host_replay_pending"),
            replay_rows=[int(x) for x in d.get("replay_rows", [])],
            trained_rows=[int(x) for x in d.get("trained_rows", [])],
        )
