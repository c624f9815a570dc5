"""Runs across tenants, as people on call read them (`RunReports`): every run newest first,
filtered and a page at a time; the runs in progress with the step each one is at; the runs
that failed lately; and the raw figures of the trends (runs per day, step outcomes, step
durations). Read-only, in Core (no ORM objects), each read one transaction.

Every query here is answered by an index at 100,000 runs (migration 0015): runs by
``created_at`` (all, by status, by kind), active runs by the partial unique index on their
status, and the steps where runs stand or stopped by ``ix_steps_stopped``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, bindparam, func, select

from tenantops.catalog._database import CatalogDatabase
from tenantops.catalog.models import ACTIVE_RUN_STATUSES, RunRow, StepAttemptRow, StepRow, TenantRow
from tenantops.catalog.runs import Run, run_record
from tenantops.catalog.search import has_fts, search_clause

__all__ = [
    "STOPPED_STEP_STATUSES",
    "ActiveRun",
    "CurrentStep",
    "RunFilter",
    "RunReports",
    "StepOutcomeCount",
    "StepSpan",
]

STOPPED_STEP_STATUSES = ("running", "waiting", "retrying", "failed", "cancelled")
"""A step in one of these is where its run stands (or stopped): ``ix_steps_stopped``."""

def _stopped() -> Any:
    """``steps.status IN ('running', ...)`` with the values written into the SQL: SQLite uses
    the partial index ``ix_steps_stopped`` only when a query's condition is the index's own,
    which bound parameters are not."""
    return StepRow.__table__.c.status.in_(bindparam(
        None, list(STOPPED_STEP_STATUSES), expanding=True, literal_execute=True))


_RUNS = RunRow.__table__
_STEPS = StepRow.__table__
_ATTEMPTS = StepAttemptRow.__table__
_TENANTS = TenantRow.__table__


@dataclass(frozen=True)
class RunFilter:
    """Which runs the runs page lists. ``tenant``: a slug, or part of a tenant's slug, name
    or domain; ``step``: runs standing at (or stopped at) that step; ``since``/``until``:
    when the run was requested (inclusive, exclusive)."""

    status: str | None = None
    kind: str | None = None
    step: str | None = None
    tenant: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None


@dataclass(frozen=True)
class CurrentStep:
    """The step an active run is at: its status, attempts, what it said last, and since
    when (the first "not ready yet" of a waiting step, else its first start)."""

    name: str
    provider: str
    status: str
    attempts: int
    message: str | None
    error: str | None
    since: dt.datetime | None
    position: int


@dataclass(frozen=True)
class ActiveRun:
    """A pending or running run and the step it is at (None: no step started yet)."""

    id: str
    tenant_slug: str
    kind: str
    status: str
    retries: int
    requested_by: str
    created_at: dt.datetime
    started_at: dt.datetime | None
    step: CurrentStep | None

    def fingerprint(self) -> tuple[Any, ...]:
        """What changes whenever the run or its current step changes (`tenantops.dashboard`
        sends pages an update when it does)."""
        step = self.step
        return (self.status, self.retries, self.started_at,
                None if step is None else (step.name, step.status, step.attempts,
                                           step.message, step.error))


@dataclass(frozen=True)
class StepOutcomeCount:
    """How many attempts of ``step`` ended in ``outcome``."""

    step: str
    outcome: str
    count: int


@dataclass(frozen=True)
class StepSpan:
    """How long one succeeded step took, first start to end, in a run never retried."""

    step: str
    provider: str
    seconds: float


class RunReports:
    """Read runs across tenants for the dashboard."""

    def __init__(self, database: CatalogDatabase) -> None:
        self._db = database
        self._fts: bool | None = None

    # -- the runs page ------------------------------------------------------------------

    def page(self, filters: RunFilter, *, limit: int = 25, offset: int = 0
             ) -> tuple[list[Run], int]:
        """One page of runs matching ``filters``, newest first (steps and attempts
        included), and how many match in all."""
        with self._db.read() as connection:
            where = self._where(connection, filters)
            total = connection.execute(
                select(func.count()).select_from(_RUNS).where(*where)).scalar() or 0
            query = select(_RUNS, _TENANTS.c.slug.label("tenant_slug")).join(
                _TENANTS, _TENANTS.c.id == _RUNS.c.tenant_id).where(*where)
            newest = (_RUNS.c.created_at.desc(), _RUNS.c.id.desc())
            if offset * 2 > total:
                # Past the middle: read from the oldest end (a short offset there, not a long
                # one here), then turn the rows round.
                count = max(0, min(limit, int(total) - offset))
                oldest = (_RUNS.c.created_at.asc(), _RUNS.c.id.asc())
                rows = list(reversed(connection.execute(
                    query.order_by(*oldest).limit(count)
                    .offset(max(0, int(total) - offset - count))).all()))
            else:
                rows = list(connection.execute(
                    query.order_by(*newest).limit(limit).offset(offset)).all())
            return _with_steps(connection, rows), int(total)

    def _where(self, connection: Connection, filters: RunFilter) -> list[Any]:
        where: list[Any] = []
        if filters.status:
            where.append(_RUNS.c.status == filters.status)
        if filters.kind:
            where.append(_RUNS.c.kind == filters.kind)
        if filters.since is not None:
            where.append(_RUNS.c.created_at >= filters.since)
        if filters.until is not None:
            where.append(_RUNS.c.created_at < filters.until)
        if filters.step:
            # Spelled as ix_steps_stopped's condition, so the planner can use it.
            where.append(_RUNS.c.id.in_(select(_STEPS.c.run_id).where(
                _STEPS.c.name == filters.step, _stopped())))
        if filters.tenant:
            exact = select(_TENANTS.c.id).where(_TENANTS.c.slug == filters.tenant)
            if connection.execute(exact).first() is not None:
                where.append(_RUNS.c.tenant_id.in_(exact))
            else:
                if self._fts is None:
                    self._fts = has_fts(connection)
                where.append(_RUNS.c.tenant_id.in_(select(_TENANTS.c.id).where(
                    search_clause(filters.tenant, fts=self._fts))))
        return where

    def step_names(self) -> list[str]:
        """The names of the steps runs stand or stopped at (the step filter's choices)."""
        with self._db.read() as connection:
            return [str(name) for (name,) in connection.execute(
                select(_STEPS.c.name).where(_stopped())
                .group_by(_STEPS.c.name).order_by(_STEPS.c.name))]

    # -- what is happening now ----------------------------------------------------------

    def active(self) -> list[ActiveRun]:
        """Every pending or running run, oldest first, with the step it is at."""
        with self._db.read() as connection:
            runs = connection.execute(
                select(_RUNS.c.id, _RUNS.c.kind, _RUNS.c.status, _RUNS.c.retries,
                       _RUNS.c.requested_by, _RUNS.c.created_at, _RUNS.c.started_at,
                       _TENANTS.c.slug)
                .join(_TENANTS, _TENANTS.c.id == _RUNS.c.tenant_id)
                # Spelled as uq_runs_one_active_per_tenant's condition (a partial index).
                .where(_RUNS.c.status.in_(ACTIVE_RUN_STATUSES))
                .order_by(_RUNS.c.created_at, _RUNS.c.id)).all()
            if not runs:
                return []
            current: dict[str, CurrentStep] = {}
            for step in connection.execute(
                select(_STEPS.c.run_id, _STEPS.c.name, _STEPS.c.provider, _STEPS.c.status,
                       _STEPS.c.attempts, _STEPS.c.message, _STEPS.c.error,
                       _STEPS.c.pending_since, _STEPS.c.started_at, _STEPS.c.position)
                .join(_RUNS, _RUNS.c.id == _STEPS.c.run_id)
                .where(_RUNS.c.status.in_(ACTIVE_RUN_STATUSES),
                       _stopped())
                .order_by(_STEPS.c.position)):
                if step.run_id in current:
                    continue  # the earliest unfinished step is where the run is
                current[step.run_id] = CurrentStep(
                    name=step.name, provider=step.provider, status=step.status,
                    attempts=step.attempts, message=step.message, error=step.error,
                    since=step.pending_since if step.status == "waiting" and step.pending_since
                    else step.started_at, position=step.position)
            return [ActiveRun(
                id=r.id, tenant_slug=r.slug, kind=r.kind, status=r.status,
                retries=r.retries or 0, requested_by=r.requested_by, created_at=r.created_at,
                started_at=r.started_at, step=current.get(r.id)) for r in runs]

    def failed_since(self, since: dt.datetime, *, limit: int = 20) -> tuple[list[Run], int]:
        """Runs that failed at or after ``since``, latest failure first (at most ``limit``,
        steps included), and how many there are."""
        where = [_RUNS.c.status == "failed", _RUNS.c.finished_at >= since]
        with self._db.read() as connection:
            total = connection.execute(
                select(func.count()).select_from(_RUNS).where(*where)).scalar() or 0
            rows = connection.execute(
                select(_RUNS, _TENANTS.c.slug.label("tenant_slug"))
                .join(_TENANTS, _TENANTS.c.id == _RUNS.c.tenant_id).where(*where)
                .order_by(_RUNS.c.finished_at.desc(), _RUNS.c.id.desc()).limit(limit)).all()
            return _with_steps(connection, rows), int(total)

    # -- trends -------------------------------------------------------------------------

    def requested_since(self, since: dt.datetime) -> list[tuple[dt.datetime, str, str]]:
        """(requested at, kind, status) of every run requested at or after ``since``."""
        with self._db.read() as connection:
            return [(r.created_at, r.kind, r.status) for r in connection.execute(
                select(_RUNS.c.created_at, _RUNS.c.kind, _RUNS.c.status)
                .where(_RUNS.c.created_at >= since))]

    def step_outcomes(self, since: dt.datetime) -> list[StepOutcomeCount]:
        """How the attempts of each step ended, over the runs requested since ``since``
        (``succeeded``, ``failed``, ``retrying``: a transient fault, ``waiting``: not ready
        yet, ``interrupted``)."""
        with self._db.read() as connection:
            return [StepOutcomeCount(str(step), str(outcome), int(count))
                    for step, outcome, count in connection.execute(
                        select(_ATTEMPTS.c.step, _ATTEMPTS.c.outcome, func.count())
                        .join(_RUNS, _RUNS.c.id == _ATTEMPTS.c.run_id)
                        .where(_RUNS.c.created_at >= since)
                        .group_by(_ATTEMPTS.c.step, _ATTEMPTS.c.outcome))]

    def step_spans(self, since: dt.datetime) -> list[StepSpan]:
        """How long each succeeded step took, over the runs requested since ``since`` that
        were never retried (a retried run's step span would hold the time it waited for
        someone to retry it)."""
        with self._db.read() as connection:
            return [StepSpan(r.name, r.provider, max(0.0, (r.finished_at - r.started_at)
                                                     .total_seconds()))
                    for r in connection.execute(
                        select(_STEPS.c.name, _STEPS.c.provider, _STEPS.c.started_at,
                               _STEPS.c.finished_at)
                        .join(_RUNS, _RUNS.c.id == _STEPS.c.run_id)
                        .where(_RUNS.c.created_at >= since, _RUNS.c.retries == 0,
                               _STEPS.c.status == "succeeded",
                               _STEPS.c.started_at.is_not(None),
                               _STEPS.c.finished_at.is_not(None)))]


def _with_steps(connection: Connection, rows: Sequence[Row[Any]]) -> list[Run]:
    """The runs of ``rows`` (runs columns and ``tenant_slug``) with their steps and
    attempts, in ``rows``' order: two more selects for the whole page."""
    ids = [row.id for row in rows]
    if not ids:
        return []
    steps: dict[str, list[Row[Any]]] = {run_id: [] for run_id in ids}
    attempts: dict[str, list[Row[Any]]] = {run_id: [] for run_id in ids}
    for step in connection.execute(select(_STEPS).where(_STEPS.c.run_id.in_(ids))):
        steps[step.run_id].append(step)
    for attempt in connection.execute(select(_ATTEMPTS).where(_ATTEMPTS.c.run_id.in_(ids))):
        attempts[attempt.run_id].append(attempt)
    return [run_record(row, row.tenant_slug, steps[row.id], attempts[row.id]) for row in rows]

