"""Drift (issue 15 §5): ``GET /api/tenants/{slug}/drift`` checks one tenant now (its
resources observed through their providers, reads only) and keeps the report;
``GET /api/drift`` lists the last report of every tenant without asking any provider;
``POST /api/drift/check`` checks many now; ``POST /api/tenants/{slug}/reconcile`` opens
the run that restores the recorded state (``?dry_run=true``: what it would create or
converge; a reconcile never deletes anything)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from tenantops.api.deps import EngineDep
from tenantops.api.routes.tenants import (
    _CHANGE_REFUSALS,
    _REFUSALS,
    DryRun,
    IdempotencyKey,
    Reader,
    Writer,
    _changed,
    _claim,
    requester,
)
from tenantops.api.schemas import (
    ChangeAccepted,
    DriftCheckOut,
    DriftCheckRequest,
    DriftOut,
    DriftPage,
    ImportOut,
    ImportRequest,
    PreviewOut,
    Problem,
    ReconcileRequest,
)
from tenantops.catalog import DriftState
from tenantops.catalog.drift import DRIFT_STATES
from tenantops.errors import DriftNotCheckedError, TenantOpsError
from tenantops.provisioning.drift import DriftChecker, DriftReport

__all__ = ["router"]

router = APIRouter(tags=["drift"])


@router.get("/tenants/{slug}/drift", response_model=DriftOut,
            responses={**_REFUSALS, 404: {"model": Problem, "description": "unknown slug"},
                       409: {"model": Problem, "description": "the tenant is not settled: a "
                             "run in progress (named), failed or offboarded"}})
def tenant_drift(
    slug: str, principal: Reader, engine: EngineDep,
    cached: Annotated[bool, Query(description="the last report kept, asking no provider; "
                                  "404 when the tenant was never checked")] = False,
) -> DriftOut:
    """Check the tenant now: every recorded resource observed through its provider (reads
    only) and compared with what the catalog records; the report is kept as its last."""
    if cached:
        record = engine.catalog.last_drift(slug)
        if record is None:
            raise DriftNotCheckedError(slug)
        return DriftOut.of(DriftReport.of(record, record.status))
    report = DriftChecker.of(engine).check_and_record(
        slug, checked_by=requester(principal, engine))
    return DriftOut.of(report)


@router.get("/drift", response_model=DriftPage, responses=_REFUSALS)
def list_drift(
    principal: Reader, engine: EngineDep,
    state: Annotated[list[DriftState] | None, Query(
        description="only tenants whose last check found this (repeatable)")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> DriftPage:
    """The last drift check of each tenant, most recently checked first, and how many
    tenants are in each state; asks no provider."""
    records, total = engine.catalog.drift.page(states=state, limit=limit, offset=offset)
    return DriftPage(items=[DriftOut.of(DriftReport.of(r, r.status)) for r in records],
                     total=total, limit=limit, offset=offset,
                     counts=engine.catalog.drift.counts())


@router.post("/drift/check", response_model=DriftCheckOut,
             responses={**_REFUSALS, 422: {"model": Problem, "description": "too many tenants"}})
def check_drift(principal: Reader, engine: EngineDep,
                body: DriftCheckRequest | None = None) -> DriftCheckOut:
    """Check the listed tenants now (every active and suspended one when none is listed),
    ``drift.concurrency`` at a time; tenants that cannot be checked are listed with why."""
    slugs = body.tenants if body is not None and body.tenants is not None else (
        engine.catalog.drift.settled_slugs())
    results = DriftChecker.of(engine).check_many(slugs, checked_by=requester(principal, engine))
    checked: list[DriftOut] = []
    skipped: dict[str, str] = {}
    for slug, result in zip(slugs, results, strict=True):
        if isinstance(result, TenantOpsError):
            skipped[slug] = str(result)
        else:
            checked.append(DriftOut.of(result))
    counts = {state: sum(1 for c in checked if c.state == state) for state in DRIFT_STATES}
    return DriftCheckOut(checked=checked, skipped=skipped, counts=counts)


@router.post("/tenants/import", response_model=ImportOut,
             responses={**_REFUSALS, 422: {"model": Problem, "description": "more tenants "
                                           "than drift.import_max_tenants"}})
def import_tenants(body: ImportRequest, principal: Writer, engine: EngineDep,
                   dry_run: DryRun = False) -> ImportOut:
    """Adopt tenants made before tenantops: each one's resources observed through the
    providers without changing anything, then recorded (unless ``dry_run``) when all were
    found (``adopted``) or some are missing or differ (``partial``: a reconcile makes them);
    ``refused`` says why and records nothing. An invalid entry is refused alone."""
    results = engine.import_tenants(body.tenants, dry_run=dry_run,
                                    requested_by=requester(principal, engine))
    return ImportOut.of(results, dry_run=dry_run)


@router.post("/tenants/{slug}/reconcile", status_code=202,
             response_model=ChangeAccepted | PreviewOut, responses=_CHANGE_REFUSALS)
def reconcile_tenant(
    slug: str, principal: Writer, engine: EngineDep, response: Response,
    body: ReconcileRequest | None = None, dry_run: DryRun = False,
    idempotency_key: IdempotencyKey = None,
) -> ChangeAccepted | PreviewOut:
    """Restore the tenant's recorded state: what a drift check reports missing is made
    again, what differs is converged back. Nothing is deleted. The same request while its
    run is active returns that run."""
    if dry_run:
        response.status_code = 200
        return PreviewOut.of(engine.preview_reconcile(slug))
    reason = body.reason if body is not None else None
    claim = _claim(principal, idempotency_key, "reconcile", slug, reason or "")
    run = engine.reconcile_tenant(slug, reason=reason, requested_by=requester(principal, engine),
                                  idempotency=claim)
    return _changed(engine, slug, run, response)
