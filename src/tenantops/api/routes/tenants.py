"""``/api/tenants``: onboard (202), list, show, change (PATCH, 202), suspend and resume
(202), offboard (202). Every change can be previewed first (``?dry_run=true``)."""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Response
from starlette.concurrency import run_in_threadpool

from tenantops.api.deps import EngineDep, require_role
from tenantops.api.schemas import (
    ChangeAccepted,
    DomainOut,
    MoveRequest,
    PlacementOut,
    PreviewOut,
    Problem,
    ResumeRequest,
    RetiringDomainOut,
    RunOut,
    SuspendRequest,
    SuspensionOut,
    TenantAccepted,
    TenantDetail,
    TenantOut,
    TenantPage,
    TenantPatch,
    TenantRequest,
    TenantStatusName,
)
from tenantops.auth import Principal
from tenantops.catalog import IdempotencyClaim, Run
from tenantops.errors import ConfirmationError, DomainConflictError
from tenantops.provisioning.engine import Engine
from tenantops.provisioning.run_requests import TenantChange
from tenantops.provisioning.spec import TenantSpec

__all__ = ["router"]

router = APIRouter(tags=["tenants"])

Reader = Annotated[Principal, Depends(require_role("Tenants.Read"))]
Writer = Annotated[Principal, Depends(require_role("Tenants.Write"))]
Deleter = Annotated[Principal, Depends(require_role("Tenants.Delete"))]

_REFUSALS: dict[int | str, dict[str, object]] = {
    401: {"model": Problem, "description": "no valid token"},
    403: {"model": Problem, "description": "valid token without the needed app role"},
}


def requester(principal: Principal, engine: Engine) -> str:
    """Who asked, as runs record it: a person's name and UPN, or an application's configured
    display name (``auth.application_names``), else its app ID."""
    return principal.describe(engine.settings.auth.application_names)


def caller_scope(principal: Principal) -> str:
    """Whose ``Idempotency-Key`` it is: the caller's tenant and object ID (stable for a
    person, an application's service principal, a managed identity)."""
    return f"{principal.tid}/{principal.oid}"


