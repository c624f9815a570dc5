"""Runs: each onboarding, offboarding, update, suspension or resumption of a tenant, with its
steps (`RunStore`).

Every kind of run is opened the same way (`RunStore.open` with a `RunRequest`), in one
transaction that checks the tenant's state, claims what the run needs and writes the run
with its pending steps. What differs per kind is data (`RUN_KINDS`): the tenant's status
while the run is active and once it succeeded, which states it may start from, and which
earlier run a repeated request resolves to. Unique indexes decide races between concurrent
requests (one active run per tenant); the loser reads the winner's run. The step-by-step
progress of a run is written by `tenantops.catalog.steps`.

Opening an onboarding registers (or re-registers) its tenant, so a tenant never exists
without the run that shows what is being done to it. Opening an onboarding, or an update
that changes the custom domain, claims the domain in the same transaction
(`tenantops.catalog.domain_claims`); an update keeps the old name claimed (retiring) until
its grace period ends and the run removes it. The request's ``Idempotency-Key``, when it has
one, is claimed in that same transaction too.

A run's options carry what the plan needs and what the tenant's history shows: the diff of
an update (``changes``: field → ``{"from", "to"}``), the reason of a suspension, the names
being retired. An update whose ``from`` values no longer match the tenant (someone changed
it meanwhile) is refused (`TenantConflictError`): the plan was made for other values.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Connection, Row, bindparam, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tenantops.catalog import events
from tenantops.catalog._database import CatalogDatabase, new_id, now
from tenantops.catalog.domain_claims import (
    check_domain_free,
    keep,
    lock_domain_claims,
    record_ancestors,
    retire,
    retiring_rows,
)
from tenantops.catalog.idempotency import IdempotencyClaim, claimed, record_claim
from tenantops.catalog.models import (
    ACTIVE_RUN_STATUSES,
    RunRow,
    StepAttemptRow,
    StepRow,
    TenantRow,
    UtcDateTime,
)
from tenantops.catalog.tenants import (
    TENANT_BY_SLUG,
    TENANT_UPDATE,
    Tenant,
    TenantFields,
    TenantStatus,
    output_values,
    tenant_record,
    tenant_row,
    tenant_row_by_id,
)
from tenantops.errors import (
    CatalogError,
    IdempotencyKeyReusedError,
    RunConflictError,
    RunNotFoundError,
    RunStateError,
    TenantConflictError,
    TenantNotFoundError,
    TenantStateError,
)
from tenantops.telemetry import traceparent

__all__ = [
    "CHANGED_FIELDS",
    "RUN_KINDS",
    "Attempt",
    "AttemptOutcome",
    "KindRules",
    "OpenedRun",
    "Run",
    "RunKind",
    "RunRequest",
    "RunStatus",
    "RunStore",
    "Step",
    "StepStatus",
    "StepTemplate",
    "is_suspended",
    "segment_workflow_id",
    "status_after",
]

RunKind = Literal["onboard", "offboard", "update", "suspend", "resume", "reconcile", "adopt",
                  "migrate", "rotate", "renew"]
RunStatus = Literal["pending", "running", "succeeded", "failed", "cancelled"]
StepStatus = Literal[
    "pending", "running", "waiting", "retrying", "succeeded", "failed", "cancelled"
]
AttemptOutcome = Literal[
    "running", "waiting", "retrying", "succeeded", "failed", "interrupted"
]
TERMINAL_RUN_STATUSES = ("succeeded", "failed", "cancelled")
_OPEN_ATTEMPTS = 5
CHANGED_FIELDS = ("display_name", "custom_domain", "plan", "admin_email", "tags")
"""The tenant fields an update may change (the slug names the tenant and never changes)."""


@dataclass(frozen=True)
class KindRules:
    """What a kind of run does to its tenant's status, and where it may start from.

    ``during``: the tenant's status while the run is active (and after a retry);
    ``after``: once it succeeded (`status_after` may say otherwise for an update of a
    suspended tenant); ``starts_from``: the tenant statuses it may be opened in, besides
    ``failed`` after a run of a kind in ``recovers``."""

    during: TenantStatus
    after: TenantStatus
    starts_from: tuple[TenantStatus, ...]
    recovers: tuple[str, ...]
    verb: str
    keeps_status: bool = False
    """Upkeep of a live tenant (a schema migration, a credential rotation, a certificate
    renewal): the tenant's status does not change while it runs, nor when it fails or is
    cancelled (the tenant keeps serving with what it had; the run shows the error)."""


RUN_KINDS: dict[str, KindRules] = {
    "onboard": KindRules("provisioning", "active", (), (), "onboard"),
    "offboard": KindRules("offboarding", "offboarded", (), (), "offboard"),
    "update": KindRules("updating", "active", ("active", "suspended"), ("update",),
                        "change"),
    "suspend": KindRules("suspending", "suspended", ("active", "suspended"),
                         ("update", "suspend", "resume"), "suspend"),
    "resume": KindRules("resuming", "active", ("suspended",), ("suspend", "resume"), "resume"),
    # Restores the recorded state (issue 15 §5): a suspended tenant stays suspended.
    "reconcile": KindRules("reconciling", "active", ("active", "suspended"), ("reconcile",),
                           "reconcile"),
    # Records a tenant made before tenantops (issue 14 §5); done when it opens.
    "adopt": KindRules("active", "active", (), (), "adopt"),
    "migrate": KindRules("active", "active", ("active", "suspended"), (), "migrate",
                         keeps_status=True),
    "rotate": KindRules("active", "active", ("active", "suspended"), (),
                        "rotate the credentials of", keeps_status=True),
    "renew": KindRules("active", "active", ("active", "suspended"), (),
                       "renew the certificate of", keeps_status=True),
}


def status_after(kind: str, options: Mapping[str, Any]) -> TenantStatus:
    """The tenant's status once a run of ``kind`` with ``options`` succeeded: an update or a
    reconciliation of a suspended tenant leaves it suspended, and a tenant adopted as
    suspended is."""
    if kind in ("update", "reconcile", "adopt") and options.get("suspended"):
        return "suspended"
    return RUN_KINDS[kind].after


def _set_status(tenant: TenantRow, status: TenantStatus, kind: str) -> None:
    """Give the tenant ``status`` because of a run of ``kind``, unless the kind is upkeep
    that leaves the tenant's status alone (`KindRules.keeps_status`)."""
    if not RUN_KINDS[kind].keeps_status:
        tenant.status = status


