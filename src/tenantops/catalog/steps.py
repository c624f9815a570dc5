"""Step progress: what the engine writes as each step of a run starts, waits, succeeds or
fails (`StepStore`), each attempt recorded in ``step_attempts`` beside the step's current
state. This is the engine's hot path: Core statements built once, one short transaction per
write."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any, Literal

from sqlalchemy import JSON, Connection, bindparam, func, insert, select, update

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
from tenantops.catalog.tenants import TENANT_UPDATE, output_values
from tenantops.errors import CatalogError, RunNotFoundError

__all__ = ["StepStore"]


class StepStore:
    """Record each attempt of each step of a run as it happens. ``clock`` gives the times
    written (aware UTC; tests inject one)."""

    def __init__(self, database: CatalogDatabase, *,
                 clock: Callable[[], dt.datetime] = now) -> None:
        self._db = database
        self._clock = clock

    def started(self, run_id: str, name: str, *,
                resolved: Mapping[str, Any] | None = None) -> int | None:
        """Mark the step running (the run too, if it was pending), record a new attempt
        with the resource it asks for (``resolved``), and return its number, counting every
        attempt since the run was created; None (and nothing written) when the run is no
        longer pending or running (cancelled meanwhile)."""
        stamp = self._clock()
        with self._db.write() as c:
            found = c.execute(_RUN_STATUS, {"p_run": run_id}).one_or_none()
            if found is None:
                raise RunNotFoundError(run_id)
            status, retries = found
            if status not in ACTIVE_RUN_STATUSES:
                return None
            attempts = c.execute(
                _STEP_RUNNING, {"p_run": run_id, "p_name": name, "p_now": stamp}).scalar()
            if attempts is None:
                raise _no_step(run_id, name)
            c.execute(_ATTEMPT_BEGUN, {
                "run_id": run_id, "step": name, "number": int(attempts),
                "execution": int(retries or 0), "started_at": stamp, "outcome": "running",
                "resolved": dict(resolved) if resolved is not None else None})
            if status == "pending":
                started = c.execute(_RUN_RUNNING, {"p_run": run_id, "p_now": stamp})
                if getattr(started, "rowcount", 0):
                    events.run_started(c, run_id)
            return int(attempts)

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
    ) -> None:
        """Record the step's outputs, and the tenant's resource outputs it produced;
        ``message``: what the provider said (a command step's redacted output)."""
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
