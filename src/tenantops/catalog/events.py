"""Lifecycle events: the outbox, each tenant's history, and the deliveries to sinks
(`EventStore`).

Every transition of a run or a tenant is an event, written by the catalog in the same
transaction as the change it reports (`run_requested`, `run_started`, `step_failed`,
`run_finished`, `run_cancelled`, `run_retried`; `record` for callers with events of their
own, such as fleet runs). Types are derived from the run's kind and status, so a new kind of
run produces events without code of its own (docs/events.md lists them):

- ``com.tenantops.run.requested`` / ``.started`` / ``.retried`` / ``.cancelled``, and
  ``com.tenantops.step.failed``, for every kind (the kind is in the data);
- ``com.tenantops.tenant.<past tense of the kind>`` when a run succeeds (``onboarded``,
  ``offboarded``, ``updated``, ``suspended``...), ``com.tenantops.tenant.failed`` when it fails.

The events whose subject is a tenant are that tenant's history (`EventStore.history`): who
(``actor``), when, by which run, and what changed (each event carries the tenant's fields as
they were after the change, and the history compares consecutive ones).

Order: ``seq`` grows with every event. Before an event is written its tenant's row is locked
(PostgreSQL ``FOR UPDATE``; SQLite serialises every writer), so the events of one tenant get
their ``seq`` in the order their transactions commit, and the dispatcher (which sends the
events of one subject to a sink one at a time, in ``seq`` order) never overtakes one.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import (
    Connection,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session, aliased

from tenantops.catalog._database import CatalogDatabase, now
from tenantops.catalog.models import (
    EventDeliveryRow,
    EventDispatcherRow,
    EventRow,
    RunRow,
    StepRow,
    TenantRow,
)
from tenantops.errors import CatalogError, EventDeliveryNotFoundError
from tenantops.telemetry import current_request_id

__all__ = [
    "EVENT_PREFIX",
    "TENANT_FIELDS",
    "Delivery",
    "DeliveryStatus",
    "Event",
    "EventStore",
    "HistoryEntry",
    "past_tense",
    "record",
    "run_cancelled",
    "run_finished",
    "run_requested",
    "run_retried",
    "run_started",
    "step_failed",
    "tenant_fields",
    "tenant_subject",
    "type_matches",
]

EVENT_PREFIX = "com.tenantops."
DeliveryStatus = Literal["pending", "delivered", "parked"]
DISPATCHER_LEASE = "events"
# The tenant's fields every tenant event carries (its state after the change), compared by
# the history to say what changed. Never a secret: outputs name secrets, not their values.
TENANT_FIELDS = ("status", "display_name", "custom_domain", "plan", "admin_email", "tags",
                 "hostname", "database_name", "organization_id")
_SECRET_KEY = re.compile(r"secret|password|credential|private", re.IGNORECASE)
_REDACTED = "[redacted]"
_ERROR_LIMIT = 2000

Writer = Session | Connection


# -- what events look like -------------------------------------------------------------------

@dataclass(frozen=True)
class Event:
    """One lifecycle event as the outbox holds it (rendered as a CloudEvent by
    `tenantops.events`)."""

    seq: int
    id: str
    type: str
    subject: str
    tenant_slug: str | None
    run_id: str | None
    actor: str | None
    request_id: str | None
    time: dt.datetime
    data: dict[str, Any]
    routed_at: dt.datetime | None = None


@dataclass(frozen=True)
class Delivery:
    """One event on its way to one sink."""

    id: int
    event_seq: int
    event_id: str
    event_type: str
    sink: str
    ordering_key: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: dt.datetime
    first_attempt_at: dt.datetime | None
    last_attempt_at: dt.datetime | None
    delivered_at: dt.datetime | None
    last_status: int | None
    last_error: str | None


@dataclass(frozen=True)
class HistoryEntry:
    """One event of a tenant's history, with what it changed in the tenant's fields
    (``changes``: field -> (before, after); empty when the event changed none)."""

    event: Event
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    @property
    def run_kind(self) -> str | None:
        run = self.event.data.get("run")
        return str(run["kind"]) if isinstance(run, dict) and "kind" in run else None


def tenant_subject(slug: str) -> str:
    """The CloudEvents ``subject`` of a tenant's events."""
    return f"tenants/{slug}"


