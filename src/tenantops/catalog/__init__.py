"""The tenant catalog: tenants, their runs and steps, workers, idempotency keys, local
organizations, where each tenant's data is placed, lifecycle events (the outbox and each
tenant's history), the audit trail, and each tenant's last drift check.

SQLAlchemy 2 models, one module and store per aggregate (`tenants`, `runs`, `steps`,
`workers`, `idempotency`, `domain_claims`, `organizations`, `placement`, `events`, `fleets`,
`audit`, `drift`; and `run_reports`, runs across tenants for the dashboard, with `search` for
tenants), the `Catalog` facade that callers use, and Alembic migrations. SQLite by default
(``<data_dir>/catalog.sqlite``); PostgreSQL when ``catalog.url`` says so.
"""

from __future__ import annotations

from tenantops.catalog._database import CatalogDatabase
from tenantops.catalog.audit import AuditEntry, AuditOutcome, AuditRecord, AuditStore, Channel
from tenantops.catalog.budgets import BudgetState, BudgetStore
from tenantops.catalog.domain_claims import RetiringDomain, RetiringDomainStore
from tenantops.catalog.drift import DriftRecord, DriftState, DriftStore
from tenantops.catalog.durations import attempt_seconds, run_seconds, step_seconds
from tenantops.catalog.events import Delivery, DeliveryStatus, Event, EventStore, HistoryEntry
from tenantops.catalog.fleets import (
    FleetCounts,
    FleetRun,
    FleetStatus,
    FleetStore,
    FleetTarget,
    NewFleet,
    NewTarget,
    TargetOutcome,
    TargetStatus,
)
from tenantops.catalog.idempotency import IdempotencyClaim, IdempotencyStore
from tenantops.catalog.organizations import (
    DomainTakenError,
    Invitation,
    Member,
    Organization,
    OrganizationStore,
)
from tenantops.catalog.placement import (
    CopyState,
    Placement,
    PlacementStore,
    ServerSlot,
    choose_server,
)
from tenantops.catalog.repository import Catalog, catalog_url
from tenantops.catalog.run_reports import (
    ActiveRun,
    CurrentStep,
    RunFilter,
    RunReports,
    StepOutcomeCount,
    StepSpan,
)
from tenantops.catalog.runs import (
    Attempt,
    AttemptOutcome,
    KindRules,
    OpenedRun,
    Run,
    RunKind,
    RunRequest,
    RunStatus,
    RunStore,
    Step,
    StepStatus,
    StepTemplate,
    is_suspended,
    segment_workflow_id,
    status_after,
)
from tenantops.catalog.steps import RunProgress, StepStore
from tenantops.catalog.tenants import (
    Tenant,
    TenantFields,
    TenantStatus,
    TenantStore,
)
from tenantops.catalog.workers import Worker, WorkerStore

__all__ = [
    "ActiveRun",
    "Attempt",
    "AttemptOutcome",
    "AuditEntry",
    "AuditOutcome",
    "AuditRecord",
    "AuditStore",
    "BudgetState",
    "BudgetStore",
    "Catalog",
    "CatalogDatabase",
    "Channel",
    "CopyState",
    "CurrentStep",
    "Delivery",
    "DeliveryStatus",
    "DomainTakenError",
    "DriftRecord",
    "DriftState",
    "DriftStore",
    "Event",
    "EventStore",
    "FleetCounts",
    "FleetRun",
    "FleetStatus",
    "FleetStore",
    "FleetTarget",
    "HistoryEntry",
    "IdempotencyClaim",
    "IdempotencyStore",
    "Invitation",
    "KindRules",
    "Member",
    "NewFleet",
    "NewTarget",
    "OpenedRun",
    "Organization",
    "OrganizationStore",
    "Placement",
    "PlacementStore",
    "RetiringDomain",
    "RetiringDomainStore",
    "Run",
    "RunFilter",
    "RunKind",
    "RunProgress",
    "RunReports",
    "RunRequest",
    "RunStatus",
    "RunStore",
    "ServerSlot",
    "Step",
    "StepOutcomeCount",
    "StepSpan",
    "StepStatus",
    "StepStore",
    "StepTemplate",
    "TargetOutcome",
    "TargetStatus",
    "Tenant",
    "TenantFields",
    "TenantStatus",
    "TenantStore",
    "Worker",
    "WorkerStore",
    "attempt_seconds",
    "catalog_url",
    "choose_server",
    "is_suspended",
    "run_seconds",
    "segment_workflow_id",
    "status_after",
    "step_seconds",
]