@dataclass(frozen=True)
class RunRequest:
    """A request to open a run of ``kind`` for tenant ``slug``.

    ``steps``: the plan, as the catalog records it; ``options``: what the plan was made from
    (and what the tenant's history shows); ``spec``: the tenant's fields once the run is done
    (an onboarding registers them; an update writes them, and its ``options["changes"]``
    says which differ and what they were); ``retiring``: the names the tenant will still
    serve besides its custom domain once the run is opened, as the plan assumed (checked,
    so a plan made from a stale read is refused); ``idempotency``: the caller's key."""

    kind: RunKind
    slug: str
    requested_by: str
    steps: Sequence[StepTemplate]
    options: Mapping[str, Any] = field(default_factory=dict)
    spec: TenantFields | None = None
    retiring: tuple[str, ...] | None = None
    idempotency: IdempotencyClaim | None = None
    outputs: Mapping[str, object] | None = None
    """For an adoption: what was found of the tenant's resources, recorded on the tenant as
    a run's steps would record it (`tenantops.catalog.tenants.OUTPUT_COLUMNS`)."""


@dataclass(frozen=True)
class StepTemplate:
    """A step as planned, before it runs: its name, ``kind:name`` provider and verb."""

    name: str
    provider: str
    action: str


@dataclass(frozen=True)
class Attempt:
    """One attempt of a step. ``execution`` is 0 for the run's first execution and n after
    its n-th retry; ``outcome`` ``waiting`` means the provider said "not yet" (polled
    again), ``retrying`` a transient fault (tried again), ``interrupted`` that its worker
    stopped before it ended. ``resolved`` is the resource the attempt asked for."""

    step: str
    number: int
    execution: int
    started_at: dt.datetime
    finished_at: dt.datetime | None
    outcome: AttemptOutcome
    error: str | None
    message: str | None
    resolved: dict[str, Any] | None


@dataclass(frozen=True)
class Step:
    """One step of a run: status as it changes (running included), attempts, timings;
    ``history`` holds every attempt, oldest first."""

    run_id: str
    position: int
    name: str
    provider: str
    action: str
    status: StepStatus
    attempts: int
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    error: str | None
    message: str | None
    outputs: dict[str, Any]
    history: tuple[Attempt, ...] = ()

    @property
    def resolved(self) -> dict[str, Any] | None:
        """The resource the latest attempt asked for (None before the first attempt)."""
        return self.history[-1].resolved if self.history else None


@dataclass(frozen=True)
class Run:
    """One onboarding or offboarding of a tenant, with its steps in plan order."""

    id: str
    tenant_slug: str
    kind: RunKind
    status: RunStatus
    options: dict[str, Any]
    requested_by: str
    workflow_id: str
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    error: str | None
    failed_step: str | None
    retries: int
    steps: tuple[Step, ...] = field(default=())
    segment: int = 0
    trace_context: str | None = None
    """W3C ``traceparent`` of the request that opened or last retried the run."""

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_RUN_STATUSES

    @property
    def current_workflow_id(self) -> str:
        """The workflow that carries the run now (see `segment_workflow_id`)."""
        return segment_workflow_id(self.workflow_id, self.segment)

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)


@dataclass(frozen=True)
class OpenedRun:
    """The run a request resolved to; ``created`` is False when an existing run was returned."""

    run: Run
    created: bool


def segment_workflow_id(workflow_id: str, segment: int) -> str:
    """The workflow ID of a run's ``segment``: the run's own ``workflow_id`` for 0, then
    ``<workflow_id>/<segment>`` for each continuation (after a long wait, a retry, a stall)."""
    return workflow_id if segment == 0 else f"{workflow_id}/{segment}"


_RUNS = RunRow.__table__
_STEPS = StepRow.__table__
_ATTEMPTS = StepAttemptRow.__table__
# The read path (a tenant's page): Core rows, statements built once.
_RUNS_OF_TENANT = select(_RUNS).where(_RUNS.c.tenant_id == bindparam("p_tenant")).order_by(
    _RUNS.c.created_at, _RUNS.c.id)
