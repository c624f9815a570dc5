"""Fleet runs: one operation (a schema migration, a credential rotation, a certificate
renewal) applied to a selection of tenants, each tenant's work an ordinary run
(`FleetStore`).

A fleet run is data: the fleet's settings and status (``fleet_runs``) and one target per
tenant (``fleet_targets``) saying where the tenant stands: ``pending``, ``running`` (with the
child run doing its work), ``succeeded``, ``failed``, ``skipped`` (nothing to do, or the
tenant could not take the run: the reason is kept) or ``cancelled``. The worker that holds a
fleet's lease conducts it (`tenantops.provisioning.fleet`): it records the outcome of child
runs that finished, stops the fleet when failures pass its threshold, and starts pending
targets, the canary set first, then batch by batch, up to the fleet's concurrency. Every
state lives here, so a conductor killed at any point loses nothing: the next one carries on
from the rows.

Fleet statuses: ``running`` → ``succeeded`` (every target succeeded or was skipped) |
``failed`` (done, with failed targets within the threshold) | ``stopped`` (a canary failed,
or failures passed the threshold; in-flight runs finish, nothing new starts); ``stopped`` and
``failed`` are resumed (failed and skipped targets are tried again); ``cancelled`` ends it.

Progress is written as events (``com.tenantops.fleet.*``, subject ``fleets/<id>``) in the
fleet's own transactions: requested, progress (each tenth of the targets, and when the
canary set is done), tenant_failed, stopped, resumed, succeeded, failed, cancelled.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Connection, and_, func, insert, select, text, update

from tenantops.catalog import events
from tenantops.catalog._database import CatalogDatabase, database_now, new_id, now
from tenantops.catalog.models import FleetRunRow, FleetTargetRow, RunRow, StepRow
from tenantops.errors import CatalogError, FleetNotFoundError, FleetStateError

__all__ = [
    "FLEET_STATUSES",
    "TARGET_STATUSES",
    "FleetCounts",
    "FleetRun",
    "FleetStatus",
    "FleetStore",
    "FleetTarget",
    "InFlight",
    "NewFleet",
    "NewTarget",
    "TargetOutcome",
    "TargetStatus",
    "fleet_subject",
]

SOLE_FLEET_LOCK = 74120015
"""pg_advisory_xact_lock key (with the operation's hash) serialising `FleetStore.create_sole`
(74120004 serialises migrations, 74120014 placements)."""

FleetStatus = Literal["running", "stopped", "succeeded", "failed", "cancelled"]
TargetStatus = Literal["pending", "running", "succeeded", "failed", "skipped", "cancelled"]
FLEET_STATUSES: tuple[FleetStatus, ...] = ("running", "stopped", "succeeded", "failed",
                                           "cancelled")
TARGET_STATUSES: tuple[TargetStatus, ...] = ("pending", "running", "succeeded", "failed",
                                             "skipped", "cancelled")
_RESUMABLE = ("stopped", "failed")
_FINISHED_TARGETS = ("succeeded", "failed", "skipped", "cancelled")

_FLEETS = FleetRunRow.__table__
_TARGETS = FleetTargetRow.__table__


def fleet_subject(fleet_id: str) -> str:
    """The CloudEvents ``subject`` of a fleet run's events."""
    return f"fleets/{fleet_id}"


@dataclass(frozen=True)
class FleetCounts:
    """How many targets are in each status."""

    pending: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    cancelled: int = 0

    @property
    def total(self) -> int:
        return (self.pending + self.running + self.succeeded + self.failed + self.skipped
                + self.cancelled)

    @property
    def done(self) -> int:
        """Targets that will not run again unless the fleet is resumed."""
        return self.succeeded + self.failed + self.skipped + self.cancelled

    @property
    def remaining(self) -> int:
        return self.pending + self.running

    def as_dict(self) -> dict[str, int]:
        return {"pending": self.pending, "running": self.running,
                "succeeded": self.succeeded, "failed": self.failed,
                "skipped": self.skipped, "cancelled": self.cancelled, "total": self.total}


@dataclass(frozen=True)
class FleetRun:
    """A fleet run with its settings and how many targets are in each status;
    ``first_started_at`` and ``last_finished_at`` bound the work done so far (for a rate)."""

    id: str
    operation: str
    status: FleetStatus
    selection: dict[str, Any]
    options: dict[str, Any]
    canary: int
    concurrency: int
    batch_size: int | None
    max_failures: int | None
    max_failure_percent: float | None
    requested_by: str
    created_at: dt.datetime
    updated_at: dt.datetime
    finished_at: dt.datetime | None
    stop_reason: str | None
    resumes: int
    counts: FleetCounts
    first_started_at: dt.datetime | None = None
    last_finished_at: dt.datetime | None = None

    @property
    def finished(self) -> bool:
        return self.status in ("succeeded", "cancelled")

    @property
    def resumable(self) -> bool:
        return self.status in _RESUMABLE

    def threshold_passed(self, failed: int) -> str | None:
        """Why ``failed`` failed targets stop this fleet (None: they do not)."""
        if self.max_failures is not None and failed > self.max_failures:
            return (f"{failed} tenants failed, more than the {self.max_failures} allowed "
                    "(max_failures)")
        total = self.counts.total
        if self.max_failure_percent is not None and total and (
                failed * 100.0 / total > self.max_failure_percent):
            return (f"{failed} of {total} tenants failed ({failed * 100.0 / total:.1f} %), "
                    f"more than the {self.max_failure_percent:g} % allowed "
                    "(max_failure_percent)")
        return None


@dataclass(frozen=True)
class FleetTarget:
    """One tenant of a fleet run. ``attempt`` counts the child runs opened for it;
    ``run_id`` is the latest; ``detail`` what its operation reports (revisions, thumbprints,
    or why it waits)."""

    fleet_id: str
    tenant_slug: str
    position: int
    canary: bool
    batch: int
    status: TargetStatus
    attempt: int
    run_id: str | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    error: str | None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class InFlight:
    """A running target and its child run as the catalog shows it now; ``waiting``: a step
    of the run waits (a provider said "not yet"), which holds none of the fleet's slots."""

    target: FleetTarget
    run_status: str | None
    run_error: str | None
    waiting: bool


@dataclass(frozen=True)
class NewFleet:
    """A fleet run to create."""

    operation: str
    selection: Mapping[str, Any]
    options: Mapping[str, Any]
    canary: int
    concurrency: int
    batch_size: int | None
    max_failures: int | None
    max_failure_percent: float | None
    requested_by: str


@dataclass(frozen=True)
class NewTarget:
    """A tenant the fleet selected: ``skip`` says why there is nothing to do for it."""

    slug: str
    skip: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TargetOutcome:
    """How a running target ended (its child run finished)."""

    slug: str
    run_id: str
    status: Literal["succeeded", "failed", "skipped"]
    error: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)


