"""Workers: which engines are alive, so a live one can take over a dead one's runs
(`WorkerStore`).

Every time here is the database's (`database_now`: PostgreSQL's ``now()``), never a
worker's own: a worker whose clock runs ahead must not see healthy workers as silent, nor be
listed as seen in the future. Each beat also measures how far the worker's clock is from the
database's (``clock_offset_seconds``), so a skewed host is visible.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from tenantops.catalog._database import CatalogDatabase, database_now
from tenantops.catalog.models import WorkerRow

__all__ = ["Worker", "WorkerStore"]


@dataclass(frozen=True)
class Worker:
    """A started engine, when it last said it was alive (by the database's clock), how long
    ago that was when it was read, and its clock's offset from the database's."""

    executor_id: str
    host: str
    pid: int
    started_at: dt.datetime
    last_seen: dt.datetime
    seen_seconds_ago: float
    clock_offset_seconds: float | None

    def alive(self, within: dt.timedelta) -> bool:
        return self.seen_seconds_ago <= within.total_seconds()


class WorkerStore:
    """Record that workers are alive, forget those that sign off, list them."""

    def __init__(self, database: CatalogDatabase) -> None:
        self._db = database

    def seen(self, executor_id: str, *, host: str, pid: int) -> float:
        """Record that the worker ``executor_id`` (process ``pid`` on ``host``) is alive, at
        the database's time; returns this process's clock minus the database's, in seconds
        (0 on SQLite, whose clock is this process's)."""
        try:
            return self._record(executor_id, host, pid)
        except IntegrityError:  # another process registered the same new ID first
            return self._record(executor_id, host, pid)

    def _record(self, executor_id: str, host: str, pid: int) -> float:
        with self._db.session(write=True) as s:
            before = time.time()
            stamp = database_now(s.connection())
            after = time.time()
            # The database read its clock somewhere between the two readings of ours.
            offset = (before + after) / 2 - stamp.timestamp()
            row = s.get(WorkerRow, executor_id)
            if row is None:
                s.add(WorkerRow(executor_id=executor_id, host=host, pid=pid, started_at=stamp,
                                last_seen=stamp, clock_offset_seconds=offset))
                return offset
            if (row.host, row.pid) != (host, pid):
                row.host, row.pid, row.started_at = host, pid, stamp
            row.last_seen = stamp
            row.clock_offset_seconds = offset
            return offset

    def left(self, executor_id: str, *, pid: int) -> None:
        """Forget a stopping worker (unless another process has taken its ID since)."""
        with self._db.session(write=True) as s:
            s.execute(delete(WorkerRow).where(WorkerRow.executor_id == executor_id,
                                              WorkerRow.pid == pid))

    def forget_silent(self, silent_for: dt.timedelta) -> int:
        """Forget the workers unheard of for ``silent_for`` (database time): processes killed
        without signing off, whose runs live workers have taken over. Returns how many."""
        with self._db.session(write=True) as s:
            cutoff = database_now(s.connection()) - silent_for
            result = s.execute(delete(WorkerRow).where(WorkerRow.last_seen < cutoff))
            return int(getattr(result, "rowcount", 0) or 0)

    def all(self) -> list[Worker]:
        """Every worker that has not signed off, the most recently seen first."""
        with self._db.session(write=False) as s:
            stamp = database_now(s.connection())
            rows = s.scalars(select(WorkerRow).order_by(WorkerRow.last_seen.desc()))
            return [Worker(r.executor_id, r.host, r.pid, r.started_at, r.last_seen,
                           (stamp - r.last_seen).total_seconds(), r.clock_offset_seconds)
                    for r in rows]

    def alive(self, within: dt.timedelta) -> set[str]:
        """Executor IDs of the workers seen within the last ``within`` (database time)."""
        return {w.executor_id for w in self.all() if w.alive(within)}
