"""``GET /api/audit``: the audit trail, newest first, a page at a time (``Audit.Read``)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query

from tenantops.api.deps import EngineDep, require_role
from tenantops.api.schemas import AuditOut, AuditPage, Problem
from tenantops.auth import Principal

__all__ = ["AUDIT_READ", "router"]

AUDIT_READ = "Audit.Read"

router = APIRouter(tags=["audit"])

Auditor = Annotated[Principal, Depends(require_role(AUDIT_READ))]


@router.get("/audit", response_model=AuditPage, responses={
    401: {"model": Problem, "description": "no valid token"},
    403: {"model": Problem, "description": "valid token without the Audit.Read app role"},
    422: {"model": Problem, "description": "a filter is invalid: field, value, rule"}})
def list_audit(
    principal: Auditor, engine: EngineDep,
    tenant: Annotated[str | None, Query(max_length=64, description="a tenant's slug")] = None,
    by: Annotated[str | None, Query(
        alias="principal", max_length=256,
        description="a caller: UPN or name, object ID, or application ID")] = None,
    action: Annotated[str | None, Query(
        max_length=64, description="tenant.onboard, run.retry, ...")] = None,
    outcome: Annotated[Literal["succeeded", "refused", "failed"] | None, Query()] = None,
    since: Annotated[dt.datetime | None, Query(
        description="recorded at or after (ISO 8601; UTC without a time zone)")] = None,
    until: Annotated[dt.datetime | None, Query(
        description="recorded before (ISO 8601; UTC without a time zone)")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> AuditPage:
    """State-changing API calls and dashboard actions, refusals included, newest first."""
    since, until = _utc(since), _utc(until)
    items, total = engine.catalog.audit.page(
        tenant=tenant, principal=by, action=action, outcome=outcome, since=since, until=until,
        limit=limit, offset=offset)
    return AuditPage(items=[AuditOut.of(r) for r in items], total=total, limit=limit,
                     offset=offset)


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.timezone.utc)
