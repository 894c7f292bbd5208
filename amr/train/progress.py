"""Progress of a run's tasks: a tqdm bar on a terminal, one plain line per task otherwise.

Logs written to a file would otherwise fill with tqdm's carriage-return frames. When the
stream (stderr by default) is not a tty, `TaskProgress.close` prints one line:

    amr seed 0 task 2/4 (headers): 64 steps in 3.1 s, last loss 2.7183
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

import tqdm


class TaskProgress:
    """Progress of one task's training steps.

    `enabled=False` prints nothing. On a tty (`stream.isatty()`) a transient tqdm bar; otherwise
    nothing while the task trains and one line when it closes (steps trained in this process,
    seconds, and the last recorded loss).
    """

    def __init__(
        self,
        enabled: bool,
        strategy: str,
        seed: int,
        task: int,
        num_tasks: int,
        task_name: str,
        total_steps: int,
        initial_steps: int = 0,
        stream: TextIO | None = None,
    ):
        self.stream = sys.stderr if stream is None else stream
        self.enabled = enabled
        self.label = f"{strategy} seed {seed} task {task + 1}/{num_tasks} ({task_name})"
        self.steps = 0  # trained by this process (a resumed task starts at `initial_steps`)
        self.last_loss = float("nan")
        self.start = time.perf_counter()
        on_tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.bar = (
            tqdm.tqdm(total=total_steps, initial=initial_steps, leave=False, desc=self.label, file=self.stream)
            if on_tty
            else None
        )

    def update(self, steps: int) -> None:
        """`steps` more steps were dispatched."""
        self.steps += steps
        if self.bar is not None:
            self.bar.update(steps)

    def record_loss(self, loss: float) -> None:
        """The mean loss of the latest chunk whose metrics reached the host."""
        self.last_loss = loss

    def close(self) -> None:
        """Ends the bar (tty) or prints the task's line (not a tty)."""
        if self.bar is not None:
            self.bar.close()
        elif self.enabled:
            seconds = time.perf_counter() - self.start
            print(
                f"{self.label}: {self.steps} steps in {seconds:.1f} s, last loss {self.last_loss:.4f}",
                file=self.stream,
                flush=True,
            )