def past_tense(kind: str) -> str:
    """``onboard`` -> ``onboarded``, ``suspend`` -> ``suspended``, ``move`` -> ``moved``: the
    word in ``com.tenantops.tenant.<word>`` when a run of ``kind`` succeeds."""
    word = kind.replace("-", "_").lower()
    return f"{word}d" if word.endswith("e") else f"{word}ed"


def type_matches(event_type: str, patterns: Iterable[str]) -> bool:
    """True when ``event_type`` matches one of the glob ``patterns`` (``*`` matches within
    and across dots: ``com.tenantops.tenant.*``); no patterns match everything."""
    listed = list(patterns)
    return not listed or any(fnmatch.fnmatchcase(event_type, p) for p in listed)


# -- writing (inside the transaction of the change) ------------------------------------------

def record(
    writer: Writer, *, type: str, subject: str, data: Mapping[str, Any],
    tenant_slug: str | None = None, run_id: str | None = None, actor: str | None = None,
    request_id: str | None = None, stamp: dt.datetime | None = None,
) -> str:
    """Write one event in ``writer``'s transaction; returns its ID. For a tenant's event,
    lock the tenant's row first (`run_requested` and the others do). ``request_id`` defaults
    to the API or dashboard request being handled (its ``X-Request-ID``), if any."""
    if not type.startswith(EVENT_PREFIX):
        raise CatalogError(f"event type {type!r} does not start with {EVENT_PREFIX!r}")
    event_id = uuid.uuid4().hex
    writer.execute(insert(EventRow).values(
        id=event_id, type=type, subject=subject, tenant_slug=tenant_slug, run_id=run_id,
        actor=actor, request_id=request_id or current_request_id(), time=stamp or now(),
        data=dict(data),
        routed_at=None,
    ))
    return event_id


def _lock_tenant(writer: Writer, tenant_id: str) -> None:
    # PostgreSQL: the row lock orders the events of one tenant by commit (module docstring).
    # SQLite ignores FOR UPDATE; its writers are serialised by BEGIN IMMEDIATE.
    writer.execute(select(TenantRow.id).where(TenantRow.id == tenant_id).with_for_update())


def tenant_fields(tenant: TenantRow | Any) -> dict[str, Any]:
    """The tenant as its events carry it (`TENANT_FIELDS`, after the change)."""
    fields: dict[str, Any] = {"slug": tenant.slug}
    for name in TENANT_FIELDS:
        value = getattr(tenant, name)
        fields[name] = dict(value) if isinstance(value, dict) else value
    return fields


def _run_fields(run: RunRow | Any) -> dict[str, Any]:
    return {"id": run.id, "kind": run.kind, "status": run.status,
            "requested_by": run.requested_by, "retries": run.retries}


def _safe(options: Mapping[str, Any]) -> dict[str, Any]:
    """Run options as events show them: values under secret-looking keys hidden."""
    shown: dict[str, Any] = {}
    for key, value in options.items():
        if _SECRET_KEY.search(str(key)):
            shown[key] = _REDACTED
        elif isinstance(value, Mapping):
            shown[key] = _safe(value)
        else:
            shown[key] = value
    return shown


def _run_event(writer: Writer, type: str, run: RunRow | Any, tenant: TenantRow | Any, *,
               actor: str | None, extra: Mapping[str, Any] | None = None) -> str:
    if isinstance(writer, Session):
        writer.flush()  # the tenant's and the run's changes first (and the lock with them)
    _lock_tenant(writer, tenant.id)
    data: dict[str, Any] = {"tenant": tenant_fields(tenant), "run": _run_fields(run)}
    data.update(extra or {})
    return record(writer, type=type, subject=tenant_subject(tenant.slug), data=data,
                  tenant_slug=tenant.slug, run_id=run.id, actor=actor)


