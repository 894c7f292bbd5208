"""`python -m tests.support.lossy_resume <experiments.main flags>`: a resume that loses state, on purpose.

The same run as `python -m experiments.main`, except that a resumed run puts the TrainState fields named
in `AMR_TEST_DROP_STATE` (comma separated, e.g. "methods,share") back to their initial values right after
the checkpoint is restored: what a checkpoint that did not hold them would give. The negative control of
tests/test_kill_resume.py: such a resume must not reproduce the uninterrupted run.
"""

import os

from amr.io import checkpoint
from amr.runner.cli import run

DROP = tuple(filter(None, os.environ.get("AMR_TEST_DROP_STATE", "").split(",")))
_restore_latest = checkpoint.RunCheckpoints.restore_latest


def _lossy_restore_latest(self, template_state):
    restored = _restore_latest(self, template_state)
    if restored is None:
        return None
    state, host = restored
    return state.replace(**{field: getattr(template_state, field) for field in DROP}), host


checkpoint.RunCheckpoints.restore_latest = _lossy_restore_latest

if __name__ == "__main__":
    run()
