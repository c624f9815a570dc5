"""``/api/certificates``: every tenant's certificate expiry, soonest first.
``/api/fleet-runs``: start a fleet run (202; ``?dry_run=true`` previews it per tenant),
list and show them with progress (done, failed, remaining, rate, time left), list a fleet's
tenants, and pause, resume or cancel it (docs/fleet.md)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from tenantops.api.deps import EngineDep, require_role
from tenantops.api.routes.tenants import requester
from tenantops.api.schemas import (
    CertificateOut,
    CertificatePage,
    FleetPreviewOut,
    FleetRequestIn,
    FleetRunOut,
    FleetRunPage,
    FleetStatusName,
    FleetTargetOut,
    FleetTargetPage,
    Problem,
    TargetStatusName,
)
from tenantops.auth import Principal
from tenantops.provisioning.fleet import FleetRequest, FleetRuns, Selection

__all__ = ["router"]

router = APIRouter(tags=["fleet runs"])

Reader = Annotated[Principal, Depends(require_role("Tenants.Read"))]
Writer = Annotated[Principal, Depends(require_role("Tenants.Write"))]

_REFUSALS: dict[int | str, dict[str, object]] = {
    401: {"model": Problem, "description": "no valid token"},
    403: {"model": Problem, "description": "valid token without the needed app role"},
}
_UNKNOWN: dict[int | str, dict[str, object]] = {
    **_REFUSALS, 404: {"model": Problem, "description": "unknown fleet run"}}
_STATE: dict[int | str, dict[str, object]] = {
    **_UNKNOWN, 409: {"model": Problem, "description": "the fleet run's status forbids it"}}


@router.post("/fleet-runs", status_code=202, response_model=FleetRunOut | FleetPreviewOut,
             responses={**_REFUSALS, 422: {"model": Problem, "description": (
                 "invalid request (field, value, rule), or the migrations folder lacks the "
                 "revision asked for")}})
def start_fleet_run(
    body: FleetRequestIn, principal: Writer, engine: EngineDep, response: Response,
    dry_run: Annotated[bool, Query(description="list what each tenant would get (the "
                                               "pending revisions), change nothing")] = False,
) -> FleetRunOut | FleetPreviewOut:
    """Start a fleet run: the canary set first, then batches, at most ``concurrency`` child
    runs at once, stopping by itself when failures pass the threshold. Poll
    ``GET /api/fleet-runs/{id}``."""
    request = FleetRequest(
        operation=body.operation,
        selection=Selection(all=body.selection.all, plan=body.selection.plan,
                            tag=body.selection.tag, tenants=tuple(body.selection.tenants)),
        options=body.options, canary=body.canary, concurrency=body.concurrency,
        batch_size=body.batch_size, max_failures=body.max_failures,
        max_failure_percent=body.max_failure_percent,
        no_failure_limit=body.no_failure_limit)
    runs = FleetRuns(engine)
    if dry_run:
        response.status_code = 200
        return FleetPreviewOut.of(runs.preview(request))
    fleet = runs.create(request, requested_by=requester(principal, engine))
    response.headers["Location"] = f"/api/fleet-runs/{fleet.id}"
    return FleetRunOut.of(fleet)


@router.get("/fleet-runs", response_model=FleetRunPage, responses=_REFUSALS)
def list_fleet_runs(
    principal: Reader, engine: EngineDep,
    status: FleetStatusName | None = None,
    operation: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> FleetRunPage:
    """Fleet runs, newest first."""
    fleets, total = engine.catalog.fleets.page(status=status, operation=operation,
                                               limit=limit, offset=offset)
    return FleetRunPage(items=[FleetRunOut.of(f) for f in fleets], total=total, limit=limit,
                        offset=offset)


@router.get("/fleet-runs/{fleet_id}", response_model=FleetRunOut, responses=_UNKNOWN)
def show_fleet_run(fleet_id: str, principal: Reader, engine: EngineDep) -> FleetRunOut:
    """The fleet run and its progress."""
    return FleetRunOut.of(FleetRuns(engine).get(fleet_id))


@router.get("/fleet-runs/{fleet_id}/targets", response_model=FleetTargetPage,
            responses=_UNKNOWN)
def list_fleet_targets(
    fleet_id: str, principal: Reader, engine: EngineDep,
    status: TargetStatusName | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> FleetTargetPage:
    """The fleet's tenants in order (canary set first), each with its status, child run,
    and what it reported or why it failed."""
    targets = FleetRuns(engine).targets(fleet_id, status=status, limit=limit, offset=offset)
    return FleetTargetPage(items=[FleetTargetOut.of(t) for t in targets], limit=limit,
                           offset=offset)


@router.post("/fleet-runs/{fleet_id}/pause", response_model=FleetRunOut, responses=_STATE)
def pause_fleet_run(fleet_id: str, principal: Writer, engine: EngineDep) -> FleetRunOut:
    """Stop starting tenants (runs in flight finish); resume carries on."""
    return FleetRunOut.of(FleetRuns(engine).pause(
        fleet_id, requested_by=requester(principal, engine)))


@router.post("/fleet-runs/{fleet_id}/resume", response_model=FleetRunOut, status_code=202,
             responses=_STATE)
def resume_fleet_run(fleet_id: str, principal: Writer, engine: EngineDep) -> FleetRunOut:
    """Run a stopped, paused or failed fleet again: failed and skipped tenants are tried
    again (their failed runs retried from the failed step)."""
    return FleetRunOut.of(FleetRuns(engine).resume(
        fleet_id, requested_by=requester(principal, engine)))


@router.post("/fleet-runs/{fleet_id}/cancel", response_model=FleetRunOut, responses=_STATE)
def cancel_fleet_run(fleet_id: str, principal: Writer, engine: EngineDep) -> FleetRunOut:
    """End the fleet run: pending tenants are not started, runs in flight are cancelled."""
    return FleetRunOut.of(FleetRuns(engine).cancel(
        fleet_id, requested_by=requester(principal, engine)))


@router.get("/certificates", response_model=CertificatePage, responses=_REFUSALS,
            tags=["certificates"])
def list_certificates(principal: Reader, engine: EngineDep) -> CertificatePage:
    """Every live tenant's certificate (hostname, thumbprint, expiry), soonest first;
    ``expiring_soon`` within ``certificates.expiring_soon_days``."""
    window = engine.settings.certificates.expiring_soon_days
    now = dt.datetime.now(dt.timezone.utc)
    items = []
    for tenant in engine.catalog.list_tenants():
        if tenant.status == "offboarded":
            continue
        expires = tenant.certificate_expires_at
        left = (expires - now).total_seconds() / 86400 if expires else None
        items.append(CertificateOut(
            tenant=tenant.slug, status=tenant.status, hostname=tenant.custom_domain,
            thumbprint=tenant.certificate_thumbprint, expires_at=expires,
            days_left=round(left, 1) if left is not None else None,
            expiring_soon=left is not None and left <= window))
    items.sort(key=lambda c: (c.expires_at is None, c.expires_at or now, c.tenant))
    return CertificatePage(items=items, expiring_soon_days=window,
                           expiring_soon=sum(1 for c in items if c.expiring_soon))
