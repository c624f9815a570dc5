"""Placement: which database server holds each copy of a tenant's data (`PlacementStore`).

A tenant's data has one **current** copy, the one it is served from: a database of its own
(mode ``database``) or a schema in a pooled database (mode ``schema``) on one server. A move
makes a **target** copy on another server (or in the other mode), switches the tenant to it
(the target becomes current, the old current **retiring**), and removes the retiring copy
once its grace period has passed.

Placing a copy is one transaction that chooses the server and records the choice, so two
onboardings at once never both take the last room on a server: on PostgreSQL it first takes
an advisory lock that serialises placements (`PLACEMENT_LOCK`); on SQLite every write
transaction is serialised already. The rules (`choose_server`):

- only servers of the plan's pool (the caller passes them, with their capacity);
- a named server is taken if it has room, is not draining and holds no copy of the tenant
  at the same place, else refused (`PlacementError` saying which rule);
- otherwise the least loaded server with room that is not draining: load is the share of its
  capacity in use (a server without a capacity counts as empty), then the number of copies
  it holds, then its name;
- every copy counts, whatever its state: a move's target and an old copy kept for its grace
  period take room on their server as the current copies do.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.orm import Session

from tenantops.catalog._database import CatalogDatabase, now
from tenantops.catalog.models import PlacementRow
from tenantops.catalog.tenants import tenant_row
from tenantops.errors import CatalogError, PlacementError

__all__ = [
    "PLACEMENT_LOCK",
    "CopyState",
    "Placement",
    "PlacementStore",
    "ServerSlot",
    "choose_server",
]

# pg_advisory_xact_lock key serialising placements (74120012 serialises domain claims).
PLACEMENT_LOCK = 74120014

CopyState = Literal["current", "target", "retiring"]
PlacementMode = Literal["database", "schema"]


@dataclass(frozen=True)
class ServerSlot:
    """A server a copy may go on, as the settings describe it: its name, capacity (None: no
    limit) and whether it is draining (no new copy goes on it)."""

    name: str
    capacity: int | None = None
    draining: bool = False


@dataclass(frozen=True)
class Placement:
    """One copy of a tenant's data: on ``server``, in ``database`` (mode ``database``: the
    tenant's own; ``schema``: the pooled one, the tenant's ``schema`` in it). ``details``:
    what else the plan chose (``elastic_pool``, ``sku``). ``run_id``: the run that made the
    copy, or for a retiring copy the move that retires it; ``retire_at``: when a retiring
    copy may be removed (None: its grace period has not started)."""

    state: CopyState
    server: str
    mode: PlacementMode
    database: str
    schema: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    run_id: str | None = None
    created_at: dt.datetime | None = None
    retire_at: dt.datetime | None = None

    @property
    def location(self) -> tuple[str, str, str | None]:
        """Where the data is: two copies at one location would be one."""
        return (self.server, self.database, self.schema)

    def options(self) -> dict[str, Any]:
        """As a run's options record it (JSON)."""
        return {"server": self.server, "mode": self.mode, "database": self.database,
                "schema": self.schema, "details": dict(self.details)}

    @classmethod
    def from_options(cls, value: Mapping[str, Any], state: CopyState = "current"
                     ) -> Placement:
        mode: PlacementMode = "schema" if value.get("mode") == "schema" else "database"
        return cls(state=state, server=str(value["server"]), mode=mode,
                   database=str(value["database"]),
                   schema=None if value.get("schema") is None else str(value["schema"]),
                   details=dict(value.get("details") or {}))


def _record(row: PlacementRow) -> Placement:
    return Placement(
        state=row.state,  # type: ignore[arg-type]
        server=row.server, mode=row.mode,  # type: ignore[arg-type]
        database=row.database, schema=row.schema, details=dict(row.details or {}),
        run_id=row.run_id, created_at=row.created_at, retire_at=row.retire_at)