def run_requested(s: Session, run: RunRow, tenant: TenantRow) -> str:
    """A run of any kind was opened (``com.tenantops.run.requested``); for an onboarding,
    this is the tenant being requested."""
    return _run_event(s, f"{EVENT_PREFIX}run.requested", run, tenant, actor=run.requested_by,
                      extra={"options": _safe(run.options or {})})


def run_finished(s: Writer, run: RunRow | Any, tenant: TenantRow | Any) -> str:
    """The run succeeded (``com.tenantops.tenant.<past tense of its kind>``) or failed
    (``com.tenantops.tenant.failed``, with the step and the error)."""
    if run.status == "succeeded":
        return _run_event(s, f"{EVENT_PREFIX}tenant.{past_tense(run.kind)}", run, tenant,
                          actor=run.requested_by)
    return _run_event(s, f"{EVENT_PREFIX}tenant.failed", run, tenant, actor=run.requested_by,
                      extra={"failed_step": run.failed_step, "error": run.error})


def run_cancelled(s: Session, run: RunRow, tenant: TenantRow, *, by: str | None) -> str:
    """The run was cancelled (``com.tenantops.run.cancelled``); the tenant is ``failed``."""
    return _run_event(s, f"{EVENT_PREFIX}run.cancelled", run, tenant, actor=by)


def run_retried(s: Session, run: RunRow, tenant: TenantRow, *, by: str | None,
                from_step: str | None) -> str:
    """A failed or cancelled run was reopened to continue (``com.tenantops.run.retried``)."""
    return _run_event(s, f"{EVENT_PREFIX}run.retried", run, tenant, actor=by,
                      extra={"from_step": from_step})


def run_started(c: Connection, run_id: str) -> str:
    """The run's first step started (``com.tenantops.run.started``): on its first execution,
    and again after each retry."""
    run, tenant = run_and_tenant(c, run_id)
    return _run_event(c, f"{EVENT_PREFIX}run.started", run, tenant, actor=run.requested_by)


def step_failed(writer: Writer, run_id: str, step: str) -> str:
    """A step failed for good (``com.tenantops.step.failed``): the provider said so, or its
    retries or its wait ran out."""
    step_row = writer.execute(select(StepRow.__table__).where(
        StepRow.run_id == run_id, StepRow.name == step)).first()
    if step_row is None:
        raise CatalogError(f"run {run_id} has no step {step!r}")
    run, tenant = run_and_tenant(writer, run_id)
    return _run_event(writer, f"{EVENT_PREFIX}step.failed", run, tenant,
                      actor=run.requested_by, extra={"step": {
                          "name": step_row.name, "provider": step_row.provider,
                          "action": step_row.action, "attempts": step_row.attempts,
                          "error": step_row.error}})


def run_and_tenant(writer: Writer, run_id: str) -> tuple[Any, Any]:
    """The run's and its tenant's rows, as events describe them."""
    run = writer.execute(select(RunRow.__table__).where(RunRow.id == run_id)).first()
    tenant = (writer.execute(select(TenantRow.__table__).where(
        TenantRow.id == run.tenant_id)).first() if run is not None else None)
    if run is None or tenant is None:
        raise CatalogError(f"run {run_id} or its tenant is missing from the catalog")
    return run, tenant


# -- reading and delivering ------------------------------------------------------------------

def _event(row: EventRow) -> Event:
    return Event(seq=row.seq, id=row.id, type=row.type, subject=row.subject,
                 tenant_slug=row.tenant_slug, run_id=row.run_id, actor=row.actor,
                 request_id=row.request_id, time=row.time, data=dict(row.data or {}),
                 routed_at=row.routed_at)


def _delivery(row: EventDeliveryRow, event_id: str, event_type: str) -> Delivery:
    return Delivery(
        id=row.id, event_seq=row.event_seq, event_id=event_id, event_type=event_type,
        sink=row.sink, ordering_key=row.ordering_key,
        status=row.status,  # type: ignore[arg-type]
        attempts=row.attempts, next_attempt_at=row.next_attempt_at,
        first_attempt_at=row.first_attempt_at, last_attempt_at=row.last_attempt_at,
        delivered_at=row.delivered_at, last_status=row.last_status, last_error=row.last_error)


