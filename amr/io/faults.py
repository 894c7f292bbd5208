"""Deterministic fault points for crash tests: `fault_point("chunk")` can SIGKILL the process.

    AMR_FAULT_KILL="chunk:3"  python -m experiments.main ...   # killed at the 3rd dispatched chunk

`AMR_FAULT_KILL="<point>:<n>"` makes the n-th call (1-based) of `fault_point("<point>")`
in this process kill it with SIGKILL: no cleanup, no atexit, no flush, exactly like
an out-of-memory kill or a preempted machine. Several points may be given, comma
separated ("chunk:5,task_end:1"). Unset (the normal case), a call is one dict lookup.

Points placed in the code:
    chunk             amr/train/loop.py, right after a chunk is dispatched (its device work still running)
    eval              amr/train/loop.py, held-out evaluation of all tasks (curves, task-end rows)
    arms              amr/train/loop.py, after a finished task became arms, before its checkpoint
    task_end          amr/train/loop.py, between tasks: after the task-end checkpoint
    checkpoint_write  amr/io/checkpoint.py, after orbax started writing a step, before it finished
    run_json          amr/runner/experiment.py, right after a finished run's runs/<strategy>_seed<k>.json
"""

from __future__ import annotations

import os
import signal

ENV = "AMR_FAULT_KILL"
POINTS = ("chunk", "eval", "arms", "task_end", "checkpoint_write", "run_json")


def parse(spec: str) -> dict[str, int]:
    """ "point:n,point:n" -> {point: n}; a bad spec raises ValueError naming it."""
    out: dict[str, int] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        point, _, n = item.partition(":")
        if point not in POINTS or not n.isdigit() or int(n) < 1:
            raise ValueError(f"{ENV}={spec!r}: expected '<point>:<n>' with point in {POINTS} and n >= 1, got {item!r}")
        out[point] = int(n)
    return out


_KILL_AT = parse(os.environ.get(ENV, ""))
_hits: dict[str, int] = {}


def fault_point(name: str) -> None:
    """SIGKILLs this process on the configured hit of `name`; a no-op otherwise."""
    if not _KILL_AT or name not in _KILL_AT:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] == _KILL_AT[name]:
        os.kill(os.getpid(), signal.SIGKILL)