def choose_server(candidates: Sequence[ServerSlot], loads: Mapping[str, int], *,
                  pool: str, named: str | None = None,
                  taken: Sequence[str] = ()) -> ServerSlot:
    """The server a new copy goes on (see the module docstring); ``taken``: servers where the
    copy would land on one of the tenant's own copies. `PlacementError` when none may."""
    def used(slot: ServerSlot) -> str:
        count = loads.get(slot.name, 0)
        return f"{count}/{slot.capacity}" if slot.capacity is not None else f"{count}/-"

    def full(slot: ServerSlot) -> bool:
        return slot.capacity is not None and loads.get(slot.name, 0) >= slot.capacity

    names = ", ".join(s.name for s in candidates) or "none"
    if named is not None:
        slot = next((s for s in candidates if s.name == named), None)
        if slot is None:
            raise PlacementError(
                f"server {named!r} is not in pool {pool!r} (its servers: {names}); name one "
                "of them, or add the server to the pool (providers.database.servers)",
                pool=pool, server=named)
        if named in taken:
            raise PlacementError(
                f"server {named!r} already holds a copy of this tenant at that place; name "
                "another server (a copy kept after a move goes when its grace period ends)",
                pool=pool, server=named)
        if slot.draining:
            raise PlacementError(
                f"server {named!r} is draining (providers.database.servers draining = true): "
                "no new tenant copy goes on it", pool=pool, server=named)
        if full(slot):
            raise PlacementError(
                f"server {named!r} is full: it holds {used(slot)} tenant copies (its "
                "capacity); raise its capacity, move tenants away, or name another server",
                pool=pool, server=named)
        return slot
    open_slots = [s for s in candidates if not s.draining and not full(s)
                  and s.name not in taken]
    if not open_slots:
        why = "; ".join(
            f"{s.name}: {'draining' if s.draining else 'holds this tenant' if s.name in taken else 'full ' + used(s) if full(s) else used(s)}"  # noqa: E501
            for s in candidates) or "it has no server"
        raise PlacementError(
            f"no server of pool {pool!r} can take the tenant ({why}); add a server to the "
            "pool, raise a capacity, or move tenants away", pool=pool)

    def load(slot: ServerSlot) -> tuple[float, int, str]:
        count = loads.get(slot.name, 0)
        share = count / slot.capacity if slot.capacity else 0.0
        return (share, count, slot.name)

    return min(open_slots, key=load)


def _lock(s: Session) -> None:
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PLACEMENT_LOCK})


def _rows(s: Session, tenant_id: str) -> list[PlacementRow]:
    return list(s.scalars(select(PlacementRow).where(PlacementRow.tenant_id == tenant_id)
                          .order_by(PlacementRow.id)))


