"""SQLAlchemy 2 tables of the catalog. The schema itself is created by the Alembic migrations
in ``migrations/``; these classes must match them (a test compares the two)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
    true,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "ACTIVE_RUN_STATUSES",
    "SEARCH_OBJECTS",
    "AuditRow",
    "Base",
    "DomainAncestorRow",
    "DriftReportRow",
    "EventDeliveryRow",
    "EventDispatcherRow",
    "EventRow",
    "FleetRunRow",
    "FleetTargetRow",
    "IdempotencyKeyRow",
    "OrganizationDomainRow",
    "OrganizationInvitationRow",
    "OrganizationMemberRow",
    "OrganizationRow",
    "PlacementRow",
    "RateBudgetRow",
    "RetiringDomainRow",
    "RunRow",
    "StepAttemptRow",
    "StepRow",
    "TenantRow",
    "UtcDateTime",
    "WorkerRow",
]

ACTIVE_RUN_STATUSES = ("pending", "running")
_ACTIVE_RUN = text("status IN ('pending', 'running')")
_LIVE_TENANT = text("status <> 'offboarded'")
_UNROUTED = text("routed_at IS NULL")
_STOPPED_STEP = text("status IN ('running', 'waiting', 'retrying', 'failed', 'cancelled')")
_NOT_RETIRING = text("state <> 'retiring'")

SEARCH_OBJECTS = frozenset({
    "tenants_search", "tenants_search_data", "tenants_search_idx", "tenants_search_docsize",
    "tenants_search_config", "ix_tenants_search_trgm",
})
"""The tenant search's own objects (migration 0015, `tenantops.catalog.search`): an FTS5
table and its shadow tables on SQLite, a pg_trgm index on PostgreSQL. Not modelled here, as
SQLAlchemy has no type for either; the schema test leaves them out."""

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the catalog; pass an aware UTC datetime")
        value = value.astimezone(dt.timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if not isinstance(value, dt.datetime):
            raise TypeError(f"the catalog holds {value!r} where a timestamp belongs")
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class TenantRow(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    slug: Mapped[str] = mapped_column(String(32), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    custom_domain: Mapped[str] = mapped_column(String(64))
    plan: Mapped[str] = mapped_column(String(16))
    admin_email: Mapped[str] = mapped_column(String(254))
    tags: Mapped[dict[str, str]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    registered_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    # Outputs of the resources made for the tenant; never a secret's value.
    database_name: Mapped[str | None] = mapped_column(String(128))
    database_login: Mapped[str | None] = mapped_column(String(128))
    database_secret: Mapped[str | None] = mapped_column(String(128))
    dns_records: Mapped[dict[str, str]] = mapped_column(JSON)
    hostname: Mapped[str | None] = mapped_column(String(64))
    certificate_thumbprint: Mapped[str | None] = mapped_column(String(64))
    certificate_expires_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    organization_id: Mapped[str | None] = mapped_column(String(64))
    # The revision of the SaaS's own schema in the tenant's database, as the last migration
    # left it (tenantops.provisioning.schema_migrations); None: never migrated by tenantops.
    schema_revision: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index(
            "uq_tenants_live_custom_domain", "custom_domain", unique=True,
            sqlite_where=_LIVE_TENANT, postgresql_where=_LIVE_TENANT,
        ),
        Index("ix_tenants_created", "created_at", "id"),
        Index("ix_tenants_status_created", "status", "created_at", "id"),
        Index("ix_tenants_certificate_expires", "certificate_expires_at"),
    )


class DomainAncestorRow(Base):
    """A parent domain of a tenant's custom domain: ``contoso.com`` and ``com`` for
    ``portal.contoso.com``. The onboarding's domain claim finds the tenants below a domain by
    looking it up here (an index), where ``custom_domain LIKE '%.<domain>'`` read every
    tenant."""

    __tablename__ = "domain_ancestors"

    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    ancestor: Mapped[str] = mapped_column(String(64), primary_key=True)

    __table_args__ = (Index("ix_domain_ancestors_ancestor", "ancestor"),)


class RunRow(Base):
    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    options: Mapped[dict[str, Any]] = mapped_column(JSON)
    requested_by: Mapped[str] = mapped_column(String(256))
    workflow_id: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    started_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    error: Mapped[str | None] = mapped_column(Text)
    failed_step: Mapped[str | None] = mapped_column(String(64))
    retries: Mapped[int] = mapped_column(Integer, default=0)
    # Which workflow carries the run now: 0 is ``workflow_id`` itself, n is
    # ``<workflow_id>/<n>`` (a continuation after a long wait, a retry, a resumed stall).
    segment: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # W3C traceparent of the request that opened (or last retried) the run: the worker
    # continues that trace (tenantops.telemetry). Not a secret: IDs and a flag.
    trace_context: Mapped[str | None] = mapped_column(String(55))

    __table_args__ = (
        # At most one pending or running run per tenant, whatever the number of API instances.
        Index(
            "uq_runs_one_active_per_tenant", "tenant_id", unique=True,
            sqlite_where=_ACTIVE_RUN, postgresql_where=_ACTIVE_RUN,
        ),
        Index("ix_runs_tenant_created", "tenant_id", "created_at"),
        # The runs page and the overview: newest first, all or by status or kind.
        Index("ix_runs_created", "created_at", "id"),
        Index("ix_runs_status_created", "status", "created_at", "id"),
        Index("ix_runs_kind_created", "kind", "created_at", "id"),
    )


class StepRow(Base):
    __tablename__ = "steps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(64))
    provider: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    error: Mapped[str | None] = mapped_column(Text)
    message: Mapped[str | None] = mapped_column(Text)
    outputs: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The database's time of the first Pending in this attempt chain (None: not pending).
    pending_since: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        UniqueConstraint("run_id", "name"),
        # Where runs stand or stopped, by step (the runs page's step filter): only the steps
        # not pending and not succeeded, a small part of all.
        Index("ix_steps_stopped", "name", "run_id",
              sqlite_where=_STOPPED_STEP, postgresql_where=_STOPPED_STEP),
    )


class StepAttemptRow(Base):
    """One attempt of one step: when it began and ended, how it ended, and the resource
    it asked the provider for (resolved from the spec and earlier steps' outputs).

    ``execution`` is the run's ``retries`` when the attempt began: 0 for the first
    execution, 1 after the first retry. ``outcome`` is ``running`` until the attempt ends;
    one still ``running`` after a newer attempt began was interrupted (its worker stopped)."""

    __tablename__ = "step_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    step: Mapped[str] = mapped_column(String(64))
    number: Mapped[int] = mapped_column(Integer)
    execution: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    outcome: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    message: Mapped[str | None] = mapped_column(Text)
    resolved: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    __table_args__ = (UniqueConstraint("run_id", "step", "number"),)
class RetiringDomainRow(Base):
    """A custom domain a live tenant still serves after a domain change, until its grace
    period ends (``retire_at``, set when the grace period starts) and the update run that
    retires it removes it. Claimed like a custom domain: no other tenant may take it, nor a
    name above or below it (`tenantops.catalog.domain_claims`)."""

    __tablename__ = "retiring_domains"

    domain: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    run_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    retire_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (Index("ix_retiring_domains_tenant", "tenant_id"),)


class PlacementRow(Base):
    """One copy of a tenant's data on a database server (`tenantops.catalog.placement`):
    ``current`` (the copy the tenant is served from), ``target`` (being made by a move), or
    ``retiring`` (the copy a move left behind, kept until its grace period ends, then
    removed). ``database`` is the tenant's own database (mode ``database``) or the pooled
    one that holds its ``schema`` (mode ``schema``); ``details`` what else the plan chose
    (an Azure SQL elastic pool or SKU)."""

    __tablename__ = "placements"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(16))
    server: Mapped[str] = mapped_column(String(32))
    mode: Mapped[str] = mapped_column(String(16))
    database: Mapped[str] = mapped_column(String(63))
    schema: Mapped[str | None] = mapped_column(String(63))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    run_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    retire_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        # One current copy and one copy being made per tenant; old copies may be several.
        Index("uq_placements_tenant_state", "tenant_id", "state", unique=True,
              sqlite_where=_NOT_RETIRING, postgresql_where=_NOT_RETIRING),
        Index("ix_placements_server", "server"),
    )


class IdempotencyKeyRow(Base):
    """An ``Idempotency-Key`` a caller (``scope``: its tenant and object ID) sent, the request
    it came with, and the run it made."""

    __tablename__ = "idempotency_keys"

    scope: Mapped[str] = mapped_column(String(200), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class WorkerRow(Base):
    """A started engine (DBOS executor): who it is and when it last said it was alive."""

    __tablename__ = "workers"

    executor_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    last_seen: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    # The worker's clock minus the database's at its last beat (None: not measured).
    clock_offset_seconds: Mapped[float | None] = mapped_column(Float)


class RateBudgetRow(Base):
    """A rate budget's schedule (`tenantops.catalog.budgets`): the earliest time, in seconds
    since the epoch by the database's clock, at which its next call may go."""

    __tablename__ = "rate_budgets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    next_slot: Mapped[float] = mapped_column(Float)
    reserved: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class OrganizationRow(Base):
    __tablename__ = "organizations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    alias: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    redirect_url: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    # False while the tenant is suspended: no member may sign in (Keycloak's ``enabled``).
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # What the tenant's plan gives it (features, limits): Keycloak's organization attributes.
    attributes: Mapped[dict[str, str] | None] = mapped_column(JSON)


class OrganizationDomainRow(Base):
    __tablename__ = "organization_domains"

    domain: Mapped[str] = mapped_column(String(255), primary_key=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )


class OrganizationMemberRow(Base):
    __tablename__ = "organization_members"

    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    email: Mapped[str] = mapped_column(String(254), primary_key=True)
    role: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class OrganizationInvitationRow(Base):
    __tablename__ = "organization_invitations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    email: Mapped[str] = mapped_column(String(254))
    role: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)

    __table_args__ = (UniqueConstraint("organization_id", "email"),)


