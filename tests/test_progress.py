"""Progress output: a tqdm bar on a terminal, one plain line per task in a log file."""

import io
import re

from amr.train.progress import TaskProgress


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def _one_task(stream, enabled=True):
    progress = TaskProgress(enabled, "amr", 1, 2, 4, "headers", total_steps=64, initial_steps=16, stream=stream)
    for loss in (3.0, 2.5, 2.25):
        progress.update(16)
        progress.record_loss(loss)
    progress.close()
    return stream.getvalue()


def test_not_a_tty_prints_one_plain_line_per_task():
    out = _one_task(io.StringIO())
    assert "\r" not in out  # no carriage-return frames in a log file
    lines = out.splitlines()
    assert len(lines) == 1, out
    assert re.fullmatch(r"amr seed 1 task 3/4 \(headers\): 48 steps in \d+\.\d s, last loss 2\.2500", lines[0]), lines[
        0
    ]


def test_terminal_draws_a_bar():
    out = _one_task(_Terminal())
    assert "\r" in out and "amr seed 1 task 3/4 (headers)" in out  # tqdm frames
    assert "last loss" not in out  # no plain line on top of the bar


def test_disabled_prints_nothing():
    assert _one_task(io.StringIO(), enabled=False) == ""
    assert _one_task(_Terminal(), enabled=False) == ""
