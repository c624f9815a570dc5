"""Workers: which engines are alive, so a live one can take over a dead one's runs
(`WorkerStore`)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from tenantops.catalog._database import CatalogDatabase, now
from tenantops.catalog.models import WorkerRow

__all__ = ["Worker", "WorkerStore"]


@dataclass(frozen=True)
class Worker:
    """A started engine, and when it last said it was alive."""

    executor_id: str
    host: str
    pid: int
    started_at: dt.datetime
    last_seen: dt.datetime


class WorkerStore:
    """Record that workers are alive, forget those that sign off, list them."""

    def __init__(self, database: CatalogDatabase) -> None:
        self._db = database

    def seen(self, executor_id: str, *, host: str, pid: int) -> None:
        """Record that the worker ``executor_id`` (process ``pid`` on ``host``) is alive."""
        try:
            self._record(executor_id, host, pid)
        except IntegrityError:  # another process registered the same new ID first
            self._record(executor_id, host, pid)

    def _record(self, executor_id: str, host: str, pid: int) -> None:
        stamp = now()
        with self._db.session(write=True) as s:
            row = s.get(WorkerRow, executor_id)
            if row is None:
                s.add(WorkerRow(executor_id=executor_id, host=host, pid=pid, started_at=stamp,
                                last_seen=stamp))
                return
            if (row.host, row.pid) != (host, pid):
                row.host, row.pid, row.started_at = host, pid, stamp
            row.last_seen = stamp

    def left(self, executor_id: str, *, pid: int) -> None:
        """Forget a stopping worker (unless another process has taken its ID since)."""
        with self._db.session(write=True) as s:
            s.execute(delete(WorkerRow).where(WorkerRow.executor_id == executor_id,
                                              WorkerRow.pid == pid))

    def all(self) -> list[Worker]:
        """Every worker that has not signed off, the most recently seen first."""
        with self._db.session(write=False) as s:
            rows = s.scalars(select(WorkerRow).order_by(WorkerRow.last_seen.desc()))
            return [Worker(r.executor_id, r.host, r.pid, r.started_at, r.last_seen)
                    for r in rows]

    def alive(self, within: dt.timedelta) -> set[str]:
        """Executor IDs of the workers seen within the last ``within``."""
        cutoff = now() - within
        return {w.executor_id for w in self.all() if w.last_seen >= cutoff}