def _type_clause(patterns: Sequence[str]) -> Any:
    clauses: list[Any] = []
    for pattern in patterns:
        if "*" in pattern:
            like = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            clauses.append(EventRow.type.like(like.replace("*", "%"), escape="\\"))
        else:
            clauses.append(EventRow.type == pattern)
    return or_(*clauses)


class EventStore:
    """Read events and history; route events to sinks and record each delivery attempt;
    the dispatcher's lease."""

    def __init__(self, database: CatalogDatabase) -> None:
        self._db = database

    # -- reading ---------------------------------------------------------------------------

    def page(
        self, *, tenant: str | None = None, types: Sequence[str] = (), run_id: str | None = None,
        since: dt.datetime | None = None, until: dt.datetime | None = None,
        after: int | None = None, before: int | None = None, limit: int = 100,
        newest_first: bool = False,
    ) -> list[Event]:
        """Events matching every filter given, in ``seq`` order (or newest first). ``types``
        are exact types or globs (``com.tenantops.tenant.*``); ``after``/``before`` are
        ``seq`` cursors (exclusive); ``since``/``until`` bound ``time`` (inclusive, exclusive)."""
        where: list[Any] = []
        if tenant is not None:
            where.append(EventRow.tenant_slug == tenant)
        if types:
            where.append(_type_clause(types))
        if run_id is not None:
            where.append(EventRow.run_id == run_id)
        if since is not None:
            where.append(EventRow.time >= since)
        if until is not None:
            where.append(EventRow.time < until)
        if after is not None:
            where.append(EventRow.seq > after)
        if before is not None:
            where.append(EventRow.seq < before)
        order = EventRow.seq.desc() if newest_first else EventRow.seq
        with self._db.session(write=False) as s:
            rows = s.scalars(select(EventRow).where(*where).order_by(order).limit(limit))
            return [_event(r) for r in rows]

    def last_seq(self) -> int:
        """The newest event's ``seq`` (0 when there is none): where a tail starts."""
        with self._db.session(write=False) as s:
            return int(s.scalar(select(func.max(EventRow.seq))) or 0)

    def get(self, event_id: str) -> Event | None:
        with self._db.session(write=False) as s:
            row = s.scalar(select(EventRow).where(EventRow.id == event_id))
            return _event(row) if row is not None else None

    def history(self, slug: str, *, limit: int = 200, before: int | None = None
                ) -> list[HistoryEntry]:
        """The tenant's history, newest first: every event of the tenant, with the fields
        each one changed. ``before`` is a ``seq`` cursor for the next page."""
        where: list[Any] = [EventRow.tenant_slug == slug]
        if before is not None:
            where.append(EventRow.seq < before)
        with self._db.session(write=False) as s:
            rows = list(s.scalars(select(EventRow).where(*where)
                                  .order_by(EventRow.seq.desc()).limit(limit + 1)))
        events = [_event(r) for r in rows]
        entries = []
        for index, event in enumerate(events[:limit]):
            previous = events[index + 1] if index + 1 < len(events) else None
            entries.append(HistoryEntry(event, _changes(previous, event)))
        return entries

    def deliveries(
        self, *, status: DeliveryStatus | None = None, sink: str | None = None,
        event_seqs: Sequence[int] | None = None, limit: int = 100,
    ) -> list[Delivery]:
        """Deliveries, newest event first, optionally in one status, to one sink, or of the
        events ``event_seqs``."""
        where: list[Any] = []
        if status is not None:
            where.append(EventDeliveryRow.status == status)
        if sink is not None:
            where.append(EventDeliveryRow.sink == sink)
        if event_seqs is not None:
            if not event_seqs:
                return []
            where.append(EventDeliveryRow.event_seq.in_(list(event_seqs)))
        with self._db.session(write=False) as s:
            rows = s.execute(
                select(EventDeliveryRow, EventRow.id, EventRow.type)
                .join(EventRow, EventRow.seq == EventDeliveryRow.event_seq).where(*where)
                .order_by(EventDeliveryRow.event_seq.desc(), EventDeliveryRow.sink)
                .limit(limit))
            return [_delivery(row, event_id, event_type) for row, event_id, event_type in rows]

    def redeliver(self, delivery_id: int) -> Delivery:
        """Send a parked (or delivered) delivery again, now, with a fresh retry window."""
        with self._db.session(write=True) as s:
            row = s.get(EventDeliveryRow, delivery_id)
            if row is None:
                raise EventDeliveryNotFoundError(delivery_id)
            row.status = "pending"
            row.next_attempt_at = now()
            row.first_attempt_at = None
            row.delivered_at = None
            event = s.get(EventRow, row.event_seq)
            if event is None:
                raise CatalogError(f"delivery {delivery_id} has no event")
            s.flush()
            return _delivery(row, event.id, event.type)

    # -- routing and delivering (the dispatcher) ---------------------------------------------

    def unrouted(self, limit: int = 500) -> list[Event]:
        """Events not routed to the sinks yet, oldest first."""
        with self._db.session(write=False) as s:
            rows = s.scalars(select(EventRow).where(EventRow.routed_at.is_(None))
                             .order_by(EventRow.seq).limit(limit))
            return [_event(r) for r in rows]

    def route(self, routes: Mapping[int, Sequence[str]], *, ordering_keys: Mapping[int, str],
              at: dt.datetime) -> None:
        """Create a pending delivery of event ``seq`` to each sink in ``routes[seq]`` and mark
        every event in ``routes`` routed, in one transaction."""
        if not routes:
            return
        with self._db.write() as c:
            rows = [{"event_seq": seq, "sink": sink, "ordering_key": ordering_keys[seq],
                     "status": "pending", "attempts": 0, "next_attempt_at": at}
                    for seq, sinks in routes.items() for sink in sinks]
            if rows:
                c.execute(insert(EventDeliveryRow), rows)
            c.execute(update(EventRow).where(EventRow.seq.in_(list(routes)),
                                             EventRow.routed_at.is_(None))
                      .values(routed_at=at))

    def due(self, at: dt.datetime, *, limit: int = 100, sinks: Sequence[str] | None = None
            ) -> list[tuple[Delivery, Event]]:
        """The deliveries to attempt now: for each sink and ordering key (a tenant), the
        oldest pending delivery, when its next attempt is due."""
        earlier = aliased(EventDeliveryRow)
        blocked = exists().where(
            earlier.sink == EventDeliveryRow.sink,
            earlier.ordering_key == EventDeliveryRow.ordering_key,
            earlier.status == "pending",
            earlier.event_seq < EventDeliveryRow.event_seq,
        )
        where: list[Any] = [EventDeliveryRow.status == "pending",
                            EventDeliveryRow.next_attempt_at <= at, ~blocked]
        if sinks is not None:
            where.append(EventDeliveryRow.sink.in_(list(sinks)))
        with self._db.session(write=False) as s:
            rows = s.execute(
                select(EventDeliveryRow, EventRow)
                .join(EventRow, EventRow.seq == EventDeliveryRow.event_seq)
                .where(*where).order_by(EventDeliveryRow.event_seq).limit(limit))
            return [(_delivery(d, e.id, e.type), _event(e)) for d, e in rows]

    def next_due(self) -> dt.datetime | None:
        """When the earliest pending delivery is due (None: nothing pending)."""
        with self._db.session(write=False) as s:
            return s.scalar(select(func.min(EventDeliveryRow.next_attempt_at))
                            .where(EventDeliveryRow.status == "pending"))

    def attempted(
        self, delivery_id: int, *, at: dt.datetime, delivered: bool,
        status_code: int | None = None, error: str | None = None,
        next_attempt_at: dt.datetime | None = None,
    ) -> None:
        """Record one attempt: ``delivered``, or failed with ``error`` and tried again at
        ``next_attempt_at`` (None: parked, no more attempts). A delivery no longer pending
        (redelivered or parked meanwhile) is only counted."""
        values: dict[str, Any] = {
            "attempts": EventDeliveryRow.attempts + 1, "last_attempt_at": at,
            "first_attempt_at": func.coalesce(EventDeliveryRow.first_attempt_at, at),
            "last_status": status_code,
            "last_error": error[:_ERROR_LIMIT] if error else None,
        }
        if delivered:
            values.update(status="delivered", delivered_at=at)
        elif next_attempt_at is None:
            values.update(status="parked")
        else:
            values.update(next_attempt_at=next_attempt_at)
        with self._db.write() as c:
            c.execute(update(EventDeliveryRow).where(
                EventDeliveryRow.id == delivery_id, EventDeliveryRow.status == "pending",
            ).values(**values))

    # -- the dispatcher's lease ---------------------------------------------------------------

    def take_lease(self, holder: str, *, at: dt.datetime, seconds: float,
                   replaceable: Callable[[str], bool] | None = None) -> bool:
        """Hold (or keep) the dispatcher lease until ``at + seconds``: True when ``holder``
        has it, because it was free, had expired, was already ``holder``'s, or its holder is
        one ``replaceable`` says is gone (an earlier process of the same worker)."""
        until = at + dt.timedelta(seconds=seconds)
        try:
            with self._db.write() as c:
                current = c.execute(select(EventDispatcherRow.holder,
                                           EventDispatcherRow.expires_at).where(
                    EventDispatcherRow.name == DISPATCHER_LEASE)).first()
                if current is None:
                    c.execute(insert(EventDispatcherRow).values(
                        name=DISPATCHER_LEASE, holder=holder, expires_at=until))
                    return True
                taken_from, expires_at = current
                if not (taken_from == holder or expires_at <= at
                        or (replaceable is not None and replaceable(taken_from))):
                    return False
                # Compare-and-set: another dispatcher that took it meanwhile wins.
                taken = c.execute(update(EventDispatcherRow).where(
                    EventDispatcherRow.name == DISPATCHER_LEASE,
                    EventDispatcherRow.holder == taken_from,
                ).values(holder=holder, expires_at=until))
                return bool(getattr(taken, "rowcount", 0))
        except CatalogError:
            return False  # another dispatcher created the lease first

    def release_lease(self, holder: str) -> None:
        with self._db.write() as c:
            c.execute(delete(EventDispatcherRow).where(
                EventDispatcherRow.name == DISPATCHER_LEASE,
                EventDispatcherRow.holder == holder))

    def lease_holder(self, at: dt.datetime) -> str | None:
        """Who dispatches events now (None: nobody holds an unexpired lease)."""
        with self._db.session(write=False) as s:
            row = s.get(EventDispatcherRow, DISPATCHER_LEASE)
            return row.holder if row is not None and row.expires_at > at else None

    def counts(self) -> dict[str, int]:
        """Deliveries by status, and events not routed yet (``unrouted``)."""
        with self._db.session(write=False) as s:
            found = {str(k): int(v) for k, v in s.execute(
                select(EventDeliveryRow.status, func.count()).group_by(EventDeliveryRow.status))}
            unrouted = s.scalar(select(func.count()).select_from(EventRow).where(
                EventRow.routed_at.is_(None))) or 0
        return {"pending": found.get("pending", 0), "delivered": found.get("delivered", 0),
                "parked": found.get("parked", 0), "unrouted": int(unrouted)}


def _changes(previous: Event | None, event: Event) -> dict[str, tuple[Any, Any]]:
    after = event.data.get("tenant")
    if not isinstance(after, dict):
        return {}
    before = previous.data.get("tenant") if previous is not None else None
    if not isinstance(before, dict):
        before = {}
    return {name: (before.get(name), after.get(name)) for name in TENANT_FIELDS
            if name in after and before.get(name) != after.get(name)}

