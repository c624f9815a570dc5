"""The API's request and response bodies, with the examples the OpenAPI document shows."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field

from tenantops.catalog import (
    Attempt,
    AuditRecord,
    BudgetState,
    FleetRun,
    FleetTarget,
    Placement,
    RetiringDomain,
    Run,
    Step,
    Tenant,
    Worker,
    attempt_seconds,
    run_seconds,
    step_seconds,
)
from tenantops.config import BudgetSettings
from tenantops.log import redact, redact_values
from tenantops.provisioning.adoption import AdoptionResult
from tenantops.provisioning.domains import pending_domain, recorded_domain_kind
from tenantops.provisioning.drift import DriftReport, ResourceDrift
from tenantops.provisioning.fleet import FleetPreview
from tenantops.provisioning.plans import Preview
from tenantops.provisioning.run_requests import MAX_GRACE_SECONDS, MAX_REASON_LENGTH

__all__ = [
    "AdoptionOut",
    "AttemptOut",
    "AuditOut",
    "AuditPage",
    "CertificateOut",
    "CertificatePage",
    "ChangeAccepted",
    "DifferenceOut",
    "DnsRecordOut",
    "DomainOut",
    "DriftCheckOut",
    "DriftCheckRequest",
    "DriftOut",
    "DriftPage",
    "FleetPreviewOut",
    "FleetRequestIn",
    "FleetRunOut",
    "FleetRunPage",
    "FleetStatusName",
    "FleetTargetOut",
    "FleetTargetPage",
    "ImportOut",
    "ImportRequest",
    "MoveRequest",
    "PlacementOut",
    "PlannedChangeOut",
    "PreviewOut",
    "Problem",
    "ProblemDetail",
    "ReconcileRequest",
    "ResourceDriftOut",
    "ResumeRequest",
    "RetiringDomainOut",
    "RunKindName",
    "RunOut",
    "SelectionIn",
    "StepOut",
    "SuspendRequest",
    "SuspensionOut",
    "TargetPreviewOut",
    "TargetStatusName",
    "TenantAccepted",
    "TenantDetail",
    "TenantOut",
    "TenantPage",
    "TenantPatch",
    "TenantRequest",
    "TenantStatusName",
    "WorkerOut",
    "WorkersOut",
]

RunKindName = Literal["onboard", "offboard", "update", "suspend", "resume", "reconcile",
                      "adopt", "migrate", "rotate", "renew"]
TenantStatusName = Literal["provisioning", "active", "updating", "suspending", "suspended",
                           "resuming", "reconciling", "failed", "offboarding", "offboarded"]


class TenantRequest(BaseModel):
    """A tenant to onboard. Validated by `TenantSpec`; every error names field, value, rule."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{
            "slug": "acme", "display_name": "Acme Corporation",
            "custom_domain": "acme.tenants.example.com", "plan": "standard",
            "admin_email": "admin@acme.example", "tags": {"region": "westeurope"},
        }]},
    )

    # The constraints are documented in the schema but enforced by TenantSpec alone, so every
    # refusal has the same shape and names field, value and rule.
    slug: str = Field(description="lowercase DNS label, 3 to 32 characters",
                      json_schema_extra={"pattern": "^[a-z0-9](?:[a-z0-9-]{1,30})[a-z0-9]$"})
    display_name: str = Field(description="the tenant's name as people see it",
                              json_schema_extra={"minLength": 1, "maxLength": 100})
    custom_domain: str = Field(description="hostname the tenant's users visit, at most 64 chars",
                               json_schema_extra={"maxLength": 64})
    plan: str = Field(default="standard", description="one of the plans of the settings' "
                      "[plans] (free, standard or premium when there is none); the "
                      "served OpenAPI document lists them")
    admin_email: str = Field(description="the first administrator, invited to the organization",
                             json_schema_extra={"format": "email", "maxLength": 254})
    tags: dict[str, str] = Field(default_factory=dict)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _clean(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    cleaned = redact_values(value)
    return cleaned if isinstance(cleaned, dict) else None


class AttemptOut(BaseModel):
    """One attempt of a step (see `tenantops.catalog.durations` for ``duration_seconds``)."""

    number: int = Field(description="counts every attempt of the step since the run began")
    execution: int = Field(description="0: the run's first execution; n: after its n-th retry")
    started_at: dt.datetime
    finished_at: dt.datetime | None
    outcome: Literal["running", "waiting", "retrying", "succeeded", "failed", "interrupted"]
    duration_seconds: float | None
    error: str | None
    message: str | None
    resolved: dict[str, Any] | None = Field(
        description="the resource this attempt asked the provider for (secrets redacted)")

    @classmethod
    def of(cls, attempt: Attempt, now: dt.datetime) -> AttemptOut:
        return cls(number=attempt.number, execution=attempt.execution,
                   started_at=attempt.started_at, finished_at=attempt.finished_at,
                   outcome=attempt.outcome,
                   duration_seconds=_seconds(attempt_seconds(attempt, now)),
                   error=redact(attempt.error) if attempt.error else None,
                   message=attempt.message, resolved=_clean(attempt.resolved))


class StepOut(BaseModel):
    name: str
    provider: str
    action: str
    status: str
    attempts: int
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    duration_seconds: float | None = Field(
        description="per execution, first attempt's start to last attempt's end, summed")
    error: str | None
    message: str | None
    resolved: dict[str, Any] | None = Field(
        description="the resource the latest attempt asked for (secrets redacted)")
    outputs: dict[str, Any]
    history: list[AttemptOut] = Field(description="every attempt, oldest first")

    @classmethod
    def of(cls, step: Step, now: dt.datetime | None = None) -> StepOut:
        now = now or _now()
        return cls(name=step.name, provider=step.provider, action=step.action,
                   status=step.status, attempts=step.attempts, started_at=step.started_at,
                   finished_at=step.finished_at,
                   duration_seconds=_seconds(step_seconds(step, now)), error=step.error,
                   message=step.message, resolved=_clean(step.resolved),
                   outputs=_clean(step.outputs) or {},
                   history=[AttemptOut.of(a, now) for a in step.history])


class RunOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "3f2b0c8e5a7d4e1f9b6c2a0d8e4f1a2b", "tenant": "acme", "kind": "onboard",
        "status": "running", "requested_by": "aa-onboarding (7bf719db-...)",
        "created_at": "2026-11-30T05:00:00Z", "started_at": "2026-11-30T05:00:01Z",
        "finished_at": None, "error": None, "failed_step": None, "retries": 0,
        "steps": [{"name": "register_tenant", "provider": "catalog:sqlite",
                   "action": "ensure", "status": "succeeded", "attempts": 1,
                   "started_at": "2026-11-30T05:00:01Z", "finished_at": "2026-11-30T05:00:01Z",
                   "duration_seconds": 0.012, "error": None, "message": None,
                   "resolved": {"slug": "acme"}, "outputs": {},
                   "history": [{"number": 1, "execution": 0,
                                "started_at": "2026-11-30T05:00:01Z",
                                "finished_at": "2026-11-30T05:00:01Z", "outcome": "succeeded",
                                "duration_seconds": 0.012, "error": None, "message": None,
                                "resolved": {"slug": "acme"}}]}],
        "duration_seconds": 0.012,
    }]})

    id: str
    tenant: str
    kind: RunKindName
    status: Literal["pending", "running", "succeeded", "failed", "cancelled"]
    requested_by: str
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    error: str | None
    failed_step: str | None
    retries: int
    options: dict[str, Any]
    steps: list[StepOut]
    duration_seconds: float | None = Field(
        description="per execution, first attempt's start to last attempt's end, summed; "
        "time spent failed, waiting for a retry, is not counted")

    @classmethod
    def of(cls, run: Run, now: dt.datetime | None = None) -> RunOut:
        now = now or _now()
        return cls(id=run.id, tenant=run.tenant_slug, kind=run.kind, status=run.status,
                   requested_by=run.requested_by, created_at=run.created_at,
                   started_at=run.started_at, finished_at=run.finished_at, error=run.error,
                   failed_step=run.failed_step, retries=run.retries, options=run.options,
                   steps=[StepOut.of(s, now) for s in run.steps],
                   duration_seconds=_seconds(run_seconds(run, now)))