_STEPS_OF_TENANT = select(_STEPS).join(_RUNS, _RUNS.c.id == _STEPS.c.run_id).where(
    _RUNS.c.tenant_id == bindparam("p_tenant"))
_ATTEMPTS_OF_TENANT = select(_ATTEMPTS).join(_RUNS, _RUNS.c.id == _ATTEMPTS.c.run_id).where(
    _RUNS.c.tenant_id == bindparam("p_tenant"))


def attempt_record(row: StepAttemptRow | Row[Any], latest: int, run_active: bool) -> Attempt:
    outcome = row.outcome
    if outcome == "running" and (row.number < latest or not run_active):
        outcome = "interrupted"
    return Attempt(
        step=row.step, number=row.number, execution=row.execution, started_at=row.started_at,
        finished_at=row.finished_at, outcome=outcome,  # type: ignore[arg-type]
        error=row.error, message=row.message,
        resolved=dict(row.resolved) if row.resolved is not None else None,
    )


def step_record(row: StepRow | Row[Any], attempts: Sequence[StepAttemptRow | Row[Any]] = (),
                run_active: bool = True) -> Step:
    ordered = sorted(attempts, key=lambda a: a.number)
    latest = ordered[-1].number if ordered else 0
    return Step(
        run_id=row.run_id, position=row.position, name=row.name, provider=row.provider,
        action=row.action, status=row.status,  # type: ignore[arg-type]
        attempts=row.attempts, started_at=row.started_at, finished_at=row.finished_at,
        error=row.error, message=row.message, outputs=dict(row.outputs or {}),
        history=tuple(attempt_record(a, latest, run_active) for a in ordered),
    )


def run_record(row: RunRow | Row[Any], slug: str, steps: Sequence[StepRow | Row[Any]],
               attempts: Sequence[StepAttemptRow | Row[Any]] = ()) -> Run:
    by_step: dict[str, list[StepAttemptRow | Row[Any]]] = {}
    for attempt in attempts:
        by_step.setdefault(attempt.step, []).append(attempt)
    active = row.status in ACTIVE_RUN_STATUSES
    return Run(
        id=row.id, tenant_slug=slug, kind=row.kind, status=row.status,  # type: ignore[arg-type]
        options=dict(row.options or {}), requested_by=row.requested_by,
        workflow_id=row.workflow_id, created_at=row.created_at, started_at=row.started_at,
        finished_at=row.finished_at, error=row.error, failed_step=row.failed_step,
        retries=row.retries,
        steps=tuple(step_record(s, by_step.get(s.name, ()), active)
                    for s in sorted(steps, key=lambda s: s.position)),
        segment=row.segment or 0,
        trace_context=row.trace_context,
    )


