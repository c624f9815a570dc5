"""Executor IDs are unique per process unless configured on purpose: ``local`` on the
embedded SQLite system database (one worker per data folder, under its lock),
``<host>-<pid>`` on a shared one; a second worker on one embedded folder is refused."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tenantops.errors import ProvisioningError
from tenantops.provisioning import Engine
from tenantops.provisioning.folder_lock import FolderLock

from .conftest import fast_settings

SHARED = "postgresql://tenantops@127.0.0.1:1/engine"


def test_executor_ids(tmp_path: Path) -> None:
    assert Engine(fast_settings(tmp_path / "a")).executor_id == "local"
    shared = Engine(fast_settings(tmp_path / "b", engine={"system_database_url": SHARED}))
    assert shared.executor_id == f"{socket.gethostname()}-{os.getpid()}"
    named = Engine(fast_settings(tmp_path / "c", engine={"system_database_url": SHARED,
                                                          "executor_id": "worker-7"}))
    assert named.executor_id == "worker-7"
    assert not (tmp_path / "a").exists(), "an engine that is not started does no I/O"


@pytest.mark.integration  # the first holder is a process of its own
def test_a_second_holder_of_the_folder_lock_is_refused_with_the_first_named(
    tmp_path: Path,
) -> None:
    database = tmp_path / "data" / "engine.sqlite"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\n"
         "from pathlib import Path\n"
         "from tenantops.provisioning.folder_lock import FolderLock\n"
         f"FolderLock(Path({str(database)!r})).acquire()\n"
         "print('held', flush=True)\n"
         "sys.stdin.read()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(ProvisioningError) as refused:
            FolderLock(database).acquire()
        assert str(refused.value).startswith(
            f"another worker (pid {holder.pid} on {socket.gethostname()} since ")
        assert f"is already running on the data folder {database.parent}" in str(refused.value)
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
        assert holder.stdout is not None
        holder.stdout.close()
    lock = FolderLock(database)  # the holder is gone: the kernel released its lock
    lock.acquire()
    assert lock.held
    lock.release()