class TenantOut(BaseModel):
    slug: str
    display_name: str
    custom_domain: str
    plan: str
    admin_email: str
    tags: dict[str, str]
    status: TenantStatusName
    created_at: dt.datetime
    updated_at: dt.datetime
    resources: dict[str, Any] = Field(
        description="what exists for the tenant: database, dns_records, hostname, "
        "certificate (thumbprint, expires_at), organization")

    @classmethod
    def of(cls, tenant: Tenant) -> TenantOut:
        return cls(
            slug=tenant.slug, display_name=tenant.display_name,
            custom_domain=tenant.custom_domain, plan=tenant.plan,
            admin_email=tenant.admin_email, tags=tenant.tags, status=tenant.status,
            created_at=tenant.created_at, updated_at=tenant.updated_at,
            resources={
                "database": ({"name": tenant.database_name, "login": tenant.database_login}
                             if tenant.database_name else None),
                "dns_records": tenant.dns_records,
                "hostname": tenant.hostname,
                "certificate": ({"thumbprint": tenant.certificate_thumbprint,
                                 "expires_at": tenant.certificate_expires_at}
                                if tenant.certificate_thumbprint else None),
                "organization": tenant.organization_id,
            },
        )


class DnsRecordOut(BaseModel):
    type: Literal["CNAME", "TXT"]
    name: str
    value: str