class RunStore:
    """Open, read, finish, cancel and reopen runs."""

    def __init__(self, database: CatalogDatabase) -> None:
        self._db = database

    # -- opening ------------------------------------------------------------------------

    def open(self, request: RunRequest) -> OpenedRun:
        """Open a run of any kind, or return the run a repeated request resolves to.

        Raises `RunConflictError` naming the active run when another run of the tenant is
        active, `TenantStateError` when the tenant's status forbids the kind (a suspension of
        a tenant still being onboarded), `TenantConflictError` when the request contradicts
        the tenant (another spec; an update made from values changed meanwhile),
        `DomainConflictError` for a custom domain another tenant holds, and
        `IdempotencyKeyReusedError` for a key its caller sent with another request. Safe under
        concurrent requests (see the module docstring)."""
        return self._open(lambda s: self._claim_and_open(s, request))

    def open_onboarding(
        self, spec: TenantFields, *, requested_by: str, steps: Sequence[StepTemplate],
        options: Mapping[str, Any] | None = None, idempotency: IdempotencyClaim | None = None,
    ) -> OpenedRun:
        """Register the tenant (if new) and its onboarding run, or return the existing run.

        A repeated request with the same spec returns the tenant's onboarding run; a request
        whose spec differs from the registered tenant raises `TenantConflictError`; a custom
        domain equal to, above or below another live tenant's raises `DomainConflictError`;
        an active offboarding raises `RunConflictError`. ``options`` are the new run's (an
        existing run keeps its own). With ``idempotency``, a key its caller already used
        returns that run when the request is the same, and raises `IdempotencyKeyReusedError`
        when it is not; otherwise the key is recorded with the run."""
        return self.open(RunRequest("onboard", spec.slug, requested_by, steps,
                                    dict(options or {}), spec=spec, idempotency=idempotency))

    def open_offboarding(
        self, slug: str, *, requested_by: str, keep_database: bool,
        steps: Sequence[StepTemplate], options: Mapping[str, Any] | None = None,
        retiring: tuple[str, ...] | None = None,
    ) -> OpenedRun:
        """Register an offboarding run of ``slug``, or return the one already requested."""
        return self.open(RunRequest(
            "offboard", slug, requested_by, steps,
            {**(options or {}), "keep_database": keep_database}, retiring=retiring))

    def _open(self, attempt: Callable[[Session], OpenedRun]) -> OpenedRun:
        last: IntegrityError | None = None
        for _ in range(_OPEN_ATTEMPTS):
            try:
                with self._db.session(write=True) as s:
                    return attempt(s)
            except IntegrityError as exc:
                # Another request won a race on a unique index; the next pass sees its rows.
                last = exc
        raise CatalogError(
            f"could not register the run after {_OPEN_ATTEMPTS} attempts "
            f"(concurrent requests kept conflicting: {last}); try again"
        )

    def _claim_and_open(self, s: Session, request: RunRequest) -> OpenedRun:
        if request.spec is not None:
            lock_domain_claims(s)
        claim = request.idempotency
        if claim is not None:
            earlier = claimed(s, claim)
            if earlier is not None:
                fingerprint, run_id = earlier
                if fingerprint != claim.fingerprint:
                    raise IdempotencyKeyReusedError(claim.key, run_id)
                return OpenedRun(get_run(s, run_id), created=False)
        if request.kind == "onboard":
            opened = self._open_onboarding(s, request)
        elif request.kind == "offboard":
            opened = self._open_offboarding(s, request)
        elif request.kind == "adopt":
            opened = self._open_adoption(s, request)
        else:
            opened = self._open_change(s, request)
        if claim is not None:
            record_claim(s, claim, opened.run.id)
        return opened

    def _open_onboarding(self, s: Session, request: RunRequest) -> OpenedRun:
        spec = request.spec
        if spec is None:
            raise CatalogError("an onboarding must be opened with the tenant's spec")
        row = s.scalar(select(TenantRow).where(TenantRow.slug == spec.slug))
        check_domain_free(s, spec.custom_domain, spec.slug)
        if row is not None and row.status != "offboarded":
            differing = [name for name in CHANGED_FIELDS
                         if getattr(row, name) != getattr(spec, name)]
            if differing:
                shown = "; ".join(
                    f"{name}: registered {getattr(row, name)!r}, requested "
                    f"{getattr(spec, name)!r}" for name in differing)
                raise TenantConflictError(
                    f"tenant {spec.slug!r} is already registered with other values ({shown}); "
                    "repeat the original request to get its onboarding, or change the tenant "
                    f"with PATCH /api/tenants/{spec.slug} (tenantops tenants update)"
                )
            latest = latest_run_row(s, row.id)
            if latest is not None and latest.kind == "offboard":
                raise RunConflictError(
                    f"tenant {spec.slug!r} is being offboarded (run {latest.id} is "
                    f"{latest.status}); finish or retry the offboarding first",
                    slug=spec.slug, active_run_id=latest.id,
                )
            onboarding = latest_run_row(s, row.id, kind="onboard")
            if onboarding is not None:
                return OpenedRun(load_run(s, onboarding, row.slug), created=False)
        if row is None:
            row = TenantRow(id=new_id(), slug=spec.slug, created_at=now(), dns_records={})
            s.add(row)
        _write_fields(row, spec)
        row.status = RUN_KINDS["onboard"].during
        row.updated_at = now()
        row.registered_at = None
        s.flush()
        record_ancestors(s, row.id, spec.custom_domain)
        run = _new_run(s, row, "onboard", request.requested_by, dict(request.options),
                       request.steps)
        return OpenedRun(load_run(s, run, row.slug), created=True)

    def _open_adoption(self, s: Session, request: RunRequest) -> OpenedRun:
        """Register a tenant made before tenantops, with what was found of its resources,
        and its adoption run, already succeeded: the observation happened before (nothing
        is left to do, nothing to resume). A live tenant with the slug, or a custom domain
        equal to, above or below another live tenant's, is a conflict."""
        spec = request.spec
        if spec is None:
            raise CatalogError("an adoption must be opened with the tenant's spec")
        row = s.scalar(select(TenantRow).where(TenantRow.slug == spec.slug))
        if row is not None and row.status != "offboarded":
            raise TenantConflictError(
                f"slug {spec.slug!r} is taken: tenantops already knows tenant {spec.slug!r} "
                f"({row.status}); an import adopts tenants tenantops does not know yet. Compare "
                f"it with its resources instead: tenantops drift {spec.slug}")
        check_domain_free(s, spec.custom_domain, spec.slug)
        if row is None:
            row = TenantRow(id=new_id(), slug=spec.slug, created_at=now(), dns_records={})
            s.add(row)
        _write_fields(row, spec)
        options = dict(request.options)
        stamp = now()
        row.status = status_after("adopt", options)
        row.updated_at = row.registered_at = stamp
        for column, value in output_values(row.dns_records, request.outputs or {}).items():
            setattr(row, column, value)
        s.flush()
        record_ancestors(s, row.id, spec.custom_domain)
        run = _new_run(s, row, "adopt", request.requested_by, options, request.steps)
        run.status = "succeeded"
        run.started_at = run.finished_at = stamp
        summary = {key: options[key] for key in ("outcome", "missing", "drifted")
                   if key in options}
        s.execute(update(StepRow).where(StepRow.run_id == run.id).values(
            status="succeeded", attempts=1, started_at=stamp, finished_at=stamp,
            outputs=summary))
        for step in request.steps:
            s.add(StepAttemptRow(run_id=run.id, step=step.name, number=1, execution=0,
                                 started_at=stamp, finished_at=stamp, outcome="succeeded",
                                 resolved={"slug": spec.slug}))
        s.flush()
        events.run_finished(s, run, row)
        return OpenedRun(load_run(s, run, row.slug), created=True)

    def _open_offboarding(self, s: Session, request: RunRequest) -> OpenedRun:
        slug = request.slug
        row = tenant_row(s, slug)
        latest = latest_run_row(s, row.id)
        if latest is not None and latest.kind == "offboard" and (
            latest.status != "cancelled" or row.status == "offboarded"
        ):
            return OpenedRun(load_run(s, latest, slug), created=False)
        if latest is not None and latest.status in ACTIVE_RUN_STATUSES:
            raise _busy(slug, latest, "offboard")
        _check_retiring(s, row, request)
        row.status = RUN_KINDS["offboard"].during
        row.updated_at = now()
        run = _new_run(s, row, "offboard", request.requested_by, dict(request.options),
                       request.steps)
        return OpenedRun(load_run(s, run, slug), created=True)

    def _open_change(self, s: Session, request: RunRequest) -> OpenedRun:
        """An update, a suspension or a resumption."""
        kind, slug = request.kind, request.slug
        rules = RUN_KINDS[kind]
        row = tenant_row(s, slug)
        latest = latest_run_row(s, row.id)
        if latest is not None and latest.status in ACTIVE_RUN_STATUSES:
            if latest.kind == kind and _same_change(kind, latest.options, request.options):
                return OpenedRun(load_run(s, latest, slug), created=False)
            raise _busy(slug, latest, rules.verb)
        if latest is not None and latest.kind == kind and latest.status == "succeeded" and \
                kind in ("suspend", "resume") and row.status == rules.after:
            return OpenedRun(load_run(s, latest, slug), created=False)
        allowed = row.status in rules.starts_from or (
            row.status == "failed" and latest is not None and latest.kind in rules.recovers)
        if not allowed:
            raise _refused(slug, row.status, kind, latest)
        options = dict(request.options)
        if kind == "update":
            self._apply_update(s, row, request, options, latest)
        else:
            _check_retiring(s, row, request)
        _set_status(row, rules.during, kind)
        row.updated_at = now()
        s.flush()
        run = _new_run(s, row, kind, request.requested_by, options, request.steps)
        if kind == "update":
            changes = options.get("changes") or {}
            if "custom_domain" in changes:
                retire(s, row.id, [str(changes["custom_domain"]["from"])], run.id)
        return OpenedRun(load_run(s, run, slug), created=True)

    def _apply_update(self, s: Session, row: TenantRow, request: RunRequest,
                      options: dict[str, Any], latest: RunRow | None) -> None:
        spec = request.spec
        if spec is None or spec.slug != row.slug:
            raise CatalogError("an update must be opened with the tenant's new fields")
        changes: Mapping[str, Any] = options.get("changes") or {}
        unknown = set(changes) - set(CHANGED_FIELDS)
        if unknown:
            raise CatalogError(f"an update cannot change {', '.join(sorted(unknown))}")
        stale = [name for name, change in changes.items()
                 if getattr(row, name) != change.get("from")]
        if stale:
            shown = "; ".join(f"{name}: now {getattr(row, name)!r}, the change was made from "
                              f"{changes[name].get('from')!r}" for name in stale)
            raise TenantConflictError(
                f"tenant {row.slug!r} changed since this update was prepared ({shown}); "
                "review the change again and resend it")
        before = (latest.kind, dict(latest.options or {})) if latest is not None else None
        if bool(options.get("suspended")) != is_suspended(row.status, before):
            raise TenantConflictError(
                f"tenant {row.slug!r} is {row.status} now, not as when this update was "
                "prepared; review the change again and resend it")
        if "custom_domain" in changes:
            check_domain_free(s, spec.custom_domain, row.slug)
            keep(s, row.id, spec.custom_domain)
            record_ancestors(s, row.id, spec.custom_domain)
        _check_retiring(s, row, request, changing_from=(
            str(changes["custom_domain"]["from"]) if "custom_domain" in changes else None),
            new_domain=spec.custom_domain)
        _write_fields(row, spec)

    # -- reading ------------------------------------------------------------------------

    def get(self, run_id: str) -> Run:
        with self._db.session(write=False) as s:
            return get_run(s, run_id)

    def all(self, slug: str | None = None, *, status: RunStatus | None = None) -> list[Run]:
        """Runs, oldest first, optionally of one tenant or in one status (steps included)."""
        return self._select(slug, None if status is None else (status,))

    def _select(self, slug: str | None, statuses: Sequence[str] | None) -> list[Run]:
        with self._db.session(write=False) as s:
            query = (
                select(RunRow, TenantRow.slug).join(TenantRow, TenantRow.id == RunRow.tenant_id)
                .order_by(RunRow.created_at, RunRow.id)
            )
            if slug is not None:
                query = query.where(TenantRow.slug == slug)
            if statuses is not None:
                query = query.where(RunRow.status.in_(statuses))
            rows = s.execute(query).all()
            run_ids = [r.id for r, _ in rows]
            steps: dict[str, list[StepRow]] = {rid: [] for rid in run_ids}
            attempts: dict[str, list[StepAttemptRow]] = {rid: [] for rid in run_ids}
            if run_ids:
                for step in s.scalars(select(StepRow).where(StepRow.run_id.in_(run_ids))):
                    steps[step.run_id].append(step)
                for attempt in s.scalars(select(StepAttemptRow).where(
                        StepAttemptRow.run_id.in_(run_ids))):
                    attempts[attempt.run_id].append(attempt)
            return [run_record(r, tenant_slug, steps[r.id], attempts[r.id])
                    for r, tenant_slug in rows]

    def of_tenant(self, slug: str) -> tuple[Tenant, list[Run]]:
        """The tenant ``slug`` and its runs, oldest first, steps included, read in one
        transaction (what a tenant's page shows); `TenantNotFoundError` when unknown."""
        with self._db.read() as connection:
            row = connection.execute(TENANT_BY_SLUG, {"p_slug": slug}).first()
            if row is None:
                raise TenantNotFoundError(slug)
            runs = connection.execute(_RUNS_OF_TENANT, {"p_tenant": row.id}).all()
            steps: dict[str, list[Row[Any]]] = {run.id: [] for run in runs}
            for step in connection.execute(_STEPS_OF_TENANT, {"p_tenant": row.id}):
                steps[step.run_id].append(step)
            attempts: dict[str, list[Row[Any]]] = {run.id: [] for run in runs}
            for attempt in connection.execute(_ATTEMPTS_OF_TENANT, {"p_tenant": row.id}):
                attempts[attempt.run_id].append(attempt)
            return tenant_record(row), [run_record(run, slug, steps[run.id], attempts[run.id])
                                        for run in runs]

    def latest(self, slug: str, *, kind: RunKind | None = None) -> Run | None:
        """The tenant's latest run (of ``kind``), or None."""
        with self._db.session(write=False) as s:
            row = latest_run_row(s, tenant_row(s, slug).id, kind=kind)
            return load_run(s, row, slug) if row is not None else None

    def active(self) -> list[Run]:
        """Runs pending or running: what a worker must make sure has a workflow. Selected
        by the database: loading every run to filter them here made a worker's memory grow
        with the fleet (60 KB per tenant)."""
        return self._select(None, ACTIVE_RUN_STATUSES)

    def advance(self, run_id: str, *, to_segment: int) -> bool:
        """Hand an active run over to workflow segment ``to_segment`` (from the one before
        it); True if the run is now there, also when it already was (a replayed hand-over).
        False when the run is no longer active or a later segment (a retry) has taken it."""
        with self._db.session(write=True) as s:
            result = s.execute(
                update(RunRow)
                .where(RunRow.id == run_id, RunRow.status.in_(ACTIVE_RUN_STATUSES),
                       RunRow.segment.in_((to_segment - 1, to_segment)))
                .values(segment=to_segment)
            )
            return bool(getattr(result, "rowcount", 0))

    def count_active(self) -> dict[str, int]:
        """How many runs are pending (waiting for a worker) and running, by status."""
        with self._db.session(write=False) as s:
            counts = s.execute(
                select(RunRow.status, func.count()).where(RunRow.status.in_(ACTIVE_RUN_STATUSES))
                .group_by(RunRow.status))
            found = {str(status): int(count) for status, count in counts}
        return {status: found.get(status, 0) for status in ACTIVE_RUN_STATUSES}

    # -- closing and reopening ----------------------------------------------------------

    def finish(
        self, run_id: str, status: Literal["succeeded", "failed"], *,
        error: str | None = None, failed_step: str | None = None,
    ) -> Run:
        """Close an active run and set the tenant's status to match (`close`); returns the
        run. A run already closed (cancelled meanwhile, say) is left as it is."""
        self.close(run_id, status, error=error, failed_step=failed_step)
        return self.get(run_id)

    def close(
        self, run_id: str, status: Literal["succeeded", "failed"], *,
        error: str | None = None, failed_step: str | None = None,
    ) -> str:
        """`finish` without reading the run back (the engine's path); returns the run's
        status afterwards."""
        with self._db.write() as c:
            return close_run(c, run_id, status, error=error, failed_step=failed_step)

    def cancel(self, run_id: str, *, by: str | None = None) -> Run:
        """Mark an active run cancelled (the tenant becomes ``failed``: half made, half
        changed or half removed, until the run is retried, another run puts it right, or the
        tenant is offboarded). ``by`` is who asked."""
        with self._db.session(write=True) as s:
            row = s.get(RunRow, run_id)
            if row is None:
                raise RunNotFoundError(run_id)
            if row.status not in ACTIVE_RUN_STATUSES:
                raise RunStateError(
                    f"run {run_id} is {row.status}; only a pending or running run can be "
                    "cancelled"
                )
            stamp = now()
            row.status = "cancelled"
            row.finished_at = stamp
            row.error = "cancelled on request"
            s.execute(
                update(StepRow)
                .where(StepRow.run_id == run_id, StepRow.status.in_(
                    ("pending", "waiting", "retrying")))
                .values(status="cancelled")
            )
            tenant = tenant_row_by_id(s, row.tenant_id)
            _set_status(tenant, "failed", row.kind)
            tenant.updated_at = stamp
            events.run_cancelled(s, row, tenant, by=by)
            return get_run(s, run_id)

    def reopen(self, run_id: str, *, by: str | None = None) -> Run:
        """Make a failed or cancelled run pending again so it can be retried; its
        succeeded steps stay succeeded. Only the tenant's latest run can be reopened.
        ``by`` is who asked."""
        try:
            with self._db.session(write=True) as s:
                row = s.get(RunRow, run_id)
                if row is None:
                    raise RunNotFoundError(run_id)
                tenant = tenant_row_by_id(s, row.tenant_id)
                if row.status not in ("failed", "cancelled"):
                    raise RunStateError(
                        f"run {run_id} is {row.status}; only a failed or cancelled run can be "
                        "retried"
                    )
                latest = latest_run_row(s, tenant.id)
                if latest is not None and latest.id != row.id:
                    raise RunStateError(
                        f"run {run_id} is not the latest run of tenant {tenant.slug!r} "
                        f"({latest.id} is); retry that one instead"
                    )
                from_step = row.failed_step
                row.status = "pending"
                row.finished_at = None
                row.error = None
                row.failed_step = None
                row.retries += 1
                # A new workflow segment carries the retry: the failed one keeps its history.
                row.segment = (row.segment or 0) + 1
                row.trace_context = traceparent()
                # The last error stays in the step's attempts (history), not beside "pending".
                s.execute(
                    update(StepRow)
                    .where(StepRow.run_id == run_id, StepRow.status != "succeeded")
                    .values(status="pending", finished_at=None, pending_since=None, error=None,
                            message=None)
                )
                _set_status(tenant, RUN_KINDS[row.kind].during, row.kind)
                tenant.updated_at = now()
                s.flush()
                events.run_retried(s, row, tenant, by=by, from_step=from_step)
                return get_run(s, run_id)
        except IntegrityError as exc:
            raise RunConflictError(
                f"another run of this tenant is active, so run {run_id} cannot be retried "
                "now; wait for it or cancel it",
                slug="", active_run_id="",
            ) from exc


