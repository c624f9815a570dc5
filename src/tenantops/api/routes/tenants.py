"""``/api/tenants``: onboard (202), list, show, offboard (202)."""

from __future__ import annotations

import hashlib
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query, Response
from starlette.concurrency import run_in_threadpool

from tenantops.api.deps import EngineDep, require_role
from tenantops.api.schemas import (
    DomainOut,
    Problem,
    RunOut,
    TenantAccepted,
    TenantDetail,
    TenantOut,
    TenantPage,
    TenantRequest,
)
from tenantops.auth import Principal
from tenantops.catalog import IdempotencyClaim, Run
from tenantops.errors import ConfirmationError, DomainConflictError
from tenantops.provisioning.engine import Engine
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
    spec = TenantSpec.parse(body.model_dump())
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
    status: Annotated[
        Literal["provisioning", "active", "failed", "offboarding", "offboarded"] | None,
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
                        runs=[RunOut.of(r) for r in reversed(runs)])


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