class DomainOut(BaseModel):
    """The tenant's custom domain: whose DNS holds its records and, while an onboarding
    waits for them, the records its customer must publish."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "name": "portal.contoso.com", "kind": "customer", "waiting": True,
        "pending_records": [
            {"type": "CNAME", "name": "portal.contoso.com",
             "value": "func-tenantops.azurewebsites.net"},
            {"type": "TXT", "name": "asuid.portal.contoso.com", "value": "7A1E...C3"},
            {"type": "TXT", "name": "_tenantops-challenge.portal.contoso.com",
             "value": "4f1c2b9e0d3a4c5b8e7f6a1b2c3d4e5f"}],
        "status": "waiting",
        "message": "waiting for the customer to publish in the DNS of portal.contoso.com: ...",
    }]})

    name: str
    kind: Literal["platform", "customer"] = Field(
        description="platform: in the platform's DNS zones, written by tenantops; customer: "
        "in the customer's DNS, published by the customer")
    waiting: bool = Field(description="an onboarding waits for the customer's records")
    pending_records: list[DnsRecordOut] = Field(
        description="the records the customer must publish, while waiting")
    status: str | None = Field(description="the waiting step's status")
    message: str | None = Field(description="what the authoritative servers answer so far")

    @classmethod
    def of(cls, tenant: Tenant, runs: list[Run]) -> DomainOut:
        kind = recorded_domain_kind(runs)
        pending = pending_domain(tenant.custom_domain, runs)
        if pending is None:
            return cls(name=tenant.custom_domain, kind=kind, waiting=False, pending_records=[],
                       status=None, message=None)
        return cls(name=tenant.custom_domain, kind=kind, waiting=True,
                   pending_records=[DnsRecordOut.model_validate(r) for r in pending.records],
                   status=pending.status, message=pending.message)


class RetiringDomainOut(BaseModel):
    """A previous custom domain the tenant still serves after a domain change."""

    domain: str
    run_id: str = Field(description="the update that retires it")
    retire_at: dt.datetime | None = Field(
        description="when it stops being served (None: the grace period has not started)")

    @classmethod
    def of(cls, retiring: RetiringDomain) -> RetiringDomainOut:
        return cls(domain=retiring.domain, run_id=retiring.run_id, retire_at=retiring.retire_at)


class PlacementOut(BaseModel):
    """A copy of the tenant's data: where it is, and whether it is the one the tenant is
    served from (``current``), being made by a move (``target``), or kept for a move's
    grace period (``retiring``)."""

    state: Literal["current", "target", "retiring"]
    server: str
    mode: Literal["database", "schema"]
    database: str
    schema_name: str | None = Field(
        default=None, description="the tenant's schema in the pooled database (mode schema)")
    details: dict[str, Any] = Field(default_factory=dict,
                                    description="what else the plan chose (elastic_pool, sku)")
    run_id: str | None = Field(description="the run that made the copy (a retiring one: the "
                               "move that retires it)")
    retire_at: dt.datetime | None = None

    @classmethod
    def of(cls, placement: Placement) -> PlacementOut:
        return cls(state=placement.state, server=placement.server, mode=placement.mode,
                   database=placement.database, schema_name=placement.schema,
                   details=dict(placement.details), run_id=placement.run_id,
                   retire_at=placement.retire_at)


class MoveRequest(BaseModel):
    """Move a tenant's data to another server (or into its plan's mode), or undo a move that
    did not switch (``abandon``)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"server": "pg-2", "reason": "rebalance"}, {"abandon": True}]})

    server: str | None = Field(
        default=None, description="the server (providers.database.servers); none: the "
        "least-loaded server of the tenant plan's pool with room")
    abandon: bool = Field(default=False, description="undo an unfinished move: drop its copy, "
                          "the tenant's login signs in to its data again")
    grace_seconds: float | None = Field(
        default=None, description="how long the old copy is kept (default: "
        "providers.database.move_grace_seconds)")
    reason: str | None = Field(default=None, max_length=MAX_REASON_LENGTH)