def _target(row: Any) -> FleetTarget:
    return FleetTarget(
        fleet_id=row.fleet_id, tenant_slug=row.tenant_slug, position=row.position,
        canary=bool(row.canary), batch=row.batch, status=row.status, attempt=row.attempt,
        run_id=row.run_id, started_at=row.started_at, finished_at=row.finished_at,
        error=row.error, detail=dict(row.detail or {}))


class FleetStore:
    """Create, read, conduct, resume and cancel fleet runs."""

    def __init__(self, database: CatalogDatabase) -> None:
        self._db = database

    # -- creating -----------------------------------------------------------------------

    def create(self, fleet: NewFleet, targets: Sequence[NewTarget]) -> FleetRun:
        """Register a fleet run and its targets, in the order given: the first ``canary``
        targets with work to do are the canary set (batch 0), the others follow in batches
        of ``batch_size`` (one batch when None)."""
        created = self._create(fleet, targets, sole=False)
        if created is None:  # only a sole create declines
            raise CatalogError("the fleet run was not created")
        return created

    def create_sole(self, fleet: NewFleet, targets: Sequence[NewTarget]) -> FleetRun | None:
        """`create`, unless a fleet run of the same operation is running or stopped: None
        then. Checked and created in one transaction, serialised between workers (an
        advisory lock on PostgreSQL; SQLite has one writer), so two schedules that look at
        the same instant start one fleet run."""
        return self._create(fleet, targets, sole=True)

    def _create(self, fleet: NewFleet, targets: Sequence[NewTarget], *, sole: bool
                ) -> FleetRun | None:
        fleet_id = new_id()
        stamp = now()
        seen: set[str] = set()
        rows: list[dict[str, Any]] = []
        canaries = 0
        working = 0
        for position, target in enumerate(targets):
            if target.slug in seen:
                raise CatalogError(f"tenant {target.slug!r} is selected twice")
            seen.add(target.slug)
            canary = target.skip is None and canaries < fleet.canary
            batch = 0
            if target.skip is None:
                if canary:
                    canaries += 1
                else:
                    batch = 1 + (working // fleet.batch_size if fleet.batch_size else 0)
                    working += 1
            rows.append({
                "fleet_id": fleet_id, "tenant_slug": target.slug, "position": position,
                "canary": canary, "batch": batch,
                "status": "skipped" if target.skip is not None else "pending",
                "attempt": 0, "run_id": None, "started_at": None,
                "finished_at": stamp if target.skip is not None else None,
                "error": target.skip, "detail": dict(target.detail)})
        with self._db.write() as c:
            if sole:
                if c.dialect.name == "postgresql":
                    c.execute(text("SELECT pg_advisory_xact_lock(:key, hashtext(:operation))"),
                              {"key": SOLE_FLEET_LOCK, "operation": fleet.operation})
                if c.execute(select(_FLEETS.c.id).where(
                        _FLEETS.c.operation == fleet.operation,
                        _FLEETS.c.status.in_(("running", "stopped"))).limit(1)).first():
                    return None
            c.execute(insert(FleetRunRow).values(
                id=fleet_id, operation=fleet.operation, status="running",
                selection=dict(fleet.selection), options=dict(fleet.options),
                canary=fleet.canary, concurrency=fleet.concurrency,
                batch_size=fleet.batch_size, max_failures=fleet.max_failures,
                max_failure_percent=fleet.max_failure_percent,
                requested_by=fleet.requested_by, created_at=stamp, updated_at=stamp,
                finished_at=None, stop_reason=None, resumes=0, conductor=None,
                lease_until=None))
            if rows:
                c.execute(insert(FleetTargetRow), rows)
            created = self._read(c, fleet_id)
            self._event(c, "requested", created, actor=fleet.requested_by,
                        extra={"selection": dict(fleet.selection)})
            return created

    # -- reading ------------------------------------------------------------------------

    def get(self, fleet_id: str) -> FleetRun:
        with self._db.read() as c:
            return self._read(c, fleet_id)

    def page(self, *, status: FleetStatus | None = None, operation: str | None = None,
             limit: int = 50, offset: int = 0) -> tuple[list[FleetRun], int]:
        """Fleet runs, newest first, and how many match in all."""
        where = []
        if status is not None:
            where.append(_FLEETS.c.status == status)
        if operation is not None:
            where.append(_FLEETS.c.operation == operation)
        with self._db.read() as c:
            total = c.execute(select(func.count()).select_from(_FLEETS).where(*where)).scalar()
            ids = c.execute(select(_FLEETS.c.id).where(*where).order_by(
                _FLEETS.c.created_at.desc(), _FLEETS.c.id.desc()).limit(limit).offset(
                offset)).scalars().all()
            return [self._read(c, fleet_id) for fleet_id in ids], int(total or 0)

    def targets(self, fleet_id: str, *, status: TargetStatus | None = None,
                limit: int | None = None, offset: int = 0) -> list[FleetTarget]:
        """The fleet's targets in order (canary set first)."""
        query = select(_TARGETS).where(_TARGETS.c.fleet_id == fleet_id)
        if status is not None:
            query = query.where(_TARGETS.c.status == status)
        query = query.order_by(_TARGETS.c.position).offset(offset)
        if limit is not None:
            query = query.limit(limit)
        with self._db.read() as c:
            self._exists(c, fleet_id)
            return [_target(row) for row in c.execute(query)]

    def running_ids(self) -> list[str]:
        """The fleet runs a conductor must advance."""
        with self._db.read() as c:
            return list(c.execute(select(_FLEETS.c.id).where(
                _FLEETS.c.status == "running").order_by(_FLEETS.c.created_at)).scalars())

    def active_for(self, operation: str) -> list[FleetRun]:
        """Fleet runs of ``operation`` that are running or stopped (not finished)."""
        with self._db.read() as c:
            ids = c.execute(select(_FLEETS.c.id).where(
                _FLEETS.c.operation == operation,
                _FLEETS.c.status.in_(("running", "stopped")))).scalars().all()
            return [self._read(c, fleet_id) for fleet_id in ids]

    def in_flight(self, fleet_id: str) -> list[InFlight]:
        """The running targets, with their child runs' status and whether they wait."""
        waiting = (select(func.count()).select_from(StepRow.__table__).where(
            StepRow.run_id == RunRow.id, StepRow.status == "waiting")
            .correlate(RunRow.__table__).scalar_subquery())
        query = (select(_TARGETS, RunRow.status.label("run_status"),
                        RunRow.error.label("run_error"), waiting.label("waiting_steps"))
                 .select_from(_TARGETS.outerjoin(RunRow.__table__,
                                                 RunRow.id == _TARGETS.c.run_id))
                 .where(_TARGETS.c.fleet_id == fleet_id, _TARGETS.c.status == "running")
                 .order_by(_TARGETS.c.position))
        with self._db.read() as c:
            return [InFlight(_target(row), row.run_status, row.run_error,
                             bool(row.waiting_steps)) for row in c.execute(query)]

    def startable(self, fleet_id: str, *, limit: int) -> list[FleetTarget]:
        """Pending targets that may start now, in order: canary targets while the canary set
        is not done; then those of the earliest batch with pending targets, once every
        earlier batch is done."""
        with self._db.read() as c:
            unfinished = c.execute(
                select(_TARGETS.c.batch, func.count()).where(
                    _TARGETS.c.fleet_id == fleet_id,
                    _TARGETS.c.status.in_(("pending", "running")))
                .group_by(_TARGETS.c.batch).order_by(_TARGETS.c.batch)).all()
            if not unfinished or limit <= 0:
                return []
            batch = unfinished[0][0]
            rows = c.execute(
                select(_TARGETS).where(_TARGETS.c.fleet_id == fleet_id,
                                       _TARGETS.c.batch == batch,
                                       _TARGETS.c.status == "pending")
                .order_by(_TARGETS.c.position).limit(limit)).all()
            return [_target(row) for row in rows]

    # -- conducting -----------------------------------------------------------------------

    def take_lease(self, fleet_id: str, holder: str, *, seconds: float) -> bool:
        """Conduct the fleet for ``seconds`` more (by the database's clock): True when
        ``holder`` has the lease, because it was free, expired, or already its own."""
        with self._db.write() as c:
            at = database_now(c)
            taken = c.execute(update(FleetRunRow).where(
                FleetRunRow.id == fleet_id, FleetRunRow.status == "running",
                (FleetRunRow.conductor == holder) | FleetRunRow.conductor.is_(None)
                | (FleetRunRow.lease_until <= at),
            ).values(conductor=holder, lease_until=at + dt.timedelta(seconds=seconds)))
            return bool(getattr(taken, "rowcount", 0))

    def release_lease(self, fleet_id: str, holder: str) -> None:
        with self._db.write() as c:
            c.execute(update(FleetRunRow).where(
                FleetRunRow.id == fleet_id, FleetRunRow.conductor == holder,
            ).values(conductor=None, lease_until=None))

    def target_started(self, fleet_id: str, slug: str, *, attempt: int, run_id: str) -> bool:
        """The pending target's child run ``run_id`` (its ``attempt``-th) is open; False
        when the target is no longer pending (cancelled meanwhile)."""
        with self._db.write() as c:
            started = c.execute(update(FleetTargetRow).where(
                FleetTargetRow.fleet_id == fleet_id, FleetTargetRow.tenant_slug == slug,
                FleetTargetRow.status == "pending",
            ).values(status="running", run_id=run_id, attempt=attempt, started_at=now(),
                     finished_at=None, error=None))
            return bool(getattr(started, "rowcount", 0))

    def target_note(self, fleet_id: str, slug: str, note: str) -> None:
        """Why a pending target did not start yet (another run of its tenant is active)."""
        with self._db.write() as c:
            c.execute(update(FleetTargetRow).where(
                FleetTargetRow.fleet_id == fleet_id, FleetTargetRow.tenant_slug == slug,
                FleetTargetRow.status == "pending").values(detail={"waiting": note}))

    def record(self, fleet_id: str, outcomes: Sequence[TargetOutcome]) -> FleetRun:
        """Record how targets ended: running targets whose child run finished, or pending
        ones the operation could not start (``skipped``, with the reason). Writes a
        ``tenant_failed`` event per failure and a ``progress`` event when a tenth of the
        targets (or the canary set) is done."""
        with self._db.write() as c:
            before = self._read(c, fleet_id)
            canary_left = self._canary_left(c, fleet_id)
            stamp = now()
            for outcome in outcomes:
                updated = c.execute(update(FleetTargetRow).where(
                    FleetTargetRow.fleet_id == fleet_id,
                    FleetTargetRow.tenant_slug == outcome.slug,
                    FleetTargetRow.status.in_(("running", "pending")),
                    (FleetTargetRow.run_id == outcome.run_id) if outcome.run_id
                    else FleetTargetRow.run_id.is_(None) | (FleetTargetRow.status == "pending"),
                ).values(status=outcome.status, finished_at=stamp, error=outcome.error,
                         detail=dict(outcome.detail)))
                if getattr(updated, "rowcount", 0) and outcome.status == "failed":
                    self._event(c, "tenant_failed", before, actor=None, extra={
                        "tenant": outcome.slug, "run_id": outcome.run_id,
                        "error": outcome.error})
            after = self._read(c, fleet_id)
            total = after.counts.total
            tenth_before = before.counts.done * 10 // total if total else 0
            tenth_after = after.counts.done * 10 // total if total else 0
            canary_done = canary_left > 0 and not self._canary_left(c, fleet_id)
            if tenth_after > tenth_before or canary_done:
                self._event(c, "progress", after, actor=None,
                            extra={"canary_done": canary_done})
            return after

    def _canary_left(self, c: Connection, fleet_id: str) -> int:
        return int(c.execute(select(func.count()).select_from(_TARGETS).where(
            _TARGETS.c.fleet_id == fleet_id, _TARGETS.c.canary.is_(True),
            _TARGETS.c.status.in_(("pending", "running")))).scalar() or 0)

    def canary_failures(self, fleet_id: str) -> list[FleetTarget]:
        """Canary targets that failed."""
        with self._db.read() as c:
            return [_target(row) for row in c.execute(select(_TARGETS).where(
                _TARGETS.c.fleet_id == fleet_id, _TARGETS.c.canary.is_(True),
                _TARGETS.c.status == "failed").order_by(_TARGETS.c.position))]

    def stop(self, fleet_id: str, reason: str) -> FleetRun | None:
        """The brake: a running fleet stops starting targets (in-flight runs finish)."""
        with self._db.write() as c:
            stopped = c.execute(update(FleetRunRow).where(
                FleetRunRow.id == fleet_id, FleetRunRow.status == "running",
            ).values(status="stopped", stop_reason=reason, updated_at=now()))
            if not getattr(stopped, "rowcount", 0):
                return None
            fleet = self._read(c, fleet_id)
            self._event(c, "stopped", fleet, actor=None, extra={"reason": reason})
            return fleet

    def finish_if_done(self, fleet_id: str) -> FleetRun | None:
        """Close a running fleet with no pending or running target: ``succeeded`` when
        none failed, else ``failed``. None when it is not done (or not running)."""
        with self._db.write() as c:
            fleet = self._read(c, fleet_id)
            if fleet.status != "running" or fleet.counts.remaining:
                return None
            status: FleetStatus = "failed" if fleet.counts.failed else "succeeded"
            stamp = now()
            c.execute(update(FleetRunRow).where(
                FleetRunRow.id == fleet_id, FleetRunRow.status == "running",
            ).values(status=status, finished_at=stamp, updated_at=stamp, conductor=None,
                     lease_until=None))
            done = self._read(c, fleet_id)
            self._event(c, status, done, actor=None)
            return done

    # -- on request ---------------------------------------------------------------------

    def resume(self, fleet_id: str, *, by: str | None = None) -> FleetRun:
        """Run a stopped or failed fleet again: failed and skipped targets are pending
        again (their child runs are retried, or new ones opened), the brake is released."""
        with self._db.write() as c:
            fleet = self._read(c, fleet_id)
            if fleet.status not in _RESUMABLE:
                raise FleetStateError(
                    f"fleet run {fleet_id} is {fleet.status}; only a stopped or failed fleet "
                    "run can be resumed", fleet_id=fleet_id, status=fleet.status)
            c.execute(update(FleetTargetRow).where(
                FleetTargetRow.fleet_id == fleet_id,
                FleetTargetRow.status.in_(("failed", "skipped")),
            ).values(status="pending", finished_at=None))
            stamp = now()
            c.execute(update(FleetRunRow).where(FleetRunRow.id == fleet_id).values(
                status="running", stop_reason=None, finished_at=None, updated_at=stamp,
                resumes=FleetRunRow.resumes + 1))
            resumed = self._read(c, fleet_id)
            self._event(c, "resumed", resumed, actor=by)
            return resumed

    def cancel(self, fleet_id: str, *, by: str | None = None) -> tuple[FleetRun, list[str]]:
        """Cancel a fleet that is not finished: pending and running targets are cancelled.
        Returns the fleet and the child runs that were in flight (the caller cancels them)."""
        with self._db.write() as c:
            fleet = self._read(c, fleet_id)
            if fleet.finished:
                raise FleetStateError(
                    f"fleet run {fleet_id} is {fleet.status}; there is nothing to cancel",
                    fleet_id=fleet_id, status=fleet.status)
            in_flight = list(c.execute(select(_TARGETS.c.run_id).where(
                _TARGETS.c.fleet_id == fleet_id, _TARGETS.c.status == "running",
                _TARGETS.c.run_id.is_not(None))).scalars())
            stamp = now()
            c.execute(update(FleetTargetRow).where(
                FleetTargetRow.fleet_id == fleet_id,
                FleetTargetRow.status.in_(("pending", "running")),
            ).values(status="cancelled", finished_at=stamp))
            c.execute(update(FleetRunRow).where(FleetRunRow.id == fleet_id).values(
                status="cancelled", finished_at=stamp, updated_at=stamp, conductor=None,
                lease_until=None, stop_reason=f"cancelled by {by or 'request'}"))
            cancelled = self._read(c, fleet_id)
            self._event(c, "cancelled", cancelled, actor=by)
            return cancelled, [str(run_id) for run_id in in_flight]

    # -- shared -------------------------------------------------------------------------

    def _exists(self, c: Connection, fleet_id: str) -> None:
        if c.execute(select(_FLEETS.c.id).where(_FLEETS.c.id == fleet_id)).first() is None:
            raise FleetNotFoundError(fleet_id)

    def _read(self, c: Connection, fleet_id: str) -> FleetRun:
        row = c.execute(select(_FLEETS).where(_FLEETS.c.id == fleet_id)).first()
        if row is None:
            raise FleetNotFoundError(fleet_id)
        counts: dict[str, int] = dict.fromkeys(TARGET_STATUSES, 0)
        for status, count in c.execute(select(_TARGETS.c.status, func.count()).where(
                _TARGETS.c.fleet_id == fleet_id).group_by(_TARGETS.c.status)):
            counts[str(status)] = int(count)
        bounds = c.execute(select(func.min(_TARGETS.c.started_at),
                                  func.max(_TARGETS.c.finished_at)).where(
            and_(_TARGETS.c.fleet_id == fleet_id,
                 _TARGETS.c.status.in_(_FINISHED_TARGETS)))).first()
        first, last = (bounds[0], bounds[1]) if bounds is not None else (None, None)
        return FleetRun(
            id=row.id, operation=row.operation, status=row.status, selection=dict(
                row.selection or {}), options=dict(row.options or {}), canary=row.canary,
            concurrency=row.concurrency, batch_size=row.batch_size,
            max_failures=row.max_failures, max_failure_percent=row.max_failure_percent,
            requested_by=row.requested_by, created_at=row.created_at,
            updated_at=row.updated_at, finished_at=row.finished_at,
            stop_reason=row.stop_reason, resumes=row.resumes,
            counts=FleetCounts(**counts), first_started_at=_aware(first),
            last_finished_at=_aware(last))

    def _event(self, c: Connection, what: str, fleet: FleetRun, *, actor: str | None,
               extra: Mapping[str, Any] | None = None) -> None:
        data: dict[str, Any] = {"fleet": {
            "id": fleet.id, "operation": fleet.operation, "status": fleet.status,
            "counts": fleet.counts.as_dict(), "stop_reason": fleet.stop_reason,
            "requested_by": fleet.requested_by}}
        data.update(extra or {})
        events.record(c, type=f"{events.EVENT_PREFIX}fleet.{what}",
                      subject=fleet_subject(fleet.id), data=data, actor=actor)


def _aware(value: Any) -> dt.datetime | None:
    """min()/max() over a SQLite column come back naive (UTC) or as text; the catalog
    stores UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if not isinstance(value, dt.datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.timezone.utc)
