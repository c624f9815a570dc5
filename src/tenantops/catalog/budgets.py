"""Rate budgets: a schedule per budget, shared by every worker (`BudgetStore`).

A budget allows one call every ``interval`` seconds, with up to ``burst`` calls at once after
a quiet time (a generic cell rate algorithm: the schedule is the time of the next free slot).
Each call first *reserves* a slot: one row locked and updated, by the database's clock, so
workers on one PostgreSQL database share one schedule (``SELECT ... FOR UPDATE``; on SQLite,
``BEGIN IMMEDIATE`` serialises the one worker's writers). The caller then waits until its
slot, durably (the engine's waits), and calls. A reservation is never refused: under load
the schedule runs ahead of the clock, and how far ahead is the budget's queue.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from tenantops.catalog._database import CatalogDatabase, database_now
from tenantops.catalog.models import RateBudgetRow

__all__ = ["BudgetState", "BudgetStore"]


@dataclass(frozen=True)
class BudgetState:
    """A budget's schedule as read now: calls reserved so far, and how far its next free
    slot is ahead of the database's clock (0 when a call may go at once)."""

    name: str
    reserved: int
    backlog_seconds: float
    updated_at: dt.datetime | None


class BudgetStore:
    """Reserve calls against rate budgets; read their schedules."""

    def __init__(self, database: CatalogDatabase) -> None:
        self._db = database

    def reserve(self, name: str, *, interval: float, burst: int = 1) -> float:
        """Reserve the next free slot of budget ``name`` (one call every ``interval``
        seconds, ``burst`` at once after a quiet time); returns the seconds to wait before
        calling (0: call now)."""
        with self._db.write() as c:
            stamp = database_now(c)
            now = stamp.timestamp()
            self._ensure(c, name, stamp)
            next_slot, reserved = c.execute(_LOCK, {"p_name": name}).one()
            slot = max(float(next_slot), now - (burst - 1) * interval)
            c.execute(_RESERVE, {"p_name": name, "next_slot": slot + interval,
                                 "reserved": int(reserved) + 1, "updated_at": stamp})
            return max(0.0, slot - now)

    def states(self, names: list[str]) -> list[BudgetState]:
        """The schedules of ``names`` (a budget never used shows nothing reserved)."""
        with self._db.write() as c:  # write: on SQLite, the same clock and a fresh snapshot
            stamp = database_now(c)
            rows = {row.name: row for row in c.execute(select(RateBudgetRow.__table__))}
        states = []
        for name in names:
            row = rows.get(name)
            states.append(BudgetState(
                name=name, reserved=int(row.reserved) if row else 0,
                backlog_seconds=max(0.0, float(row.next_slot) - stamp.timestamp()) if row
                else 0.0,
                updated_at=row.updated_at if row else None))
        return states

    def _ensure(self, c: Connection, name: str, stamp: dt.datetime) -> None:
        # A schedule that starts in the past lets the first ``burst`` calls go at once.
        values = {"name": name, "next_slot": 0.0, "reserved": 0, "updated_at": stamp}
        if c.dialect.name == "postgresql":
            c.execute(postgresql.insert(RateBudgetRow).values(values).on_conflict_do_nothing())
        elif c.dialect.name == "sqlite":
            c.execute(sqlite.insert(RateBudgetRow).values(values).on_conflict_do_nothing())
        else:  # pragma: no cover - the catalog refuses other databases
            c.execute(insert(RateBudgetRow).values(values))


_LOCK = (
    select(RateBudgetRow.next_slot, RateBudgetRow.reserved)
    .where(RateBudgetRow.name == bindparam("p_name")).with_for_update()
)
# Without .values(): the SET clause is the columns named in the parameters.
_RESERVE = update(RateBudgetRow).where(RateBudgetRow.name == bindparam("p_name"))