class SuspensionOut(BaseModel):
    """Why and since when a tenant is suspended, and who asked."""

    reason: str | None
    since: dt.datetime | None
    requested_by: str
    run_id: str

    @classmethod
    def of(cls, tenant: Tenant, runs: list[Run]) -> SuspensionOut | None:
        if tenant.status not in ("suspended", "suspending", "resuming"):
            return None
        suspensions = [r for r in runs if r.kind == "suspend"]
        if not suspensions:
            return None
        run = suspensions[-1]
        return cls(reason=run.options.get("reason"), since=run.finished_at,
                   requested_by=run.requested_by, run_id=run.id)


class TenantDetail(TenantOut):
    domain: DomainOut
    retiring_domains: list[RetiringDomainOut] = Field(
        default_factory=list, description="previous custom domains still served during the "
        "grace period of a domain change")
    suspension: SuspensionOut | None = None
    placements: list[PlacementOut] = Field(
        default_factory=list, description="where the tenant's data is: the copy it is served "
        "from first, then a move's copy being made, then old copies kept for a grace period")
    runs: list[RunOut]


class TenantPatch(BaseModel):
    """A change to a tenant: each field given is set; tags are merged (a null value removes
    the tag). Validated by `TenantSpec` like an onboarding."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{
            "custom_domain": "portal.acme.example", "admin_email": "it@acme.example",
            "remove_previous_admin": True, "tags": {"tier": "gold", "trial": None},
            "reason": "customer moved to their own domain",
        }]},
    )

    display_name: str | None = None
    custom_domain: str | None = Field(
        default=None, description="the new hostname; the previous one keeps serving for the "
        "grace period, then is removed")
    plan: str | None = Field(default=None, description="one of the plans of the settings' "
                             "[plans]; the served OpenAPI document lists them")
    admin_email: str | None = Field(default=None, description="invited as administrator")
    tags: dict[str, str | None] = Field(default_factory=dict)
    remove_previous_admin: bool = Field(
        default=False, description="with admin_email: remove the previous administrator")
    grace_seconds: float | None = Field(
        default=None, ge=0, le=MAX_GRACE_SECONDS,
        description="how long the previous domain keeps serving (default: the setting "
        "domains.change_grace_seconds)")
    reason: str | None = Field(default=None, max_length=MAX_REASON_LENGTH,
                               description="why, kept with the run in the tenant's history")


class SuspendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"reason": "invoice 2026-11 unpaid"}]})

    reason: str = Field(max_length=MAX_REASON_LENGTH,
                        description="why, kept with the run in the tenant's history")


class ResumeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=MAX_REASON_LENGTH)


class PlannedChangeOut(BaseModel):
    step: str
    provider: str
    action: Literal["create", "update", "unchanged", "delete", "absent", "check"]
    resource: str
    summary: str


class PreviewOut(BaseModel):
    """What a run would do, before anything is changed (``dry_run``)."""

    dry_run: Literal[True] = True
    kind: RunKindName
    tenant: str
    diff: dict[str, dict[str, Any]] = Field(
        description="field -> {from, to}: what an update changes")
    changes: list[PlannedChangeOut]

    @classmethod
    def of(cls, preview: Preview) -> PreviewOut:
        return cls(kind=preview.kind, tenant=preview.slug,
                   diff={k: dict(v) for k, v in preview.diff.items()},
                   changes=[PlannedChangeOut(step=c.step, provider=c.provider,
                                             action=c.action, resource=c.resource,
                                             summary=c.summary) for c in preview.changes])


class ChangeAccepted(BaseModel):
    """``202``: the tenant and the run that changes it (poll ``GET /api/runs/{id}``);
    ``200`` with ``run`` null when the tenant already is as asked."""

    tenant: TenantOut
    run: RunOut | None


class TenantAccepted(BaseModel):
    """``202``: the tenant and the run that makes it; poll ``GET /api/runs/{id}``."""

    tenant: TenantOut
    run: RunOut


class TenantPage(BaseModel):
    items: list[TenantOut]
    total: int
    limit: int
    offset: int


class ProblemDetail(BaseModel):
    field: str
    value: Any
    rule: str


class Problem(BaseModel):
    """Every refusal: a machine-readable ``error``, a sentence saying what to do, details."""

    error: str
    error_description: str
    details: list[ProblemDetail] = Field(default_factory=list)


class WorkerOut(BaseModel):
    executor_id: str
    host: str
    pid: int
    started_at: dt.datetime
    last_seen: dt.datetime = Field(description="by the database's clock")
    seen_seconds_ago: float = Field(description="by the database's clock")
    alive: bool = Field(description="seen within engine.worker_timeout_seconds")
    clock_offset_seconds: float | None = Field(
        description="the worker's clock minus the database's at its last beat (positive: "
        "ahead); None when not measured")
    clock_skewed: bool = Field(
        description="the offset exceeds engine.clock_skew_tolerance_seconds: fix the host's "
        "time (its durable waits are timed by its own clock)")


class WorkersOut(BaseModel):
    """The workers that execute runs. With none alive, requested runs wait in the queue.
    Times are the database's, the one clock every worker shares."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "alive": 1, "timeout_seconds": 120.0, "clock_skew_tolerance_seconds": 5.0,
        "skewed": 0,
        "workers": [{"executor_id": "worker-1", "host": "func-tenantops-0", "pid": 412,
                     "started_at": "2026-11-30T05:00:00Z", "last_seen": "2026-11-30T05:10:30Z",
                     "seen_seconds_ago": 4.2, "alive": True, "clock_offset_seconds": 0.003,
                     "clock_skewed": False}],
    }]})

    alive: int
    timeout_seconds: float
    clock_skew_tolerance_seconds: float
    skewed: int = Field(description="workers whose clock is off by more than the tolerance")
    workers: list[WorkerOut]

    @classmethod
    def of(cls, workers: list[Worker], timeout_seconds: float,
           clock_skew_tolerance_seconds: float) -> WorkersOut:
        within = dt.timedelta(seconds=timeout_seconds)
        listed = [WorkerOut(
            executor_id=w.executor_id, host=w.host, pid=w.pid, started_at=w.started_at,
            last_seen=w.last_seen, seen_seconds_ago=round(w.seen_seconds_ago, 3),
            alive=w.alive(within),
            clock_offset_seconds=(None if w.clock_offset_seconds is None
                                  else round(w.clock_offset_seconds, 3)),
            clock_skewed=(w.clock_offset_seconds is not None
                          and abs(w.clock_offset_seconds) > clock_skew_tolerance_seconds),
        ) for w in workers]
        return cls(alive=sum(w.alive for w in listed), timeout_seconds=timeout_seconds,
                   clock_skew_tolerance_seconds=clock_skew_tolerance_seconds,
                   skewed=sum(w.clock_skewed for w in listed), workers=listed)


