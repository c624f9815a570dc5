"""The audit page: state-changing API calls and dashboard actions, newest first, filtered
and a page at a time. Needs ``Audit.Read`` (the API's ``GET /api/audit`` shows the same)."""

from __future__ import annotations

import math
from urllib.parse import urlencode

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import HTMLResponse

from tenantops.catalog import AuditOutcome
from tenantops.dashboard._app import AUDIT, Dashboard
from tenantops.dashboard._deps import ViewerDep
from tenantops.dashboard._present import format_time

__all__ = ["OUTCOMES", "routes"]

OUTCOMES: tuple[AuditOutcome, ...] = ("succeeded", "refused", "failed")
_MAX_FILTER = 256


def _page_number(value: str) -> int:
    return max(1, int(value)) if value.isdigit() and len(value) < 7 else 1


def routes(dashboard: Dashboard) -> APIRouter:
    router = APIRouter(route_class=dashboard.route_class, include_in_schema=False)
    audit = dashboard.engine.catalog.audit
    size = dashboard.config.page_size

    @router.get("/audit", name="dashboard_audit")
    def audit_page(request: Request, viewer: ViewerDep, tenant: str = "", principal: str = "",
                   action: str = "", outcome: str = "", page: str = "1") -> HTMLResponse:
        dashboard.require(viewer, AUDIT, "Reading the audit trail")
        filters = {"tenant": tenant.strip()[:64], "principal": principal.strip()[:_MAX_FILTER],
                   "action": action.strip()[:64],
                   "outcome": next((o for o in OUTCOMES if o == outcome), "")}
        number = _page_number(page)
        chosen: AuditOutcome | None = next((o for o in OUTCOMES if o == filters["outcome"]),
                                           None)
        records, total = audit.page(
            tenant=filters["tenant"] or None, principal=filters["principal"] or None,
            action=filters["action"] or None, outcome=chosen, limit=size,
            offset=(number - 1) * size)
        pages = max(1, math.ceil(total / size))

        def link(to: int) -> str:
            query = {k: v for k, v in filters.items() if v}
            if to > 1:
                query["page"] = str(to)
            return "/audit" + ("?" + urlencode(query) if query else "")

        return dashboard.render(
            request, "audit.html", viewer=viewer, records=records, total=total, page=number,
            pages=pages, filters=filters, outcomes=OUTCOMES, format_time=format_time,
            filtered=any(filters.values()),
            previous_link=link(number - 1) if number > 1 else None,
            next_link=link(number + 1) if number < pages else None)

    return router
