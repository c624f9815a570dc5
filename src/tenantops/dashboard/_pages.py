"""The pages people read: tenants (searched, filtered, a page at a time), one tenant with its
resources and runs, and one run with its live timeline. Every page needs ``Tenants.Read``.

Handlers are plain ``def``s: FastAPI runs them in worker threads, where catalog reads may
block."""

from __future__ import annotations

import datetime as dt
import math
from urllib.parse import urlencode

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import HTMLResponse

from tenantops.catalog import TenantStatus, tenants
from tenantops.dashboard._app import READ, Dashboard
from tenantops.dashboard._deps import ViewerDep
from tenantops.dashboard._history import HISTORY_SHOWN, history_view
from tenantops.dashboard._present import (
    STATUS_LABELS,
    RunView,
    format_time,
    pending_domain_view,
    relative_days,
    run_view,
    split_dns_records,
)

__all__ = ["TENANT_STATUSES", "routes", "unconfigured_routes"]

TENANT_STATUSES: tuple[TenantStatus, ...] = tenants.TENANT_STATUSES
MAX_SEARCH = 100


def _page_number(value: str) -> int:
    return max(1, int(value)) if value.isdigit() and len(value) < 7 else 1


def routes(dashboard: Dashboard) -> APIRouter:
    router = APIRouter(route_class=dashboard.route_class, include_in_schema=False)
    catalog = dashboard.engine.catalog
    size = dashboard.config.page_size

    @router.get("/", name="dashboard_tenants")
    def tenants(request: Request, viewer: ViewerDep, q: str = "", status: str = "",
                page: str = "1") -> HTMLResponse:
        dashboard.require(viewer, READ, "Viewing tenants")
        search = " ".join(q.split())[:MAX_SEARCH]
        chosen: TenantStatus | None = next((s for s in TENANT_STATUSES if s == status), None)
        number = _page_number(page)
        items, total = catalog.page_tenants(status=chosen, search=search or None, limit=size,
                                            offset=(number - 1) * size)
        pages = max(1, math.ceil(total / size))

        def link(to: int) -> str:
            query = {k: v for k, v in (("q", search), ("status", chosen or "")) if v}
            if to > 1:
                query["page"] = str(to)
            return "/" + ("?" + urlencode(query) if query else "")

        return dashboard.render(
            request, "tenants.html", viewer=viewer, tenants=items, total=total, page=number,
            pages=pages, first=(number - 1) * size + 1 if items else 0,
            last=(number - 1) * size + len(items), search=search, status_filter=chosen or "",
            statuses=TENANT_STATUSES, labels=STATUS_LABELS, format_time=format_time,
            previous_link=link(number - 1) if number > 1 else None,
            next_link=link(number + 1) if number < pages else None)

    @router.get("/tenants/{slug}", name="dashboard_tenant")
    def tenant(request: Request, slug: str, viewer: ViewerDep) -> HTMLResponse:
        dashboard.require(viewer, READ, "Viewing a tenant")
        record = catalog.get_tenant(slug)
        history = catalog.list_runs(slug)
        runs = [run_view(r, custom_domain=record.custom_domain) for r in reversed(history)]
        now = dt.datetime.now(dt.timezone.utc)
        expiry = record.certificate_expires_at
        return dashboard.render(
            request, "tenant.html", viewer=viewer, tenant=record, runs=runs,
            active_run=next((r for r in runs if r.active), None),
            retiring=catalog.retiring_domains_of(slug),
            suspension=next((r for r in reversed(history) if r.kind == "suspend"), None)
            if record.status in ("suspended", "suspending") else None,
            dns_records=split_dns_records(record), labels=STATUS_LABELS,
            pending_domain=pending_domain_view(record, history),
            format_time=format_time,
            certificate_due=relative_days(expiry, now) if expiry else "",
            certificate_soon=bool(expiry and expiry - now < dt.timedelta(days=14)),
            changes=history_view(catalog.events.history(slug, limit=HISTORY_SHOWN)))

    def _run_view(run_id: str) -> RunView:
        run = dashboard.engine.get_run(run_id)
        tenant = dashboard.engine.catalog.find_tenant(run.tenant_slug)
        return run_view(run, custom_domain=tenant.custom_domain if tenant else None)

    @router.get("/runs/{run_id}", name="dashboard_run")
    def run(request: Request, run_id: str, viewer: ViewerDep) -> HTMLResponse:
        dashboard.require(viewer, READ, "Viewing a run")
        view = _run_view(run_id)
        return dashboard.render(request, "run.html", viewer=viewer, run=view,
                                poll_ms=int(dashboard.config.poll_seconds * 1000))

    @router.get("/runs/{run_id}/live", name="dashboard_run_live")
    def run_live(request: Request, run_id: str, viewer: ViewerDep) -> HTMLResponse:
        """The part of the run page that changes while it runs (polled by dashboard.js)."""
        dashboard.require(viewer, READ, "Viewing a run")
        view = _run_view(run_id)
        return dashboard.render(request, "run_live.html", viewer=viewer, run=view)

    return router


def unconfigured_routes(dashboard: Dashboard) -> APIRouter:
    """``/`` when settings are missing: which ones, and how to set them."""
    router = APIRouter(include_in_schema=False)

    @router.get("/", name="dashboard_unconfigured")
    def unconfigured(request: Request) -> HTMLResponse:
        return dashboard.render(request, "unconfigured.html", viewer=None, status=503,
                                missing=dashboard.config.missing)

    return router
