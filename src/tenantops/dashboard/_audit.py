"""The audit page: state-changing API calls and dashboard actions, newest first, filtered
and a page at a time, live. Needs ``Audit.Read`` (the API's ``GET /api/audit`` shows the
same)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from urllib.parse import urlencode

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import HTMLResponse

from tenantops.catalog import AuditOutcome
from tenantops.dashboard._app import AUDIT, Dashboard
from tenantops.dashboard._deps import ViewerDep
from tenantops.dashboard._live import LiveView
from tenantops.dashboard._present import format_time
from tenantops.dashboard._signin import Viewer

__all__ = ["OUTCOMES", "routes"]

OUTCOMES: tuple[AuditOutcome, ...] = ("succeeded", "refused", "failed")
_MAX_FILTER = 256


def _page_number(value: str) -> int:
    return max(1, int(value)) if value.isdigit() and len(value) < 7 else 1


def routes(dashboard: Dashboard) -> APIRouter:
    router = APIRouter(route_class=dashboard.route_class, include_in_schema=False)
    audit = dashboard.engine.catalog.audit
    size = dashboard.config.page_size

    def audit_page(request: Request, viewer: Viewer, params: Mapping[str, str],
                   query: Mapping[str, str]) -> LiveView:
        dashboard.require(viewer, AUDIT, "Reading the audit trail")
        outcome = query.get("outcome", "")
        filters = {"tenant": query.get("tenant", "").strip()[:64],
                   "principal": query.get("principal", "").strip()[:_MAX_FILTER],
                   "action": query.get("action", "").strip()[:64],
                   "outcome": next((o for o in OUTCOMES if o == outcome), "")}
        number = _page_number(query.get("page", "1"))
        chosen: AuditOutcome | None = next((o for o in OUTCOMES if o == filters["outcome"]),
                                           None)
        records, total = audit.page(
            tenant=filters["tenant"] or None, principal=filters["principal"] or None,
            action=filters["action"] or None, outcome=chosen, limit=size,
            offset=(number - 1) * size)
        pages = max(1, math.ceil(total / size))

        def link(to: int) -> str:
            shown = {k: v for k, v in filters.items() if v}
            if to > 1:
                shown["page"] = str(to)
            return "/audit" + ("?" + urlencode(shown) if shown else "")

        return LiveView("audit.html", {
            "records": records, "total": total, "page": number, "pages": pages,
            "filters": filters, "outcomes": OUTCOMES, "format_time": format_time,
            "filtered": any(filters.values()),
            "previous_link": link(number - 1) if number > 1 else None,
            "next_link": link(number + 1) if number < pages else None,
        }, frozenset({"audit"}), 1.0)

    dashboard.add_live_page("/audit", audit_page)

    @router.get("/audit", name="dashboard_audit")
    def audit_route(request: Request, viewer: ViewerDep) -> HTMLResponse:
        return dashboard.render_live(
            request, viewer, audit_page(request, viewer, {}, dict(request.query_params)))

    return router
