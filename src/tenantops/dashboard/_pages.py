"""The pages people read, each live (`LiveView`): the overview (``/``, the landing page),
runs (``/runs``), a run (``/runs/<id>``), tenants (``/tenants``), a tenant
(``/tenants/<slug>``) and events (``/events``); and ``/live/<page>``, the event stream of any
of them (and of the audit page, `tenantops.dashboard._audit`). Every page needs
``Tenants.Read``.

Builders are plain functions run in worker threads (catalog reads block); the page's route
and its stream call the same one, so an update is exactly what a reload would show.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import anyio
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response, StreamingResponse

from tenantops.catalog import DriftState, RunFilter, TenantStatus, tenants
from tenantops.catalog.drift import DRIFT_STATES
from tenantops.catalog.events import EVENT_PREFIX
from tenantops.catalog.run_reports import STOPPED_STEP_STATUSES
from tenantops.catalog.runs import RUN_KINDS
from tenantops.dashboard._app import LIVE_PATH, READ, Dashboard, PageBuilder
from tenantops.dashboard._deps import ViewerDep
from tenantops.dashboard._history import HISTORY_SHOWN, history_view
from tenantops.dashboard._live import LiveView, event_stream
from tenantops.dashboard._overview import (
    CERTIFICATE_DAYS,
    FAILED_HOURS,
    SHOWN,
    TREND_DAYS,
    WAITING_ON,
    active_rows,
    budget_rows,
    day_label,
    describe_trends,
    drifted_tenants,
    expiring,
    failed_recently,
)
from tenantops.dashboard._present import (
    KIND_LABELS,
    STATUS_LABELS,
    format_duration,
    format_time,
    pending_domain_view,
    relative_days,
    run_line,
    run_view,
    split_dns_records,
    trace_id_of,
)
from tenantops.dashboard._signin import Viewer
from tenantops.errors import AuthError
from tenantops.events.history import describe

__all__ = ["RUN_STATUSES", "TENANT_STATUSES", "routes", "unconfigured_routes"]

TENANT_STATUSES: tuple[TenantStatus, ...] = tenants.TENANT_STATUSES
RUN_STATUSES = ("pending", "running", "succeeded", "failed", "cancelled")
MAX_SEARCH = 100
LIST_INTERVAL = 1.0
"""Lists and the overview are rendered again at most once a second."""
EVENT_TYPES = ("run.requested", "run.started", "run.retried", "run.cancelled", "step.failed",
               "tenant.*")


def _page_number(value: str) -> int:
    return max(1, int(value)) if value.isdigit() and len(value) < 7 else 1


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _link(path: str, query: Mapping[str, str], page: int = 1) -> str:
    shown = {k: v for k, v in query.items() if v}
    if page > 1:
        shown["page"] = str(page)
    return path + ("?" + urlencode(shown) if shown else "")


def _day(value: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value) if value else None
    except ValueError:
        return None


def routes(dashboard: Dashboard) -> APIRouter:
    router = APIRouter(route_class=dashboard.route_class, include_in_schema=False)
    catalog = dashboard.engine.catalog
    size = dashboard.config.page_size

    # -- the overview ------------------------------------------------------------------

    def overview(request: Request, viewer: Viewer, params: Mapping[str, str],
                 query: Mapping[str, str]) -> LiveView:
        dashboard.require(viewer, READ, "Viewing the overview")
        now = _now()
        rows = active_rows(catalog.run_reports.active(), now)
        waiting = {key: [r for r in rows if r.waiting_on == key] for key in WAITING_ON}
        failed, failed_total = failed_recently(catalog, now)
        certificates, certificates_total = expiring(catalog, now)
        counts = catalog.tenants.count_by_status()
        trends = dashboard.trends.get()
        return LiveView("overview.html", {
            "now": now, "running": [r for r in rows if r.waiting_on is None],
            "active_total": len(rows), "waiting": waiting, "waiting_on": WAITING_ON,
            "failed": [run_line(r, now) for r in failed], "failed_total": failed_total,
            "failed_hours": FAILED_HOURS, "certificates": certificates,
            "certificates_total": certificates_total, "certificate_days": CERTIFICATE_DAYS,
            "relative_days": relative_days, "counts": counts,
            "tenant_total": sum(counts.values()), "statuses": TENANT_STATUSES,
            "labels": STATUS_LABELS, "drifted": drifted_tenants(catalog),
            "trends": trends, "trend_days": TREND_DAYS, "day_label": day_label,
            "describe_trends": describe_trends, "format_duration": format_duration,
            "format_time": format_time, "shown": SHOWN,
            "budgets": budget_rows(dashboard.engine.budgets()),
        }, frozenset({"runs", "tenants", "stats", "events"}), LIST_INTERVAL)

    # -- tenants -----------------------------------------------------------------------

    def tenant_list(request: Request, viewer: Viewer, params: Mapping[str, str],
                    query: Mapping[str, str]) -> LiveView:
        dashboard.require(viewer, READ, "Viewing tenants")
        search = " ".join(query.get("q", "").split())[:MAX_SEARCH]
        status = query.get("status", "")
        chosen: TenantStatus | None = next((s for s in TENANT_STATUSES if s == status), None)
        number = _page_number(query.get("page", "1"))
        items, total = catalog.page_tenants(status=chosen, search=search or None, limit=size,
                                            offset=(number - 1) * size)
        pages = max(1, math.ceil(total / size))
        filters = {"q": search, "status": chosen or ""}
        return LiveView("tenants.html", {
            "tenants": items, "total": total, "page": number, "pages": pages,
            "first": (number - 1) * size + 1 if items else 0,
            "last": (number - 1) * size + len(items), "search": search,
            "status_filter": chosen or "", "statuses": TENANT_STATUSES,
            "labels": STATUS_LABELS, "format_time": format_time,
            "previous_link": _link("/tenants", filters, number - 1) if number > 1 else None,
            "next_link": _link("/tenants", filters, number + 1) if number < pages else None,
        }, frozenset({"tenants"}), LIST_INTERVAL)

    def tenant_page(request: Request, viewer: Viewer, params: Mapping[str, str],
                    query: Mapping[str, str]) -> LiveView:
        dashboard.require(viewer, READ, "Viewing a tenant")
        slug = params["slug"]
        record, history = catalog.tenant_and_runs(slug)
        runs = [run_view(r, custom_domain=record.custom_domain) for r in reversed(history)]
        now = _now()
        expiry = record.certificate_expires_at
        return LiveView("tenant.html", {
            "tenant": record, "runs": runs,
            "active_run": next((r for r in runs if r.active), None),
            "retiring": catalog.retiring_domains_of(slug),
            "placements": catalog.placements_of(slug),
            "suspension": next((r for r in reversed(history) if r.kind == "suspend"), None)
            if record.status in ("suspended", "suspending") else None,
            "dns_records": split_dns_records(record), "labels": STATUS_LABELS,
            "pending_domain": pending_domain_view(record, history),
            "format_time": format_time,
            "certificate_due": relative_days(expiry, now) if expiry else "",
            "certificate_soon": bool(expiry and expiry - now < dt.timedelta(days=14)),
            "certificate_expired": bool(expiry and expiry <= now),
            "changes": history_view(catalog.events.history(slug, limit=HISTORY_SHOWN)),
            "drift": catalog.last_drift(slug),
        }, frozenset({f"tenant:{slug}"}))

    # -- runs --------------------------------------------------------------------------

    def run_list(request: Request, viewer: Viewer, params: Mapping[str, str],
                 query: Mapping[str, str]) -> LiveView:
        dashboard.require(viewer, READ, "Viewing runs")
        status = query.get("status", "")
        kind = query.get("kind", "")
        step = query.get("step", "").strip()[:64]
        tenant = " ".join(query.get("tenant", "").split())[:MAX_SEARCH]
        since_text, until_text = query.get("since", ""), query.get("until", "")
        since, until = _day(since_text), _day(until_text)
        errors: dict[str, str] = {}
        if since_text and since is None:
            errors["since"] = (f"From must be a date as YYYY-MM-DD; {since_text[:40]!r} is "
                               "not one")
        if until_text and until is None:
            errors["until"] = (f"Until must be a date as YYYY-MM-DD; {until_text[:40]!r} is "
                               "not one")
        filters = RunFilter(
            status=status if status in RUN_STATUSES else None,
            kind=kind if kind in RUN_KINDS else None, step=step or None,
            tenant=tenant or None,
            since=dt.datetime.combine(since, dt.time(), tzinfo=dt.timezone.utc)
            if since else None,
            until=dt.datetime.combine(until + dt.timedelta(days=1), dt.time(),
                                      tzinfo=dt.timezone.utc) if until else None)
        number = _page_number(query.get("page", "1"))
        found, total = catalog.run_reports.page(filters, limit=size,
                                                offset=(number - 1) * size)
        pages = max(1, math.ceil(total / size))
        shown = {"status": filters.status or "", "kind": filters.kind or "",
                 "step": step, "tenant": tenant,
                 "since": since_text if since else "", "until": until_text if until else ""}
        now = _now()
        return LiveView("runs.html", {
            "runs": [run_line(r, now) for r in found], "total": total, "page": number,
            "pages": pages, "first": (number - 1) * size + 1 if found else 0,
            "last": (number - 1) * size + len(found), "filters": shown,
            "filtered": any(shown.values()), "errors": errors, "statuses": RUN_STATUSES,
            "kinds": tuple(RUN_KINDS), "kind_labels": KIND_LABELS, "labels": STATUS_LABELS,
            "raw": {"since": since_text[:40], "until": until_text[:40]},
            "steps": catalog.run_reports.step_names() if not step else [step],
            "stopped": STOPPED_STEP_STATUSES,
            "previous_link": _link("/runs", shown, number - 1) if number > 1 else None,
            "next_link": _link("/runs", shown, number + 1) if number < pages else None,
        }, frozenset({"runs"}), LIST_INTERVAL)

    def run_page(request: Request, viewer: Viewer, params: Mapping[str, str],
                 query: Mapping[str, str]) -> LiveView:
        dashboard.require(viewer, READ, "Viewing a run")
        run_id = params["run_id"]
        run = dashboard.engine.get_run(run_id)
        tenant = catalog.find_tenant(run.tenant_slug)
        view = run_view(run, custom_domain=tenant.custom_domain if tenant else None)
        history = [(e, describe(e)) for e in catalog.events.page(run_id=run_id, limit=200)]
        trace_id = trace_id_of(run.trace_context)
        trace_url = dashboard.config.trace_url
        return LiveView("run.html", {
            "run": view, "history": history, "format_time": format_time,
            "trace_id": trace_id,
            "trace_link": trace_url.replace("{trace_id}", trace_id)
            if trace_id and trace_url else None,
        }, frozenset({f"run:{run_id}"}))

    # -- events ------------------------------------------------------------------------

    def event_list(request: Request, viewer: Viewer, params: Mapping[str, str],
                   query: Mapping[str, str]) -> LiveView:
        dashboard.require(viewer, READ, "Viewing events")
        tenant = query.get("tenant", "").strip()[:32]
        chosen = query.get("type", "")
        kind = chosen if chosen in EVENT_TYPES else ""
        before_text = query.get("before", "")
        before = int(before_text) if before_text.isdigit() and len(before_text) < 12 else None
        events = catalog.events.page(
            tenant=tenant or None, types=[EVENT_PREFIX + kind] if kind else [],
            before=before, limit=size + 1, newest_first=True)
        more = len(events) > size
        events = events[:size]
        filters = {"tenant": tenant, "type": kind}
        older = ({**filters, "before": str(events[-1].seq)} if more and events else None)
        return LiveView("events.html", {
            "events": [(e, describe(e)) for e in events], "filters": filters,
            "filtered": any(filters.values()), "types": EVENT_TYPES, "prefix": EVENT_PREFIX,
            "older_link": _link("/events", older) if older else None,
            "newest_link": _link("/events", filters) if before is not None else None,
            "format_time": format_time,
        }, frozenset({"events"}) if before is None else frozenset(), LIST_INTERVAL)

    # -- drift -------------------------------------------------------------------------

    def drift_list(request: Request, viewer: Viewer, params: Mapping[str, str],
                   query: Mapping[str, str]) -> LiveView:
        dashboard.require(viewer, READ, "Viewing drift")
        state = query.get("state", "")
        chosen: DriftState | None = next((s for s in DRIFT_STATES if s == state), None)
        reports, _ = catalog.drift.page(states=[chosen] if chosen else None, limit=500)
        return LiveView("drift.html", {
            "reports": reports, "counts": catalog.drift.counts(),
            "state_filter": chosen or "",
            "scheduled": dashboard.engine.settings.drift.check_interval_seconds,
            "format_time": format_time,
        }, frozenset({"events", "tenants"}), LIST_INTERVAL)

    pages: list[tuple[str, str, PageBuilder]] = [
        ("/", "dashboard_overview", overview),
        ("/tenants", "dashboard_tenants", tenant_list),
        ("/tenants/{slug}", "dashboard_tenant", tenant_page),
        ("/runs", "dashboard_runs", run_list),
        ("/runs/{run_id}", "dashboard_run", run_page),
        ("/events", "dashboard_events", event_list),
        ("/drift", "dashboard_drift", drift_list),
    ]
    for path, name, builder in pages:
        dashboard.add_live_page(_pattern(path), builder)
        router.add_api_route(path, _page_route(dashboard, builder), name=name,
                             methods=["GET"], response_class=HTMLResponse)

    @router.get(LIVE_PATH + "/{page:path}", name="dashboard_live")
    async def live(request: Request, page: str, viewer: ViewerDep) -> Response:
        """The event stream of the page at ``/<page>`` (module docstring)."""
        found = dashboard.live_page("/" + page)
        if found is None:
            return PlainTextResponse(f"no page at /{page} updates live", status_code=404)
        builder, params = found
        query = {k: v for k, v in request.query_params.items() if k != "last"}
        view = await anyio.to_thread.run_sync(builder, request, viewer, params, query)
        config = dashboard.config

        def render() -> str:
            fresh = builder(request, viewer, params, query)
            return dashboard.render_block(request, fresh.template, "live", viewer=viewer,
                                          context=fresh.context)

        def signed_in() -> bool:
            try:
                return dashboard.sign_in is not None and \
                    dashboard.sign_in.viewer(request) is not None
            except AuthError:
                return False

        last = request.headers.get("last-event-id") or request.query_params.get("last")
        body = event_stream(
            dashboard.watcher, view, render, last_id=last, signed_in=signed_in,
            is_disconnected=request.is_disconnected, once=config.stream_once,
            # A buffering host delivers nothing before the response ends, and ends it
            # itself at 230 s: such a response ends well before.
            stream_seconds=min(config.stream_seconds, 200.0) if config.stream_once
            else config.stream_seconds,
            keepalive_seconds=config.keepalive_seconds,
            retry_ms=250 if config.stream_once else 2000)
        response = StreamingResponse(body, media_type="text/event-stream", headers={
            "X-Accel-Buffering": "no"})
        dashboard.secure_headers(response)
        return response

    return router


def _pattern(path: str) -> str:
    """``/runs/{run_id}`` as a regular expression with named groups."""
    return "".join(f"(?P<{part[1:-1]}>[^/]+)" if part.startswith("{") else part
                   for part in path.replace("{", "\0{").replace("}", "}\0").split("\0"))


def _page_route(dashboard: Dashboard, builder: PageBuilder) -> Any:
    def page(request: Request, viewer: ViewerDep) -> HTMLResponse:
        view = builder(request, viewer, dict(request.path_params), dict(request.query_params))
        return dashboard.render_live(request, viewer, view)

    return page


def unconfigured_routes(dashboard: Dashboard) -> APIRouter:
    """``/`` when settings are missing: which ones, and how to set them."""
    router = APIRouter(include_in_schema=False)

    @router.get("/", name="dashboard_unconfigured")
    def unconfigured(request: Request) -> HTMLResponse:
        return dashboard.render(request, "unconfigured.html", viewer=None, status=503,
                                missing=dashboard.config.missing)

    return router