class AuditOut(BaseModel):
    """One audit record: who did what, to which tenant or run, from where, and the outcome."""

    id: int = Field(description="sequence number; higher is later")
    recorded_at: dt.datetime
    request_id: str = Field(description="the X-Request-ID the response carried")
    trace_id: str | None = Field(description="the request's trace, when telemetry is on")
    channel: Literal["api", "dashboard"]
    action: str = Field(description="tenant.onboard, tenant.offboard, run.retry, run.cancel, "
                        "session.sign_in, session.sign_out, or METHOD /route")
    method: str
    route: str = Field(description="the route template, e.g. /api/tenants/{slug}")
    tenant: str | None
    run_id: str | None
    principal_name: str | None = Field(description="a person's UPN or name; none for apps")
    principal_oid: str | None = Field(description="the caller's object ID")
    principal_appid: str | None = Field(description="the calling application's client ID")
    client_ip: str | None = Field(description="the address the request came from")
    forwarded_for: str | None = Field(description="addresses in X-Forwarded-For, as sent")
    outcome: Literal["succeeded", "refused", "failed"]
    status_code: int
    reason: str | None = Field(description="the error code of a refusal or failure")

    @classmethod
    def of(cls, record: AuditRecord) -> AuditOut:
        return cls(**{name: getattr(record, name) for name in cls.model_fields})


