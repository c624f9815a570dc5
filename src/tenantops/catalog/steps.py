"""Step progress: what the engine reads when a workflow segment starts (`RunProgress`) and
writes as each step of a run starts, waits, succeeds or fails (`StepStore`), each attempt
recorded in ``step_attempts`` beside the step's current state. This is the engine's hot path:
Core statements built once, one short transaction per step boundary (a step's outcome and
the next step's start)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import JSON, Connection, Update, bindparam, case, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from tenantops.catalog import events
from tenantops.catalog._database import CatalogDatabase, database_now, now
from tenantops.catalog.models import (
    ACTIVE_RUN_STATUSES,
    RunRow,
    StepAttemptRow,
    StepRow,
    TenantRow,
    UtcDateTime,
)
from tenantops.catalog.runs import close_run
from tenantops.catalog.tenants import TENANT_UPDATE, output_values
from tenantops.errors import CatalogError, RunNotFoundError

__all__ = ["RunProgress", "StepStore"]


@dataclass(frozen=True)
class RunProgress:
    """What a workflow segment needs to carry a run: the run's state, its plan's inputs (kind,
    options, the tenant's spec fields) and the outputs of the steps that succeeded."""

    status: str
    segment: int
    workflow_id: str
    kind: str
    options: dict[str, Any]
    spec: dict[str, Any]
    outputs: dict[str, dict[str, Any]]
    trace_context: str | None = None
    names: dict[str, str | None] = field(default_factory=dict)
    """Where the tenant's resources are, as recorded (`ResourceNames.to_json`'s keys): an
    adopted tenant's own names."""


class StepStore:
    """Record each attempt of each step of a run as it happens. ``clock`` gives the times
    written (aware UTC; tests inject one)."""

    def __init__(self, database: CatalogDatabase, *,
                 clock: Callable[[], dt.datetime] = now) -> None:
        self._db = database
        self._clock = clock

    def progress(self, run_id: str) -> RunProgress:
        """The run as a workflow segment starts it, read in one transaction (two indexed
        queries, no ORM objects); `RunNotFoundError` when unknown."""
        with self._db.read() as c:
            row = c.execute(_PROGRESS, {"p_run": run_id}).first()
            if row is None:
                raise RunNotFoundError(run_id)
            outputs = {name: dict(values or {})
                       for name, values in c.execute(_SUCCEEDED_OUTPUTS, {"p_run": run_id})}
        return RunProgress(
            status=row.status, segment=row.segment or 0, workflow_id=row.workflow_id,
            kind=row.kind, options=dict(row.options or {}),
            spec={"slug": row.slug, "display_name": row.display_name,
                  "custom_domain": row.custom_domain, "plan": row.plan,
                  "admin_email": row.admin_email, "tags": dict(row.tags or {})},
            outputs=outputs, trace_context=row.trace_context,
            names={"database": row.database_name, "login": row.database_login,
                   "secret": row.database_secret, "organization_id": row.organization_id})

    def started(self, run_id: str, name: str, *,
                resolved: Mapping[str, Any] | None = None) -> int | None:
        """Mark the step running (the run too, if it was pending), record a new attempt
        with the resource it asks for (``resolved``), and return its number, counting every
        attempt since the run was created; None (and nothing written) when the run is no
        longer pending or running (cancelled meanwhile)."""
        with self._db.write() as c:
            return _start(c, run_id, name, self._clock(), resolved, prestart=False)

    def waiting(
        self, run_id: str, name: str, *, status: Literal["waiting", "retrying"], message: str
    ) -> None:
        """The step is pending on the provider (``waiting``) or failed transiently and will
        be tried again (``retrying``); ``message`` says why."""
        values: dict[str, Any] = {"status": status, "message": message}
        if status == "retrying":
            values["error"] = message
        with self._db.write() as c:
            _update_step(c, run_id, name, values)
            _end_attempt(c, run_id, name, {
                "outcome": status, "finished_at": self._clock(), "message": message,
                "error": message if status == "retrying" else None})

    def waiting_for_budget(self, run_id: str, name: str, *, message: str) -> None:
        """The step waits for its rate budget's slot before its next attempt (``waiting``,
        ``message`` says until when); no attempt is begun or ended."""
        with self._db.write() as c:
            _update_step(c, run_id, name, {"status": "waiting", "message": message})

    def pending(self, run_id: str, name: str, *, message: str) -> float:
        """The provider said the step's resource is not ready yet (``message`` says what is
        missing): mark it ``waiting`` and return the seconds since its first `Pending` in
        this attempt chain, by the database's clock (0 for the first)."""
        with self._db.write() as c:
            stamp = database_now(c)
            since = c.execute(_PENDING_SINCE, {"p_run": run_id, "p_name": name}).one_or_none()
            if since is None:
                raise _no_step(run_id, name)
            first = since[0] or stamp
            _update_step(c, run_id, name, {"status": "waiting", "message": message,
                                           "pending_since": first})
            _end_attempt(c, run_id, name, {"outcome": "waiting", "finished_at": self._clock(),
                                           "message": message, "error": None})
            return max(0.0, (stamp - first).total_seconds())

    def stalled(self, run_id: str, message: str) -> str | None:
        """Show on the run's current step (the first that has not succeeded) why its
        workflow stopped and that it is being resumed; the step becomes ``retrying``.
        Returns the step's name (None: the run has no unfinished step)."""
        with self._db.write() as c:
            current = c.execute(_CURRENT_STEP, {"p_run": run_id}).first()
            if current is None:
                return None
            name = str(current[0])
            _update_step(c, run_id, name, {"status": "retrying", "message": message,
                                           "error": message})
            # An attempt the stopped workflow left running ends here, without a known end.
            c.execute(_ATTEMPT_INTERRUPTED, {"p_run": run_id, "p_name": name,
                                             "outcome": "interrupted", "error": message})
            return name

    def succeeded(
        self, run_id: str, name: str, outputs: Mapping[str, Any],
        tenant_outputs: Mapping[str, object], *, message: str | None = None,
        closes_run: bool = False, then_start: str | None = None,
        then_resolved: Mapping[str, Any] | None = None,
    ) -> int | None:
        """Record the step's outputs, and the tenant's resource outputs it produced;
        ``message``: what the provider said (a command step's redacted output).

        One transaction per step boundary, not two: with ``then_start`` (the next step of the
        plan), that step is marked running and its attempt (asking for ``then_resolved``)
        recorded in the same transaction, as `started` would, and its attempt number returned
        (None when the run is no longer active: cancelled meanwhile). A step already
        ``running`` then (marked so by an earlier execution of this step whose checkpoint a
        crash lost, before it ever ran) keeps its count and its attempt. With ``closes_run``
        (the plan's last step), the run is closed as succeeded instead (`close_run`)."""
        stamp = self._clock()
        with self._db.write() as c:
            _update_step(c, run_id, name, {
                "status": "succeeded", "finished_at": stamp, "outputs": dict(outputs),
                "error": None, "message": message,
            })
            _end_attempt(c, run_id, name, {"outcome": "succeeded", "finished_at": stamp})
            if tenant_outputs:
                tenant_id, records = c.execute(_RUN_TENANT, {"p_run": run_id}).one()
                values = output_values(records, tenant_outputs)
                values["updated_at"] = stamp
                c.execute(TENANT_UPDATE, {"p_tenant": tenant_id, **values})
            if closes_run:
                close_run(c, run_id, "succeeded")
            elif then_start is not None:
                return _start(c, run_id, then_start, stamp, then_resolved, prestart=True)
        return None

    def rewind(self, run_id: str, names: list[str], *, message: str) -> None:
        """Steps ``names``, which succeeded, are to be done again (`StepUndo`): pending,
        without outputs, ``message`` saying why; their attempts stay as history."""
        if not names:
            return
        with self._db.write() as c:
            c.execute(update(StepRow).where(
                StepRow.run_id == run_id, StepRow.name.in_(names),
            ).values(status="pending", outputs={}, finished_at=None, error=None,
                     message=message, pending_since=None))

    def failed(self, run_id: str, name: str, error: str) -> None:
        """The step failed for good (the provider said so); a ``com.tenantops.step.failed``
        event is written with it."""
        stamp = self._clock()
        with self._db.write() as c:
            _update_step(c, run_id, name, {"status": "failed", "finished_at": stamp,
                                           "error": error})
            _end_attempt(c, run_id, name, {"outcome": "failed", "finished_at": stamp,
                                           "error": error})
            events.step_failed(c, run_id, name)


def _start(c: Connection, run_id: str, name: str, stamp: dt.datetime,
           resolved: Mapping[str, Any] | None, *, prestart: bool) -> int | None:
    """Mark the step running (the run too, if it was pending) and record its attempt; the
    attempt's number, or None (nothing written) when the run is no longer active. A
    ``prestart`` (the previous step's success starting this one) of a step already running
    keeps its count and its attempt."""
    found = c.execute(_RUN_STATUS, {"p_run": run_id}).one_or_none()
    if found is None:
        raise RunNotFoundError(run_id)
    status, retries = found
    if status not in ACTIVE_RUN_STATUSES:
        return None
    statement: Update = _STEP_PRESTARTED if prestart else _STEP_RUNNING
    attempts = c.execute(statement, {"p_run": run_id, "p_name": name, "p_now": stamp}).scalar()
    if attempts is None:
        raise _no_step(run_id, name)
    attempt = {"run_id": run_id, "step": name, "number": int(attempts),
               "execution": int(retries or 0), "started_at": stamp, "outcome": "running",
               "resolved": dict(resolved) if resolved is not None else None}
    if prestart:  # the attempt may be there already (see above)
        c.execute(_attempt_once(c.dialect.name), attempt)
    else:
        c.execute(_ATTEMPT_BEGUN, attempt)
    if status == "pending":
        started = c.execute(_RUN_RUNNING, {"p_run": run_id, "p_now": stamp})
        if getattr(started, "rowcount", 0):
            events.run_started(c, run_id)
    return int(attempts)


def _attempt_once(dialect: str) -> Any:
    """An attempt's insert that does nothing when that attempt is recorded already."""
    if dialect == "postgresql":
        return postgresql.insert(StepAttemptRow).values(
            resolved=bindparam("resolved", type_=JSON(none_as_null=True))
        ).on_conflict_do_nothing(index_elements=["run_id", "step", "number"])
    return sqlite.insert(StepAttemptRow).values(
        resolved=bindparam("resolved", type_=JSON(none_as_null=True))
    ).on_conflict_do_nothing(index_elements=["run_id", "step", "number"])


def _update_step(connection: Connection, run_id: str, name: str, values: dict[str, Any]) -> None:
    result = connection.execute(_STEP_UPDATE, {"p_run": run_id, "p_name": name, **values})
    if not getattr(result, "rowcount", 1):
        raise _no_step(run_id, name)


def _end_attempt(connection: Connection, run_id: str, name: str,
                 values: dict[str, Any]) -> None:
    """How the step's latest attempt ended (nothing when it has none: a run from before
    attempts were recorded)."""
    connection.execute(_ATTEMPT_END, {"p_run": run_id, "p_name": name, **values})


def _no_step(run_id: str, name: str) -> CatalogError:
    return CatalogError(
        f"run {run_id} has no step {name!r}; the plan changed under a running run"
    )


# Built once: the hot path then only binds values (no statement construction per call).
_PROGRESS = (
    select(RunRow.status, RunRow.segment, RunRow.workflow_id, RunRow.kind, RunRow.options,
           RunRow.trace_context, TenantRow.slug, TenantRow.display_name,
           TenantRow.custom_domain, TenantRow.plan, TenantRow.admin_email, TenantRow.tags,
           TenantRow.database_name, TenantRow.database_login, TenantRow.database_secret,
           TenantRow.organization_id)
    .join(TenantRow, TenantRow.id == RunRow.tenant_id).where(RunRow.id == bindparam("p_run"))
)
_SUCCEEDED_OUTPUTS = select(StepRow.name, StepRow.outputs).where(
    StepRow.run_id == bindparam("p_run"), StepRow.status == "succeeded")
_RUN_STATUS = select(RunRow.status, RunRow.retries).where(RunRow.id == bindparam("p_run"))
_STEP_RUNNING = (
    update(StepRow)
    .where(StepRow.run_id == bindparam("p_run"), StepRow.name == bindparam("p_name"))
    .values(status="running", attempts=StepRow.attempts + 1,
            started_at=func.coalesce(StepRow.started_at,
                                     bindparam("p_now", type_=UtcDateTime())),
            finished_at=None, message=None)
    .returning(StepRow.attempts)
)
# Marked running at the end of the step before it: an attempt counts once, also when the
# previous step runs again after a crash (the row then already says running).
_STEP_PRESTARTED = (
    update(StepRow)
    .where(StepRow.run_id == bindparam("p_run"), StepRow.name == bindparam("p_name"))
    .values(status="running",
            attempts=StepRow.attempts + case((StepRow.status == "running", 0), else_=1),
            started_at=func.coalesce(StepRow.started_at,
                                     bindparam("p_now", type_=UtcDateTime())),
            finished_at=None, message=None)
    .returning(StepRow.attempts)
)
_PENDING_SINCE = select(StepRow.pending_since).where(
    StepRow.run_id == bindparam("p_run"), StepRow.name == bindparam("p_name"))
_CURRENT_STEP = (
    select(StepRow.name)
    .where(StepRow.run_id == bindparam("p_run"), StepRow.status != "succeeded")
    .order_by(StepRow.position).limit(1)
)
# Without .values(): the SET clause is the columns named in the parameters.
_STEP_UPDATE = update(StepRow).where(
    StepRow.run_id == bindparam("p_run"), StepRow.name == bindparam("p_name"))
_ATTEMPT_BEGUN = insert(StepAttemptRow).values(
    resolved=bindparam("resolved", type_=JSON(none_as_null=True)))
# Without .values(): the SET clause is the columns named in the parameters.
_ATTEMPT_END = update(StepAttemptRow).where(
    StepAttemptRow.run_id == bindparam("p_run"), StepAttemptRow.step == bindparam("p_name"),
    StepAttemptRow.number == select(StepRow.attempts).where(
        StepRow.run_id == bindparam("p_run"), StepRow.name == bindparam("p_name"),
    ).scalar_subquery(),
)
_ATTEMPT_INTERRUPTED = _ATTEMPT_END.where(StepAttemptRow.outcome == "running")
_RUN_TENANT = (
    select(TenantRow.id, TenantRow.dns_records)
    .join(RunRow, RunRow.tenant_id == TenantRow.id).where(RunRow.id == bindparam("p_run"))
)
_RUN_RUNNING = (
    update(RunRow).where(RunRow.id == bindparam("p_run"), RunRow.status == "pending")
    .values(status="running", started_at=bindparam("p_now", type_=UtcDateTime()))
)
