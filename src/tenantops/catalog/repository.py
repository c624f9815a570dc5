"""`Catalog`: the one source of truth for tenants, their runs and each step's status.

The API, the CLI, the dashboard and the engine all read and write through this facade. It
hands out frozen records, never ORM objects, and raises `CatalogError` (or a precise
subclass) instead of SQLAlchemy exceptions. Construction does no I/O; the database is opened
on first use. The schema is created and upgraded by `migrate` (Alembic).

Each aggregate has a module and a store of its own, reachable as an attribute:
`tenants` (`TenantStore`), `runs` (`RunStore`), `run_reports` (`RunReports`: runs across
tenants, for the dashboard), `steps` (`StepStore`), `worker_registry` (`WorkerStore`),
`idempotency_keys` (`IdempotencyStore`), `budgets` (`BudgetStore`: rate budgets' schedules),
`organizations` (`OrganizationStore`), `retiring_domains` (`RetiringDomainStore`),
`placements` (`PlacementStore`: which server holds each copy of a tenant's data), `events`
(`EventStore`: the outbox, each tenant's history and the deliveries to sinks), `fleets`
(`FleetStore`: fleet runs and their targets), `audit` (`AuditStore`, append-only) and `drift`
(`DriftStore`: each tenant's last drift check). The methods below are the callers' short
names for the stores' operations, kept so callers do not need to know which store holds what.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from tenantops.catalog._database import CatalogDatabase, now
from tenantops.catalog.audit import AuditStore
from tenantops.catalog.budgets import BudgetState, BudgetStore
from tenantops.catalog.domain_claims import RetiringDomain, RetiringDomainStore
from tenantops.catalog.drift import DriftRecord, DriftStore
from tenantops.catalog.events import EventStore
from tenantops.catalog.fleets import FleetStore
from tenantops.catalog.idempotency import IdempotencyClaim, IdempotencyStore
from tenantops.catalog.placement import Placement, PlacementStore
from tenantops.catalog.run_reports import RunReports
from tenantops.catalog.runs import (
    OpenedRun,
    Run,
    RunKind,
    RunRequest,
    RunStatus,
    RunStore,
    StepTemplate,
)
from tenantops.catalog.steps import RunProgress, StepStore
from tenantops.catalog.tenants import Tenant, TenantFields, TenantStatus, TenantStore
from tenantops.catalog.workers import Worker, WorkerStore

if TYPE_CHECKING:
    from tenantops.catalog.organizations import OrganizationStore
    from tenantops.config import Settings

__all__ = ["Catalog", "catalog_url"]


def catalog_url(settings: Settings) -> str:
    """The configured catalog URL, or the embedded default under the data directory."""
    if settings.catalog.url:
        return settings.catalog.url
    return f"sqlite:///{(settings.data_dir / 'catalog.sqlite').resolve()}"


class Catalog:
    """Tenants, runs, steps, workers, idempotency keys and the audit trail in one SQL
    database (SQLite by default, or PostgreSQL), one store per aggregate."""

    def __init__(self, url: str, *, pool_size: int = 10,
                 clock: Callable[[], dt.datetime] = now) -> None:
        self.database = CatalogDatabase(url, pool_size=pool_size)
        self.tenants = TenantStore(self.database)
        self.runs = RunStore(self.database)
        self.run_reports = RunReports(self.database)
        self.steps = StepStore(self.database, clock=clock)
        self.worker_registry = WorkerStore(self.database)
        self.idempotency_keys = IdempotencyStore(self.database)
        self.events = EventStore(self.database)
        self.audit = AuditStore(self.database)
        self.retiring_domains = RetiringDomainStore(self.database)
        self.budgets = BudgetStore(self.database)
        self.drift = DriftStore(self.database)
        self.placements = PlacementStore(self.database)
        self.fleets = FleetStore(self.database)
        self._organizations: OrganizationStore | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Catalog:
        return cls(catalog_url(settings))

    @property
    def url(self) -> str:
        """The database URL with any password hidden, for messages and logs."""
        return self.database.url

    @property
    def dialect(self) -> str:
        return self.database.dialect

    @property
    def engine(self) -> Engine:
        return self.database.engine

    @property
    def organizations(self) -> OrganizationStore:
        """Organizations of the ``local`` organization provider, kept in this catalog."""
        if self._organizations is None:
            from tenantops.catalog.organizations import OrganizationStore

            self._organizations = OrganizationStore(self.database)
        return self._organizations

    def close(self) -> None:
        """Close every pooled connection (the catalog can be used again afterwards)."""
        self.database.close()

    def migrate(self) -> None:
        """Create or upgrade the schema to the latest migration; safe to call concurrently."""
        self.database.migrate()

    def ping(self) -> None:
        """Reach the database (``SELECT 1``); `CatalogError` when it cannot."""
        self.database.ping()

    @contextmanager
    def _session(self, *, write: bool) -> Iterator[Session]:
        with self.database.session(write=write) as session:
            yield session

    # -- tenants ------------------------------------------------------------------------

    def find_tenant(self, slug: str) -> Tenant | None:
        return self.tenants.find(slug)

    def get_tenant(self, slug: str) -> Tenant:
        return self.tenants.get(slug)

    def tenant_for_hostname(self, hostname: str) -> Tenant | None:
        return self.tenants.for_hostname(hostname)

    def list_tenants(self, status: TenantStatus | None = None) -> list[Tenant]:
        return self.tenants.all(status)

    def page_tenants(
        self, *, status: TenantStatus | None = None, search: str | None = None,
        limit: int = 50, offset: int = 0,
    ) -> tuple[list[Tenant], int]:
        return self.tenants.page(status=status, search=search, limit=limit, offset=offset)

    def register_tenant(self, slug: str) -> Tenant:
        return self.tenants.register(slug)

    def set_tenant_status(self, slug: str, status: TenantStatus) -> Tenant:
        return self.tenants.set_status(slug, status)

    def update_tenant_outputs(self, slug: str, updates: Mapping[str, object]) -> Tenant:
        return self.tenants.update_outputs(slug, updates)

    def retiring_domains_of(self, slug: str) -> list[RetiringDomain]:
        return self.retiring_domains.of(slug)

    # -- placement ----------------------------------------------------------------------

    def placement_of(self, slug: str) -> Placement | None:
        """Where ``slug`` is served from: its current copy (None before its database)."""
        return self.placements.current(slug)

    def placements_of(self, slug: str) -> list[Placement]:
        """Every copy of ``slug``'s data: current, a move's target, old ones retiring."""
        return self.placements.of(slug)

    def server_loads(self) -> dict[str, int]:
        """How many tenant copies each database server holds."""
        return self.placements.loads()

    # -- runs ---------------------------------------------------------------------------

    def open_run(self, request: RunRequest) -> OpenedRun:
        return self.runs.open(request)

    def open_onboarding(
        self, spec: TenantFields, *, requested_by: str, steps: Sequence[StepTemplate],
        options: Mapping[str, Any] | None = None, idempotency: IdempotencyClaim | None = None,
    ) -> OpenedRun:
        return self.runs.open_onboarding(spec, requested_by=requested_by, steps=steps,
                                         options=options, idempotency=idempotency)

    def open_offboarding(
        self, slug: str, *, requested_by: str, keep_database: bool,
        steps: Sequence[StepTemplate], options: Mapping[str, Any] | None = None,
        retiring: tuple[str, ...] | None = None,
    ) -> OpenedRun:
        return self.runs.open_offboarding(slug, requested_by=requested_by,
                                          keep_database=keep_database, steps=steps,
                                          options=options, retiring=retiring)

    def get_run(self, run_id: str) -> Run:
        return self.runs.get(run_id)

    def latest_run(self, slug: str, *, kind: RunKind | None = None) -> Run | None:
        return self.runs.latest(slug, kind=kind)

    def list_runs(self, slug: str | None = None, *, status: RunStatus | None = None
                  ) -> list[Run]:
        return self.runs.all(slug, status=status)

    def tenant_and_runs(self, slug: str) -> tuple[Tenant, list[Run]]:
        return self.runs.of_tenant(slug)

    def active_runs(self) -> list[Run]:
        return self.runs.active()

    def count_active_runs(self) -> dict[str, int]:
        return self.runs.count_active()

    def finish_run(
        self, run_id: str, status: Literal["succeeded", "failed"], *,
        error: str | None = None, failed_step: str | None = None,
    ) -> Run:
        return self.runs.finish(run_id, status, error=error, failed_step=failed_step)

    def close_run(
        self, run_id: str, status: Literal["succeeded", "failed"], *,
        error: str | None = None, failed_step: str | None = None,
    ) -> str:
        return self.runs.close(run_id, status, error=error, failed_step=failed_step)

    def cancel_run(self, run_id: str, *, by: str | None = None) -> Run:
        return self.runs.cancel(run_id, by=by)

    def reopen_run(self, run_id: str, *, by: str | None = None) -> Run:
        return self.runs.reopen(run_id, by=by)

    def advance_run(self, run_id: str, *, to_segment: int) -> bool:
        return self.runs.advance(run_id, to_segment=to_segment)

    # -- steps --------------------------------------------------------------------------

    def run_progress(self, run_id: str) -> RunProgress:
        return self.steps.progress(run_id)

    def step_started(self, run_id: str, name: str, *,
                     resolved: Mapping[str, Any] | None = None) -> int | None:
        return self.steps.started(run_id, name, resolved=resolved)

    def step_waiting(
        self, run_id: str, name: str, *, status: Literal["waiting", "retrying"], message: str
    ) -> None:
        self.steps.waiting(run_id, name, status=status, message=message)

    def step_waiting_for_budget(self, run_id: str, name: str, *, message: str) -> None:
        self.steps.waiting_for_budget(run_id, name, message=message)

    def step_pending(self, run_id: str, name: str, *, message: str) -> float:
        return self.steps.pending(run_id, name, message=message)

    def step_stalled(self, run_id: str, message: str) -> str | None:
        return self.steps.stalled(run_id, message)

    def step_succeeded(
        self, run_id: str, name: str, outputs: Mapping[str, object],
        tenant_outputs: Mapping[str, object], *, message: str | None = None,
        closes_run: bool = False, then_start: str | None = None,
        then_resolved: Mapping[str, Any] | None = None,
    ) -> int | None:
        return self.steps.succeeded(run_id, name, outputs, tenant_outputs, message=message,
                                    closes_run=closes_run, then_start=then_start,
                                    then_resolved=then_resolved)

    def step_failed(self, run_id: str, name: str, error: str) -> None:
        self.steps.failed(run_id, name, error)

    def rewind_steps(self, run_id: str, names: list[str], *, message: str) -> None:
        self.steps.rewind(run_id, names, message=message)

    # -- workers ------------------------------------------------------------------------

    def worker_seen(self, executor_id: str, *, host: str, pid: int) -> float:
        return self.worker_registry.seen(executor_id, host=host, pid=pid)

    def worker_left(self, executor_id: str, *, pid: int) -> None:
        self.worker_registry.left(executor_id, pid=pid)

    def forget_silent_workers(self, silent_for: dt.timedelta) -> int:
        return self.worker_registry.forget_silent(silent_for)

    def workers(self) -> list[Worker]:
        return self.worker_registry.all()

    def live_workers(self, within: dt.timedelta) -> set[str]:
        return self.worker_registry.alive(within)

    # -- rate budgets -------------------------------------------------------------------

    def reserve_call(self, budget: str, *, interval: float, burst: int = 1) -> float:
        return self.budgets.reserve(budget, interval=interval, burst=burst)

    def budget_states(self, names: list[str]) -> list[BudgetState]:
        return self.budgets.states(names)
    # -- drift --------------------------------------------------------------------------

    def check_domain_free(self, domain: str, slug: str) -> None:
        """`DomainConflictError` when ``domain`` is equal to, above or below a name another
        live tenant holds (what opening a run of ``slug`` with it would refuse); reads only."""
        from tenantops.catalog.domain_claims import check_domain_free

        with self.database.session(write=False) as s:
            check_domain_free(s, domain, slug)

    def last_drift(self, slug: str) -> DriftRecord | None:
        return self.drift.get(slug)

    # -- idempotency keys ---------------------------------------------------------------

    def find_idempotency_key(self, scope: str, key: str) -> tuple[str, str] | None:
        return self.idempotency_keys.find(scope, key)