class PlacementStore:
    """Record, read, switch and release the copies of tenants' data."""

    def __init__(self, database: CatalogDatabase) -> None:
        self._db = database

    def of(self, slug: str) -> list[Placement]:
        """Every copy of ``slug``'s data: current first, then a target, then retiring ones."""
        with self._db.session(write=False) as s:
            rows = _rows(s, tenant_row(s, slug).id)
        order = {"current": 0, "target": 1, "retiring": 2}
        return sorted((_record(r) for r in rows), key=lambda p: order[p.state])

    def current(self, slug: str) -> Placement | None:
        """The copy ``slug`` is served from (None: it has no database yet, or no more)."""
        return next((p for p in self.of(slug) if p.state == "current"), None)

    def loads(self) -> dict[str, int]:
        """How many tenant copies each server holds (every state counts)."""
        with self._db.session(write=False) as s:
            return _loads(s)

    def place(self, slug: str, *, state: Literal["current", "target"], run_id: str,
              candidates: Sequence[ServerSlot], pool: str, mode: PlacementMode,
              database: str, schema: str | None, details: Mapping[str, Any],
              named: str | None = None) -> Placement:
        """Choose a server (`choose_server`) and record the copy there, in one transaction;
        or return the copy of that state already recorded for this run (idempotent: a
        repeated step gets the same server). A current copy recorded by an earlier run (an
        onboarding repeated after a crash) is returned as it is. `PlacementError` when no
        server may take it, or when a target copy of another run is still recorded (that
        move must be retried, or its copy removed, first)."""
        with self._db.session(write=True) as s:
            _lock(s)
            tenant = tenant_row(s, slug)
            rows = _rows(s, tenant.id)
            existing = next((r for r in rows if r.state == state), None)
            if existing is not None:
                if state == "current" or existing.run_id == run_id:
                    return _record(existing)
                raise PlacementError(
                    f"tenant {slug!r} still has a copy on server {existing.server!r} made by "
                    f"move run {existing.run_id}, which did not finish; retry that run "
                    f"(tenantops runs retry {existing.run_id}) or move the tenant again, "
                    "which removes that copy first", pool=pool, server=existing.server)
            taken = [r.server for r in rows
                     if (r.database, r.schema) == (database, schema)]
            slot = choose_server(candidates, _loads(s), pool=pool, named=named, taken=taken)
            row = PlacementRow(
                tenant_id=tenant.id, state=state, server=slot.name, mode=mode,
                database=database, schema=schema, details=dict(details), run_id=run_id,
                created_at=now(), retire_at=None)
            s.add(row)
            s.flush()
            return _record(row)

    def switch(self, slug: str, run_id: str) -> Placement:
        """Serve ``slug`` from the target copy ``run_id`` made: the current copy becomes
        retiring (retired by ``run_id``), the target current. Idempotent: once switched,
        returns the current copy. `CatalogError` when there is neither a target of this run
        nor a current copy it made."""
        with self._db.session(write=True) as s:
            tenant = tenant_row(s, slug)
            rows = _rows(s, tenant.id)
            target = next((r for r in rows if r.state == "target" and r.run_id == run_id),
                          None)
            current = next((r for r in rows if r.state == "current"), None)
            if target is None:
                if current is not None and current.run_id == run_id:
                    return _record(current)
                raise CatalogError(
                    f"tenant {slug!r} has no copy made by run {run_id} to switch to; the "
                    "catalog was changed by hand, or another run removed that copy")
            if current is not None:
                current.state = "retiring"
                current.run_id = run_id
                current.retire_at = None
                s.flush()
            target.state = "current"
            s.flush()
            return _record(target)

    def set_details(self, slug: str, details: Mapping[str, Any]) -> bool:
        """Record ``details`` (Azure SQL's elastic pool or SKU) for the copy ``slug`` is
        served from, which a plan change converged in place; whether they changed.
        `CatalogError` when the tenant has no current copy."""
        with self._db.session(write=True) as s:
            current = next((r for r in _rows(s, tenant_row(s, slug).id)
                            if r.state == "current"), None)
            if current is None:
                raise CatalogError(
                    f"tenant {slug!r} has no current copy of its data to record a database "
                    "profile for; the catalog was changed by hand, or the tenant was "
                    "offboarded meanwhile")
            if dict(current.details or {}) == dict(details):
                return False
            current.details = dict(details)
            s.flush()
            return True

    def start_grace(self, slug: str, run_id: str, seconds: float) -> dt.datetime:
        """Start the grace period of the copies ``run_id`` retires (those not started: a
        repeated call changes nothing) and return when the last may be removed; now when
        it retires none (already removed)."""
        with self._db.session(write=True) as s:
            tenant = tenant_row(s, slug)
            stamp = now()
            s.execute(update(PlacementRow).where(
                PlacementRow.tenant_id == tenant.id, PlacementRow.state == "retiring",
                PlacementRow.run_id == run_id, PlacementRow.retire_at.is_(None),
            ).values(retire_at=stamp + dt.timedelta(seconds=seconds)))
            ends = [r.retire_at for r in _rows(s, tenant.id)
                    if r.state == "retiring" and r.run_id == run_id and r.retire_at]
            return max(ends, default=stamp)

    def release(self, slug: str, *, server: str, database: str, schema: str | None,
                states: Sequence[CopyState] = ("retiring", "target")) -> bool:
        """Forget the copy of ``slug`` at that place once its data is gone (idempotent);
        True if one was recorded. The current copy is only forgotten when ``states`` says
        so (offboarding)."""
        with self._db.session(write=True) as s:
            tenant = tenant_row(s, slug)
            result = s.execute(delete(PlacementRow).where(
                PlacementRow.tenant_id == tenant.id, PlacementRow.state.in_(list(states)),
                PlacementRow.server == server, PlacementRow.database == database,
                (PlacementRow.schema.is_(None) if schema is None
                 else PlacementRow.schema == schema)))
            return bool(getattr(result, "rowcount", 0))


def _loads(s: Session) -> dict[str, int]:
    return {str(server): int(count) for server, count in s.execute(
        select(PlacementRow.server, func.count()).group_by(PlacementRow.server))}