# -- shared by the stores of this package ---------------------------------------------------

def close_run(
    c: Connection, run_id: str, status: Literal["succeeded", "failed"], *,
    error: str | None = None, failed_step: str | None = None,
) -> str:
    """Close the active run ``run_id`` as ``status`` in ``c``'s transaction: its failed step
    marked failed, the tenant's status set to match (`status_after` the run's kind, or
    ``failed``), and the events that say so written with it. A run no longer active is left
    as it is. Returns the run's status after."""
    found = c.execute(_RUN_TO_CLOSE, {"p_run": run_id}).first()
    if found is None:
        raise RunNotFoundError(run_id)
    if found.status not in ACTIVE_RUN_STATUSES:
        return str(found.status)
    stamp = now()
    c.execute(_CLOSE_RUN, {"p_run": run_id, "status": status, "finished_at": stamp,
                           "error": error, "failed_step": failed_step})
    marked = 0
    if failed_step is not None:
        marked = c.execute(_FAIL_STEP, {"p_run": run_id, "p_name": failed_step,
                                        "p_now": stamp, "p_error": error}).rowcount
    tenant_status = (status_after(found.kind, found.options or {}) if status == "succeeded"
                     else "failed")
    changes: dict[str, Any] = {"p_tenant": found.tenant_id, "updated_at": stamp}
    if not RUN_KINDS[found.kind].keeps_status:  # upkeep leaves the tenant's status alone
        changes["status"] = tenant_status
    c.execute(TENANT_UPDATE, changes)
    if failed_step is not None and marked:
        events.step_failed(c, run_id, failed_step)
    events.run_finished(c, *events.run_and_tenant(c, run_id))
    return status