class EventRow(Base):
    """A lifecycle event (CloudEvents 1.0), written in the transaction of the change it
    reports: the outbox the dispatcher delivers from, and the history of its tenant.

    ``seq`` orders events: per tenant, in the order their transactions committed (each event
    is written after the tenant's row is locked). ``routed_at`` is set once the dispatcher has
    made a delivery for every sink whose filter the event matched."""

    __tablename__ = "events"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(32), unique=True)
    type: Mapped[str] = mapped_column(String(128))
    subject: Mapped[str] = mapped_column(String(200))
    tenant_slug: Mapped[str | None] = mapped_column(String(32))
    run_id: Mapped[str | None] = mapped_column(String(32))
    actor: Mapped[str | None] = mapped_column(String(256))
    request_id: Mapped[str | None] = mapped_column(String(64))
    time: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    routed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index("ix_events_tenant_seq", "tenant_slug", "seq"),
        Index("ix_events_run", "run_id"),
        Index("ix_events_time", "time"),
        Index("ix_events_unrouted", "seq", sqlite_where=_UNROUTED, postgresql_where=_UNROUTED),
    )


class EventDeliveryRow(Base):
    """One event on its way to one sink (a webhook, Event Grid): ``pending`` until the sink
    accepted it (``delivered``) or the retries ran out (``parked``). Per sink, the events of
    one subject (a tenant) go out one at a time, in ``event_seq`` order."""

    __tablename__ = "event_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_seq: Mapped[int] = mapped_column(ForeignKey("events.seq", ondelete="CASCADE"))
    sink: Mapped[str] = mapped_column(String(100))
    ordering_key: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    first_attempt_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    last_attempt_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("event_seq", "sink"),
        Index("ix_event_deliveries_queue", "status", "sink", "ordering_key", "event_seq"),
        Index("ix_event_deliveries_due", "status", "next_attempt_at"),
    )


