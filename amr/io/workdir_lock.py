"""One workdir, one run: an exclusive lock file holding the owner's host and pid.

A second run on the same workdir is refused while the owner lives; a lock whose
process is gone (same host, pid not running) is stale and taken over with a warning.
"""

from __future__ import annotations

import json
import logging
import os
import socket


class WorkdirLocked(RuntimeError):
    pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class WorkdirLock:
    def __init__(self, workdir: str):
        self.path = os.path.join(workdir, ".amr.lock")
        self._held = False

    def acquire(self) -> WorkdirLock:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        me = {"host": socket.gethostname(), "pid": os.getpid()}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._owner()
                if not owner or (owner.get("host") == me["host"] and not _alive(int(owner.get("pid", -1)))):
                    logging.warning(
                        "workdir lock %s is stale (pid %s is gone); taking it over", self.path, owner.get("pid")
                    )
                    os.remove(self.path)
                    continue
                raise WorkdirLocked(
                    f"workdir {os.path.dirname(self.path)!r} is in use by pid {owner.get('pid')} on "
                    f"{owner.get('host')!r} (lock {self.path}); wait for it, or delete the lock if that run is dead"
                ) from None
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self._held = True
            return self
        raise WorkdirLocked(f"could not take the lock {self.path}")

    def _owner(self) -> dict:
        try:
            with open(self.path, encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}  # unreadable (half-written by a killed run)

    def release(self) -> None:
        if self._held:
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass
            self._held = False

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
