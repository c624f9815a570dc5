"""The fleet pages: fleet runs with their progress (done, failed, remaining, why one
stopped), one fleet run with its tenants in order, and the certificates expiring soon.
Every page needs ``Tenants.Read``; starting, pausing and resuming fleets is the API's and the
CLI's (docs/fleet.md)."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import HTMLResponse

from tenantops.dashboard._app import READ, Dashboard
from tenantops.dashboard._deps import ViewerDep
from tenantops.dashboard._present import format_time, relative_days

__all__ = ["routes"]

_SHOWN = 50
_TARGETS_SHOWN = 1000


def routes(dashboard: Dashboard) -> APIRouter:
    router = APIRouter(route_class=dashboard.route_class, include_in_schema=False)
    catalog = dashboard.engine.catalog

    @router.get("/fleet", name="dashboard_fleet")
    def fleet_runs(request: Request, viewer: ViewerDep) -> HTMLResponse:
        dashboard.require(viewer, READ, "Viewing fleet runs")
        fleets, total = catalog.fleets.page(limit=_SHOWN)
        now = dt.datetime.now(dt.timezone.utc)
        window = dashboard.engine.settings.certificates.expiring_soon_days
        expiring = sorted(
            (t for t in catalog.list_tenants() if t.status != "offboarded"
             and t.certificate_expires_at is not None
             and t.certificate_expires_at - now <= dt.timedelta(days=window)),
            key=lambda t: (t.certificate_expires_at, t.slug))
        return dashboard.render(
            request, "fleet.html", viewer=viewer, fleets=fleets, total=total,
            expiring=expiring, window=window, now=now, format_time=format_time,
            relative_days=relative_days)

    @router.get("/fleet/{fleet_id}", name="dashboard_fleet_run")
    def fleet_run(request: Request, viewer: ViewerDep, fleet_id: str) -> HTMLResponse:
        dashboard.require(viewer, READ, "Viewing a fleet run")
        fleet = catalog.fleets.get(fleet_id[:64])  # unknown: the "No such fleet run" page
        targets = catalog.fleets.targets(fleet.id, limit=_TARGETS_SHOWN)
        return dashboard.render(
            request, "fleet_run.html", viewer=viewer, fleet=fleet, targets=targets,
            shown=_TARGETS_SHOWN, format_time=format_time)

    return router