class AuditPage(BaseModel):
    items: list[AuditOut]
    total: int
    limit: int
    offset: int


class BudgetOut(BaseModel):
    name: str
    providers: list[str] = Field(description="provider kinds or kind:name labels it counts")
    calls: int
    per_seconds: float
    burst: int
    reserved: int = Field(description="calls reserved against it so far, by every worker")
    backlog_seconds: float = Field(
        description="how far ahead of the database's clock its next free slot is: the time "
        "a call asked for now waits")
    queued: int = Field(description="calls reserved and not yet due (backlog / interval)")


class BudgetsOut(BaseModel):
    """The rate budgets (engine.budgets) and their queues, shared by every worker."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"budgets": [{
        "name": "keycloak", "providers": ["organization:keycloak"], "calls": 10,
        "per_seconds": 1.0, "burst": 1, "reserved": 1204, "backlog_seconds": 12.3,
        "queued": 123}]}]})

    budgets: list[BudgetOut]

    @classmethod
    def of(cls, budgets: list[tuple[str, BudgetSettings, BudgetState]]) -> BudgetsOut:
        return cls(budgets=[BudgetOut(
            name=name, providers=list(config.providers), calls=config.calls,
            per_seconds=config.per_seconds, burst=config.burst, reserved=state.reserved,
            backlog_seconds=round(state.backlog_seconds, 3),
            queued=int(state.backlog_seconds * config.calls / config.per_seconds),
        ) for name, config, state in budgets])


class DifferenceOut(BaseModel):
    """One field of a resource that is not as recorded."""

    field: str
    recorded: Any
    found: Any


class ResourceDriftOut(BaseModel):
    """One resource of a drift check, in the plan-preview format: ``action`` is what a
    reconcile would do to it."""

    step: str
    provider: str
    resource: str
    summary: str
    state: Literal["in_sync", "drifted", "missing", "unknown", "unchecked"]
    action: Literal["create", "update", "unchanged", "delete", "absent", "check"]
    differences: list[DifferenceOut]
    error: str | None = Field(description="why the resource could not be observed")


class DriftOut(BaseModel):
    """A tenant's drift check: ``state`` is the worst of its resources' (``missing`` before
    ``drifted`` before ``unknown`` before ``in_sync``)."""

    tenant: str
    status: TenantStatusName
    state: Literal["in_sync", "drifted", "missing", "unknown"]
    checked_at: dt.datetime | None
    checked_by: str | None
    reconcile_run_id: str | None = Field(
        description="the reconcile run a scheduled check opened (drift.auto_reconcile)")
    resources: list[ResourceDriftOut]

    @classmethod
    def of(cls, report: DriftReport) -> DriftOut:
        return cls(
            tenant=report.slug, status=cast(TenantStatusName, report.status),
            state=report.state, checked_at=report.checked_at, checked_by=report.checked_by,
            reconcile_run_id=report.reconcile_run_id,
            resources=[_resource_out(r) for r in report.resources])


class DriftPage(BaseModel):
    """The last drift check of each live tenant, most recently checked first; ``counts``:
    how many active or suspended tenants are in each state (``unchecked``: never checked)."""

    items: list[DriftOut]
    total: int
    limit: int
    offset: int
    counts: dict[str, int]


class DriftCheckRequest(BaseModel):
    """``POST /api/drift/check``: the tenants to check now (all active and suspended ones
    when ``tenants`` is absent)."""

    model_config = ConfigDict(extra="forbid")

    tenants: list[str] | None = Field(default=None, max_length=1000)


class DriftCheckOut(BaseModel):
    """What a fleet check found: each tenant's report, and the tenants it could not check
    (a run in progress, say) with why."""

    checked: list[DriftOut]
    skipped: dict[str, str]
    counts: dict[str, int]


class ReconcileRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=MAX_REASON_LENGTH)


class ImportRequest(BaseModel):
    """``POST /api/tenants/import``: tenant specs, each with optional ``resources``
    (``database``, ``login``, ``secret``, ``organization_id``: the names its runbooks gave)
    and ``suspended``. Each entry is validated on its own: an invalid one is refused alone."""

    model_config = ConfigDict(extra="forbid")

    tenants: list[Any] = Field(min_length=1, max_length=1000)


class AdoptionOut(BaseModel):
    slug: str
    outcome: Literal["adopted", "partial", "refused"]
    reasons: list[str] = Field(description="what is missing or differs (partial), or why "
                               "it was refused")
    recorded: bool
    run_id: str | None
    resources: list[ResourceDriftOut]


class ImportOut(BaseModel):
    """Each entry's outcome, in order, and how many of each."""

    dry_run: bool
    results: list[AdoptionOut]
    counts: dict[str, int]

    @classmethod
    def of(cls, results: list[AdoptionResult], *, dry_run: bool) -> ImportOut:
        out = [AdoptionOut(
            # A refusal may quote the entry's values; the rest name resources only.
            slug=r.slug, outcome=r.outcome,
            reasons=[redact(x) if r.outcome == "refused" else x for x in r.reasons],
            recorded=r.recorded, run_id=r.run_id,
            resources=[_resource_out(d) for d in r.resources]) for r in results]
        counts = {o: sum(1 for r in results if r.outcome == o)
                  for o in ("adopted", "partial", "refused")}
        return cls(dry_run=dry_run, results=out, counts=counts)


