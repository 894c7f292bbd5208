"""Save a state with `RunCheckpoints` and restore it into a template, as a run does between tasks."""

from amr.io.checkpoint import RunCheckpoints


def round_trip(directory: str, state, template, host=None):
    """(restored state, restored host dict) after saving `state` at step 1 and reopening the directory."""
    ckpt = RunCheckpoints(directory)
    ckpt.save(1, state, dict(host or {"task": 0}))
    ckpt.close()
    ckpt = RunCheckpoints(directory)
    restored = ckpt.restore_latest(template)
    ckpt.close()
    return restored