class EventDispatcherRow(Base):
    """The lease that lets one worker at a time dispatch events (per-tenant order needs one
    sender): ``holder`` (an executor ID) until ``expires_at``, renewed while it runs."""

    __tablename__ = "event_dispatcher"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class AuditRow(Base):
    """One state-changing API call or dashboard action, refusals included. Append-only:
    the migration adds triggers that refuse UPDATE and DELETE (tenantops.catalog.audit)."""

    __tablename__ = "audit_records"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True)
    recorded_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    request_id: Mapped[str] = mapped_column(String(32))
    trace_id: Mapped[str | None] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(8))
    route: Mapped[str] = mapped_column(String(200))
    tenant: Mapped[str | None] = mapped_column(String(64))
    run_id: Mapped[str | None] = mapped_column(String(32))
    principal_name: Mapped[str | None] = mapped_column(String(256))
    principal_oid: Mapped[str | None] = mapped_column(String(64))
    principal_appid: Mapped[str | None] = mapped_column(String(64))
    client_ip: Mapped[str | None] = mapped_column(String(64))
    forwarded_for: Mapped[str | None] = mapped_column(String(256))
    outcome: Mapped[str] = mapped_column(String(16))
    status_code: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_audit_records_recorded_at", "recorded_at"),
        Index("ix_audit_records_tenant", "tenant", "id"),
        Index("ix_audit_records_principal_oid", "principal_oid", "id"),
    )