_RUN_TO_CLOSE = select(RunRow.status, RunRow.kind, RunRow.options, RunRow.tenant_id).where(
    RunRow.id == bindparam("p_run"))
# Without .values(): the SET clause is the columns named in the parameters.
_CLOSE_RUN = update(RunRow).where(RunRow.id == bindparam("p_run"))
_FAIL_STEP = (
    update(StepRow)
    .where(StepRow.run_id == bindparam("p_run"), StepRow.name == bindparam("p_name"),
           StepRow.status.not_in(("succeeded", "failed")))
    .values(status="failed", finished_at=bindparam("p_now", type_=UtcDateTime()),
            error=bindparam("p_error"))
)


def get_run(s: Session, run_id: str) -> Run:
    row = s.get(RunRow, run_id)
    if row is None:
        raise RunNotFoundError(run_id)
    return load_run(s, row, tenant_row_by_id(s, row.tenant_id).slug)


def load_run(s: Session, run: RunRow, slug: str) -> Run:
    steps = s.scalars(select(StepRow).where(StepRow.run_id == run.id)).all()
    attempts = s.scalars(select(StepAttemptRow).where(StepAttemptRow.run_id == run.id)).all()
    return run_record(run, slug, steps, attempts)


def latest_run_row(s: Session, tenant_id: str, *, kind: str | None = None) -> RunRow | None:
    query = select(RunRow).where(RunRow.tenant_id == tenant_id)
    if kind is not None:
        query = query.where(RunRow.kind == kind)
    return s.scalar(query.order_by(RunRow.created_at.desc(), RunRow.id.desc()).limit(1))


