"""`FolderLock`: one worker per embedded (SQLite) system database.

Two worker processes on one SQLite system database would both be DBOS executor ``local``; a
restart of either recovers the other's in-flight workflows, and steps run twice. The worker
that starts first takes an exclusive ``flock`` on ``<engine.sqlite>.lock`` and holds it while
it runs; a second one is refused at start with a message naming the holder. The kernel drops
the lock when its process dies (even by SIGKILL), so a restarted worker always gets it, and
with it the previous holder's unfinished workflows.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from pathlib import Path

from tenantops.errors import ProvisioningError

__all__ = ["FolderLock"]


class FolderLock:
    """An exclusive, process-lifetime lock beside a SQLite database file."""

    def __init__(self, database: Path) -> None:
        self.path = database.with_name(f"{database.name}.lock")
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock or raise `ProvisioningError` saying who holds it and what to do."""
        if self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe_holder(fd)
            os.close(fd)
            raise ProvisioningError(
                f"another worker ({holder}) is already running on the data folder "
                f"{self.path.parent}: its embedded SQLite system database serves one worker "
                "at a time, and a second one would run the same steps again. Stop that worker "
                "first, or, to run several workers, give them a shared PostgreSQL "
                "(catalog.url and engine.system_database_url) and an executor ID each"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "since": time.time()}).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing the descriptor releases the flock


def _describe_holder(fd: int) -> str:
    try:
        holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        holder = {}
    if not isinstance(holder, dict) or "pid" not in holder:
        return "process unknown"
    since = holder.get("since")
    started = (time.strftime(" since %Y-%m-%d %H:%M:%S UTC", time.gmtime(float(since)))
               if isinstance(since, (int, float)) else "")
    return f"pid {holder['pid']} on {holder.get('host', 'this host')}{started}"