@router.post(
    "/tenants", status_code=202, response_model=TenantAccepted,
    responses={**_REFUSALS,
               409: {"model": Problem, "description": "slug taken by another spec, custom "
                     "domain equal to, above or below another tenant's, or Idempotency-Key "
                     "sent before with another request"},
               422: {"model": Problem, "description": "invalid spec: field, value, rule"}},
)
def onboard(
    body: TenantRequest, principal: Writer, engine: EngineDep, response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> TenantAccepted:
    """Onboard a tenant. The same spec again (or the same ``Idempotency-Key`` from the same
    caller) returns the same run; a different spec for an existing slug is a 409 that says
    what differs. A custom domain equal to, above or below another tenant's is a 409 that
    names that tenant only to callers holding Tenants.Read."""
    spec = TenantSpec.parse(body.model_dump(), plans=engine.settings.plans)
    claim = None
    if idempotency_key:
        fingerprint = hashlib.sha256(spec.model_dump_json().encode()).hexdigest()
        claim = IdempotencyClaim(caller_scope(principal), idempotency_key, fingerprint)
    try:
        run = engine.onboard(spec, requested_by=requester(principal, engine), idempotency=claim)
    except DomainConflictError as exc:
        if principal.has_role("Tenants.Read"):
            raise exc.naming_holder() from None
        raise
    return _accepted(engine, run, response)


def _accepted(engine: Engine, run: Run, response: Response) -> TenantAccepted:
    tenant = engine.catalog.get_tenant(run.tenant_slug)
    response.headers["Location"] = f"/api/runs/{run.id}"
    return TenantAccepted(tenant=TenantOut.of(tenant), run=RunOut.of(run))


@router.get("/tenants", response_model=TenantPage, responses=_REFUSALS)
def list_tenants(
    principal: Reader, engine: EngineDep,
    status: Annotated[TenantStatusName | None,
                      Query(description="only tenants in this status")] = None,
    search: Annotated[str | None, Query(max_length=100,
                                        description="part of slug, name or domain")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> TenantPage:
    """Tenants, newest first, a page at a time."""
    items, total = engine.catalog.page_tenants(status=status, search=search, limit=limit,
                                               offset=offset)
    return TenantPage(items=[TenantOut.of(t) for t in items], total=total, limit=limit,
                      offset=offset)


@router.get("/tenants/{slug}", response_model=TenantDetail,
            responses={**_REFUSALS, 404: {"model": Problem, "description": "unknown slug"}})
async def show_tenant(slug: str, principal: Reader, engine: EngineDep) -> TenantDetail:
    """The tenant's spec, status, resources and runs."""
    # One thread hop for the one read transaction; the rest runs on the event loop.
    tenant, runs = await run_in_threadpool(engine.catalog.tenant_and_runs, slug)
    return TenantDetail(**TenantOut.of(tenant).model_dump(),
                        domain=DomainOut.of(tenant, runs),
                        retiring_domains=[RetiringDomainOut.of(r) for r in
                                          engine.catalog.retiring_domains_of(slug)],
                        suspension=SuspensionOut.of(tenant, runs),
                        placements=[PlacementOut.of(p) for p in
                                    engine.catalog.placements_of(slug)],
                        runs=[RunOut.of(r) for r in reversed(runs)])


_CHANGE_REFUSALS: dict[int | str, dict[str, object]] = {
    **_REFUSALS, 404: {"model": Problem, "description": "unknown slug"},
    409: {"model": Problem, "description": "a run of the tenant is in progress (named), the "
          "tenant's status forbids it, it changed meanwhile, the custom domain is another "
          "tenant's, or the Idempotency-Key was sent with another request"},
    422: {"model": Problem, "description": "an invalid value: field, value, rule"},
}
DryRun = Annotated[bool, Query(description="preview: what would change, changing nothing")]
IdempotencyKey = Annotated[str | None, Header(max_length=200)]


def _claim(principal: Principal, key: str | None, *parts: str) -> IdempotencyClaim | None:
    if not key:
        return None
    fingerprint = hashlib.sha256("\n".join(parts).encode()).hexdigest()
    return IdempotencyClaim(caller_scope(principal), key, fingerprint)


def _changed(engine: Engine, slug: str, run: Run | None, response: Response) -> ChangeAccepted:
    tenant = engine.catalog.get_tenant(slug)
    if run is None:
        response.status_code = 200
        return ChangeAccepted(tenant=TenantOut.of(tenant), run=None)
    response.headers["Location"] = f"/api/runs/{run.id}"
    if run.finished:
        response.status_code = 200
    return ChangeAccepted(tenant=TenantOut.of(tenant), run=RunOut.of(run))


@router.patch(
    "/tenants/{slug}", status_code=202, response_model=ChangeAccepted | PreviewOut,
    responses=_CHANGE_REFUSALS,
)
def update_tenant(
    slug: str, body: TenantPatch, principal: Writer, engine: EngineDep, response: Response,
    dry_run: DryRun = False, idempotency_key: IdempotencyKey = None,
) -> ChangeAccepted | PreviewOut:
    """Change a tenant: its name, custom domain (the previous one keeps serving for the
    grace period, then is removed), plan, administrator (invited; the previous one is kept
    unless ``remove_previous_admin``) or tags. ``202`` with the run; ``200`` with no run when
    the tenant already is as asked; the same request while its run is active returns that
    run; another change then is a 409 naming it."""
    change = TenantChange(
        display_name=body.display_name, custom_domain=body.custom_domain, plan=body.plan,
        admin_email=body.admin_email, tags=dict(body.tags),
        remove_previous_admin=body.remove_previous_admin, grace_seconds=body.grace_seconds,
        reason=body.reason)
    if dry_run:
        response.status_code = 200
        return PreviewOut.of(engine.preview_update(slug, change))
    claim = _claim(principal, idempotency_key, "update", slug, body.model_dump_json())
    try:
        run = engine.update(slug, change, requested_by=requester(principal, engine),
                            idempotency=claim)
    except DomainConflictError as exc:
        if principal.has_role("Tenants.Read"):
            raise exc.naming_holder() from None
        raise
    return _changed(engine, slug, run, response)


@router.post("/tenants/{slug}/suspend", status_code=202,
             response_model=ChangeAccepted | PreviewOut, responses=_CHANGE_REFUSALS)
def suspend_tenant(
    slug: str, body: SuspendRequest, principal: Writer, engine: EngineDep, response: Response,
    dry_run: DryRun = False, idempotency_key: IdempotencyKey = None,
) -> ChangeAccepted | PreviewOut:
    """Suspend a tenant: its hostname answers a suspended page, its organization is disabled
    and its database login cannot sign in; nothing is deleted. ``reason`` is kept in its
    history."""
    if dry_run:
        response.status_code = 200
        return PreviewOut.of(engine.preview_suspension(slug, reason=body.reason))
    claim = _claim(principal, idempotency_key, "suspend", slug, body.model_dump_json())
    run = engine.suspend(slug, reason=body.reason, requested_by=requester(principal, engine),
                         idempotency=claim)
    return _changed(engine, slug, run, response)


@router.post("/tenants/{slug}/resume", status_code=202,
             response_model=ChangeAccepted | PreviewOut, responses=_CHANGE_REFUSALS)
def resume_tenant(
    slug: str, principal: Writer, engine: EngineDep, response: Response,
    body: ResumeRequest | None = None, dry_run: DryRun = False,
    idempotency_key: IdempotencyKey = None,
) -> ChangeAccepted | PreviewOut:
    """Resume a suspended tenant: each suspended resource is restored."""
    if dry_run:
        response.status_code = 200
        return PreviewOut.of(engine.preview_resumption(slug))
    reason = body.reason if body is not None else None
    claim = _claim(principal, idempotency_key, "resume", slug, reason or "")
    run = engine.resume(slug, reason=reason, requested_by=requester(principal, engine),
                        idempotency=claim)
    return _changed(engine, slug, run, response)


@router.post("/tenants/{slug}/move", status_code=202,
             response_model=ChangeAccepted | PreviewOut, responses=_CHANGE_REFUSALS)
def move_tenant(
    slug: str, body: MoveRequest, principal: Writer, engine: EngineDep, response: Response,
    dry_run: DryRun = False, idempotency_key: IdempotencyKey = None,
) -> ChangeAccepted | PreviewOut:
    """Move the tenant's data to another server (``server``; none: the least-loaded of its
    plan's pool with room): copy, write freeze, row-count check, switch, and removal of the
    old copy after ``grace_seconds``. ``abandon`` undoes a move that did not switch. A
    durable update run (docs/placement.md)."""
    if dry_run:
        response.status_code = 200
        return PreviewOut.of(engine.preview_move(slug, server=body.server, abandon=body.abandon,
                                                 grace_seconds=body.grace_seconds))
    claim = _claim(principal, idempotency_key, "move", slug, body.model_dump_json())
    run = engine.move(slug, server=body.server, abandon=body.abandon,
                      grace_seconds=body.grace_seconds, reason=body.reason,
                      requested_by=requester(principal, engine), idempotency=claim)
    return _changed(engine, slug, run, response)


@router.delete(
    "/tenants/{slug}", status_code=202, response_model=RunOut,
    responses={**_REFUSALS, 404: {"model": Problem, "description": "unknown slug"},
               409: {"model": Problem, "description": "another run is active"},
               422: {"model": Problem, "description": "confirm does not match the slug"}},
)
def offboard(
    slug: str, principal: Deleter, engine: EngineDep, response: Response,
    confirm: Annotated[str, Query(description="the slug again, to confirm")],
    keep_database: Annotated[bool, Query(description="keep the tenant's database")] = False,
) -> RunOut:
    """Offboard a tenant: remove its resources in reverse order. ``confirm`` must repeat
    the slug."""
    if confirm != slug:
        raise ConfirmationError(slug, confirm)
    engine.catalog.get_tenant(slug)
    run = engine.offboard(slug, requested_by=requester(principal, engine),
                          keep_database=keep_database)
    response.headers["Location"] = f"/api/runs/{run.id}"
    return RunOut.of(run)