def is_suspended(status: str, latest: tuple[str, Mapping[str, Any]] | None) -> bool:
    """Whether a tenant's resources are meant to be suspended: it is ``suspended``, or it
    failed in an update made while it was (``latest``: its latest run's kind and options)."""
    if status == "suspended":
        return True
    return status == "failed" and latest is not None and latest[0] == "update" and bool(
        latest[1].get("suspended"))


def _write_fields(row: TenantRow, spec: TenantFields) -> None:
    row.display_name = spec.display_name
    row.custom_domain = spec.custom_domain
    row.plan = spec.plan
    row.admin_email = spec.admin_email
    row.tags = dict(spec.tags)


def _same_change(kind: str, active: Mapping[str, Any] | None,
                 requested: Mapping[str, Any]) -> bool:
    """Whether a request repeats the active run of its kind: a suspension or resumption
    always does; an update when it asks for the same new values; upkeep (a migration, a
    rotation, a renewal) when it comes from the same request (``options["request"]``: the
    fleet run and its attempt, or the API request), so a fleet never adopts another's run."""
    if RUN_KINDS[kind].keeps_status:
        return bool(requested.get("request")) and (
            (active or {}).get("request") == requested.get("request"))
    if kind != "update":
        return True
    wanted = {name: change.get("to") for name, change in
              (requested.get("changes") or {}).items()}
    made = {name: change.get("to") for name, change in
            ((active or {}).get("changes") or {}).items()}
    return wanted == made and bool(requested.get("remove_previous_admin")) == bool(
        (active or {}).get("remove_previous_admin")) and _move_of(requested) == _move_of(
        active or {})


