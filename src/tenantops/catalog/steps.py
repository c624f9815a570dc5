"""Step progress: what the engine writes as each step of a run starts, waits, succeeds or
fails (`StepStore`). This is the engine's hot path: Core statements built once, one short
transaction per write."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from sqlalchemy import Connection, bindparam, func, select, update

from tenantops.catalog import events
from tenantops.catalog._database import CatalogDatabase, database_now, now
from tenantops.catalog.models import ACTIVE_RUN_STATUSES, RunRow, StepRow, TenantRow, UtcDateTime
from tenantops.catalog.tenants import TENANT_UPDATE, output_values
from tenantops.errors import CatalogError, RunNotFoundError

__all__ = ["StepStore"]


class StepStore:
    """Record each attempt of each step of a run as it happens."""

    def __init__(self, database: CatalogDatabase) -> None:
        self._db = database

    def started(self, run_id: str, name: str) -> int | None:
        """Mark the step running (the run too, if it was pending) and return its attempt
        number, counting every attempt since the run was created; None (and nothing
        written) when the run is no longer pending or running (cancelled meanwhile)."""
        stamp = now()
        with self._db.write() as c:
            status = c.execute(_RUN_STATUS, {"p_run": run_id}).scalar()
            if status is None:
                raise RunNotFoundError(run_id)
            if status not in ACTIVE_RUN_STATUSES:
                return None
            attempts = c.execute(
                _STEP_RUNNING, {"p_run": run_id, "p_name": name, "p_now": stamp}).scalar()
            if attempts is None:
                raise _no_step(run_id, name)
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
            return name

    def succeeded(
        self, run_id: str, name: str, outputs: Mapping[str, Any],
        tenant_outputs: Mapping[str, object],
    ) -> None:
        """Record the step's outputs, and the tenant's resource outputs it produced."""
        stamp = now()
        with self._db.write() as c:
            _update_step(c, run_id, name, {
                "status": "succeeded", "finished_at": stamp, "outputs": dict(outputs),
                "error": None, "message": None,
            })
            if tenant_outputs:
                tenant_id, records = c.execute(_RUN_TENANT, {"p_run": run_id}).one()
                values = output_values(records, tenant_outputs)
                values["updated_at"] = stamp
                c.execute(TENANT_UPDATE, {"p_tenant": tenant_id, **values})

    def failed(self, run_id: str, name: str, error: str) -> None:
        """The step failed for good (the provider said so); a ``com.tenantops.step.failed``
        event is written with it."""
        with self._db.write() as c:
            _update_step(c, run_id, name, {"status": "failed", "finished_at": now(),
                                           "error": error})
            events.step_failed(c, run_id, name)


def _update_step(connection: Connection, run_id: str, name: str, values: dict[str, Any]) -> None:
    result = connection.execute(_STEP_UPDATE, {"p_run": run_id, "p_name": name, **values})
    if not getattr(result, "rowcount", 1):
        raise _no_step(run_id, name)


def _no_step(run_id: str, name: str) -> CatalogError:
    return CatalogError(
        f"run {run_id} has no step {name!r}; the plan changed under a running run"
    )


# Built once: the hot path then only binds values (no statement construction per call).
_RUN_STATUS = select(RunRow.status).where(RunRow.id == bindparam("p_run"))
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
_RUN_TENANT = (
    select(TenantRow.id, TenantRow.dns_records)
    .join(RunRow, RunRow.tenant_id == TenantRow.id).where(RunRow.id == bindparam("p_run"))
)
_RUN_RUNNING = (
    update(RunRow).where(RunRow.id == bindparam("p_run"), RunRow.status == "pending")
    .values(status="running", started_at=bindparam("p_now", type_=UtcDateTime()))
)