class DriftReportRow(Base):
    """The last drift check of one tenant: what its resources were found to be, compared
    with what the catalog records (``state``: ``in_sync``, ``drifted``, ``missing`` or
    ``unknown``; null until its first check), and the claim of the worker checking it now
    (``claimed_by`` until ``claimed_at`` is old: scheduled checks never run twice at once).
    ``resources`` is the report, resource by resource; never a secret's value."""

    __tablename__ = "drift_reports"

    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    state: Mapped[str | None] = mapped_column(String(16))
    checked_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    checked_by: Mapped[str | None] = mapped_column(String(256))
    resources: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    claimed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    reconcile_run_id: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (Index("ix_drift_reports_state_checked", "state", "checked_at"),)


class FleetRunRow(Base):
    """One operation applied to a selection of tenants (`tenantops.catalog.fleets`): its
    settings (canary, concurrency, batches, failure threshold), its status, and the lease of
    the worker that conducts it."""

    __tablename__ = "fleet_runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    operation: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    selection: Mapped[dict[str, Any]] = mapped_column(JSON)
    options: Mapped[dict[str, Any]] = mapped_column(JSON)
    canary: Mapped[int] = mapped_column(Integer)
    concurrency: Mapped[int] = mapped_column(Integer)
    batch_size: Mapped[int | None] = mapped_column(Integer)
    max_failures: Mapped[int | None] = mapped_column(Integer)
    max_failure_percent: Mapped[float | None] = mapped_column(Float)
    requested_by: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    stop_reason: Mapped[str | None] = mapped_column(Text)
    resumes: Mapped[int] = mapped_column(Integer, default=0)
    conductor: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index("ix_fleet_runs_status", "status"),
        Index("ix_fleet_runs_created", "created_at", "id"),
    )


class FleetTargetRow(Base):
    """One tenant of a fleet run: where it stands (pending, running, succeeded, failed,
    skipped, cancelled), the child run doing its work (``run_id``; ``attempt`` counts the
    runs opened for it), and its outcome."""

    __tablename__ = "fleet_targets"

    fleet_id: Mapped[str] = mapped_column(
        ForeignKey("fleet_runs.id", ondelete="CASCADE"), primary_key=True)
    tenant_slug: Mapped[str] = mapped_column(String(32), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    canary: Mapped[bool] = mapped_column(Boolean)
    batch: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    run_id: Mapped[str | None] = mapped_column(String(32))
    started_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    error: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    __table_args__ = (
        Index("ix_fleet_targets_status", "fleet_id", "status", "position"),
    )