def _resource_out(r: ResourceDrift) -> ResourceDriftOut:
    return ResourceDriftOut(
        step=r.step, provider=r.provider, resource=r.resource, summary=r.summary,
        state=r.state, action=r.action, error=r.error,
        differences=[DifferenceOut(field=d.field, recorded=redact_values(d.recorded),
                                   found=redact_values(d.found)) for d in r.differences])


# -- fleet runs ----------------------------------------------------------------------------

FleetStatusName = Literal["running", "stopped", "succeeded", "failed", "cancelled"]
TargetStatusName = Literal["pending", "running", "succeeded", "failed", "skipped", "cancelled"]


class SelectionIn(BaseModel):
    """Which tenants: exactly one of ``all``, ``plan``, ``tag`` (``key=value``) or
    ``tenants`` (slugs, in the order given)."""

    model_config = ConfigDict(extra="forbid")

    all: bool = False
    plan: str | None = Field(default=None, max_length=64)
    tag: str | None = Field(default=None, max_length=200)
    tenants: list[str] = Field(default_factory=list, max_length=100_000)


class FleetRequestIn(BaseModel):
    """A fleet run: the operation, its options, the selection and how it goes (unset: the
    server's ``[fleet]`` settings)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "operation": "migrate", "selection": {"all": True}, "options": {"revision": None},
        "canary": 2, "concurrency": 8, "max_failures": 3}]})

    operation: str = Field(max_length=32, description="migrate")
    selection: SelectionIn
    options: dict[str, Any] = Field(
        default_factory=dict, description="the operation's options (migrate: revision, "
        "unset or null for the head)")
    canary: int | None = Field(default=None, description="tenants done first, alone")
    concurrency: int | None = Field(default=None, description="child runs at once")
    batch_size: int | None = Field(default=None, description="tenants per batch after the "
                                   "canary set; a batch starts once the previous one is done")
    max_failures: int | None = Field(default=None, description="stop when more failed")
    max_failure_percent: float | None = Field(default=None, description="stop when more "
                                              "than this share failed")
    no_failure_limit: bool = Field(default=False, description="no count limit (the percent "
                                   "limit, if set, still applies)")


class FleetRunOut(BaseModel):
    """A fleet run: its settings, how many tenants are in each status, the rate so far
    (tenants finished per second) and the time left at that rate."""

    id: str
    operation: str
    status: FleetStatusName
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
    counts: dict[str, int] = Field(description="pending, running, succeeded, failed, "
                                   "skipped, cancelled, total")
    rate_per_second: float | None
    eta_seconds: float | None

    @classmethod
    def of(cls, fleet: FleetRun) -> FleetRunOut:
        counts = fleet.counts
        rate: float | None = None
        worked = counts.succeeded + counts.failed
        if worked and fleet.first_started_at and fleet.last_finished_at:
            spent = (fleet.last_finished_at - fleet.first_started_at).total_seconds()
            rate = worked / spent if spent > 0 else None
        eta = (counts.remaining / rate if rate and fleet.status == "running" else None)
        return cls(
            id=fleet.id, operation=fleet.operation, status=fleet.status,
            selection=fleet.selection, options=fleet.options, canary=fleet.canary,
            concurrency=fleet.concurrency, batch_size=fleet.batch_size,
            max_failures=fleet.max_failures, max_failure_percent=fleet.max_failure_percent,
            requested_by=fleet.requested_by, created_at=fleet.created_at,
            updated_at=fleet.updated_at, finished_at=fleet.finished_at,
            stop_reason=redact(fleet.stop_reason) if fleet.stop_reason else None,
            resumes=fleet.resumes, counts=counts.as_dict(),
            rate_per_second=round(rate, 3) if rate else None,
            eta_seconds=round(eta, 1) if eta is not None else None)


class FleetRunPage(BaseModel):
    items: list[FleetRunOut]
    total: int
    limit: int
    offset: int


class FleetTargetOut(BaseModel):
    """One tenant of a fleet run: where it stands, its latest child run, what its operation
    reported (revisions applied, say) or why it failed or was skipped."""

    tenant: str
    position: int
    canary: bool
    batch: int
    status: TargetStatusName
    attempt: int
    run_id: str | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    error: str | None
    detail: dict[str, Any]

    @classmethod
    def of(cls, target: FleetTarget) -> FleetTargetOut:
        return cls(tenant=target.tenant_slug, position=target.position, canary=target.canary,
                   batch=target.batch, status=target.status, attempt=target.attempt,
                   run_id=target.run_id, started_at=target.started_at,
                   finished_at=target.finished_at,
                   error=redact(target.error) if target.error else None,
                   detail=_clean(target.detail) or {})


class FleetTargetPage(BaseModel):
    items: list[FleetTargetOut]
    limit: int
    offset: int


class TargetPreviewOut(BaseModel):
    tenant: str
    action: Literal["run", "nothing", "skip"]
    reason: str | None
    detail: dict[str, Any]


class FleetPreviewOut(BaseModel):
    """What a fleet run would do to each tenant (``dry_run``): ``run`` (with the pending
    revisions, say), ``nothing`` (already there) or ``skip`` (with the reason)."""

    dry_run: Literal[True] = True
    operation: str
    options: dict[str, Any]
    counts: dict[str, int]
    targets: list[TargetPreviewOut]

    @classmethod
    def of(cls, preview: FleetPreview) -> FleetPreviewOut:
        return cls(operation=preview.operation, options=preview.options,
                   counts={a: preview.count(a) for a in ("run", "nothing", "skip")},
                   targets=[TargetPreviewOut(tenant=t.slug, action=t.action,
                                             reason=t.reason, detail=t.detail)
                            for t in preview.targets])


class CertificateOut(BaseModel):
    """A tenant's certificate as the catalog records it (the last run that issued or
    renewed it)."""

    tenant: str
    status: TenantStatusName
    hostname: str
    thumbprint: str | None
    expires_at: dt.datetime | None
    days_left: float | None
    expiring_soon: bool = Field(description="expires within certificates.expiring_soon_days")


class CertificatePage(BaseModel):
    items: list[CertificateOut]
    expiring_soon_days: float
    expiring_soon: int
