"""One workdir, one run: live owners refuse a second run, dead ones are taken over."""

import json
import os
import subprocess
import sys

import pytest

from amr.io.workdir_lock import WorkdirLock, WorkdirLocked


def test_second_run_refused_while_owner_lives(tmp_path):
    with WorkdirLock(str(tmp_path)):
        with pytest.raises(WorkdirLocked, match="in use by pid"):
            WorkdirLock(str(tmp_path)).acquire()
    with WorkdirLock(str(tmp_path)):  # released on exit: free again
        pass
    assert not os.path.exists(tmp_path / ".amr.lock")


def test_stale_lock_of_dead_process_is_taken_over(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    import socket

    (tmp_path / ".amr.lock").write_text(json.dumps({"host": socket.gethostname(), "pid": pid}))
    with WorkdirLock(str(tmp_path)) as lock:
        assert json.loads((tmp_path / ".amr.lock").read_text())["pid"] == os.getpid()
        assert lock._held


def test_half_written_lock_is_stale(tmp_path):
    (tmp_path / ".amr.lock").write_text('{"host": ')
    with WorkdirLock(str(tmp_path)):
        pass