def _move_of(options: Mapping[str, Any]) -> tuple[object, ...] | None:
    """What a move asks (where to, or to abandon), to tell a repeated request."""
    move = options.get("move")
    if not isinstance(move, Mapping):
        return None
    target = move.get("target") or {}
    return (bool(move.get("abandon")), target.get("server"), target.get("pool"),
            target.get("mode"))


def _check_retiring(s: Session, row: TenantRow, request: RunRequest, *,
                    changing_from: str | None = None, new_domain: str | None = None) -> None:
    """Refuse a plan made for other retiring names than the tenant will have."""
    if request.retiring is None:
        return
    held = {r.domain for r in retiring_rows(s, row.id)}
    if changing_from is not None:
        held.add(changing_from)
    if new_domain is not None:
        held.discard(new_domain)
    if held != set(request.retiring):
        raise TenantConflictError(
            f"tenant {row.slug!r} changed while this {request.kind} was prepared: it serves "
            f"{', '.join(sorted(held)) or 'no'} retiring domains, the plan was made for "
            f"{', '.join(sorted(request.retiring)) or 'none'}; send the request again")


def _busy(slug: str, active: RunRow, verb: str) -> RunConflictError:
    return RunConflictError(
        f"tenant {slug!r} has a run in progress ({active.kind} run {active.id}, "
        f"{active.status}); wait for it or cancel it, then {verb} the tenant",
        slug=slug, active_run_id=active.id,
    )


def _refused(slug: str, status: str, kind: str, latest: RunRow | None) -> TenantStateError:
    verb = RUN_KINDS[kind].verb
    if status == "failed" and latest is not None:
        where = f" at step {latest.failed_step}" if latest.failed_step else ""
        return TenantStateError(
            f"tenant {slug!r} is failed: its {latest.kind} run {latest.id} ended "
            f"{latest.status}{where}; retry that run (tenantops runs retry {latest.id}) or "
            f"offboard the tenant before you {verb} it", slug=slug, status=status)
    if kind == "resume" and status == "active":
        return TenantStateError(
            f"tenant {slug!r} is active, not suspended; there is nothing to resume",
            slug=slug, status=status)
    return TenantStateError(
        f"tenant {slug!r} is {status}; only an active or suspended tenant can be "
        f"{_PARTICIPLE[kind]}", slug=slug, status=status)


_PARTICIPLE = {"update": "changed", "suspend": "suspended", "resume": "resumed",
               "reconcile": "reconciled", "migrate": "migrated",
               "rotate": "given new credentials", "renew": "given a renewed certificate"}


def _new_run(
    s: Session, tenant: TenantRow, kind: RunKind, requested_by: str,
    options: dict[str, Any], steps: Sequence[StepTemplate],
) -> RunRow:
    run_id = new_id()
    run = RunRow(
        id=run_id, tenant_id=tenant.id, kind=kind, status="pending", options=options,
        requested_by=requested_by, workflow_id=f"tenantops/{tenant.slug}/{kind}/{run_id}",
        created_at=now(), retries=0, trace_context=traceparent(),
    )
    s.add(run)
    s.flush()
    for position, template in enumerate(steps):
        s.add(StepRow(
            run_id=run_id, position=position, name=template.name,
            provider=template.provider, action=template.action, status="pending",
            attempts=0, outputs={},
        ))
    s.flush()
    events.run_requested(s, run, tenant)
    return run
