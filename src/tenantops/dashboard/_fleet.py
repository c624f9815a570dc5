"""The fleet pages: fleet runs with their progress (done, failed, remaining, why one
stopped), one fleet run with its tenants in order, and the certificates expiring soon
(``Tenants.Read``); starting a fleet run and pausing, resuming or cancelling one
(``Tenants.Write``, the role of the API's ``POST /api/fleet-runs`` routes; docs/fleet.md).

Starting one takes two steps, as ``tenantops fleet ... --dry-run`` then without: the form
shows what each selected tenant would get (`FleetRuns.preview`), and the confirmation, which
carries the same fields, creates the fleet run (`FleetRuns.create`) and answers ``303`` to
its page. Every ``POST`` carries the session's CSRF token (`CheckedViewer`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Form
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from tenantops.dashboard._actions import requester
from tenantops.dashboard._app import READ, WRITE, Dashboard
from tenantops.dashboard._deps import CheckedViewer, ViewerDep
from tenantops.dashboard._present import format_time, relative_days
from tenantops.dashboard._signin import Viewer
from tenantops.errors import MigrationError, SpecError, SpecProblem
from tenantops.provisioning.fleet import OPERATIONS, FleetRequest, FleetRuns, Selection

__all__ = ["FLEET_LABELS", "fleet_request", "routes"]

FLEET_LABELS = {
    "operation": "Operation", "selection": "Tenants", "plan": "Plan", "tag": "Tag",
    "tenants": "Slugs", "revision": "Revision", "within_days": "Expiring within (days)",
    "canary": "Canary tenants", "concurrency": "Concurrency", "batch_size": "Batch size",
    "max_failures": "Stop after failures", "max_failure_percent": "Stop after failure %",
}
"""The start form's fields, by the name `FleetRequest` and its `SpecError` use."""

FLEET_FIELDS = (*FLEET_LABELS, "no_failure_limit")
_SELECTIONS = ("all", "plan", "tag", "tenants")


def _number(values: Mapping[str, str], name: str, kind: type[int] | type[float],
            problems: list[SpecProblem]) -> Any:
    text = values.get(name, "").strip()
    if not text:
        return None
    try:
        return kind(text)
    except ValueError:
        problems.append(SpecProblem(name, text, "must be a whole number" if kind is int
                                    else "must be a number"))
        return None


def fleet_request(values: Mapping[str, str]) -> FleetRequest:
    """The `FleetRequest` a start form asks for (blank numbers: the ``[fleet]`` settings);
    `SpecError` naming each field that is not a number or a choice offered."""
    problems: list[SpecProblem] = []
    chosen = values.get("selection", "")
    if chosen not in _SELECTIONS:
        problems.append(SpecProblem("selection", chosen or None,
                                    f"must be one of {', '.join(_SELECTIONS)}"))
    numbers = {name: _number(values, name, int, problems)
               for name in ("canary", "concurrency", "batch_size", "max_failures")}
    percent = _number(values, "max_failure_percent", float, problems)
    operation = values.get("operation", "")
    options: dict[str, Any] = {}
    if operation == "migrate":
        options["revision"] = values.get("revision", "").strip() or None
    elif operation == "renew-certificates":
        within = _number(values, "within_days", float, problems)
        if within is not None:
            options["within_days"] = within
    if problems:
        raise SpecError(problems)
    slugs = tuple(s for s in re.split(r"[\s,]+", values.get("tenants", "")) if s)
    selection = Selection(
        all=chosen == "all",
        plan=(values.get("plan") or None) if chosen == "plan" else None,
        tag=(values.get("tag", "").strip() or None) if chosen == "tag" else None,
        tenants=slugs if chosen == "tenants" else ())
    return FleetRequest(operation=operation, selection=selection, options=options,
                        max_failure_percent=percent,
                        no_failure_limit=values.get("no_failure_limit") == "on", **numbers)

_SHOWN = 50
_TARGETS_SHOWN = 1000


def routes(dashboard: Dashboard) -> APIRouter:
    router = APIRouter(route_class=dashboard.route_class, include_in_schema=False)
    engine = dashboard.engine
    catalog = engine.catalog
    names = engine.settings.auth.application_names

    def start_form(request: Request, viewer: Viewer, values: Mapping[str, str], *,
                   status: int = 200, errors: Mapping[str, str] | None = None,
                   summary: list[tuple[str, str]] | None = None,
                   preview: Any = None) -> HTMLResponse:
        return dashboard.render(
            request, "fleet_new.html", viewer=viewer, status=status, values=values,
            errors=errors or {}, summary=summary or [], preview=preview,
            operations=sorted(OPERATIONS), plans=tuple(engine.settings.plans),
            defaults=engine.settings.fleet, field_labels=FLEET_LABELS)

    @router.get("/fleet/new", name="dashboard_fleet_new")
    def new_fleet_page(request: Request, viewer: ViewerDep) -> HTMLResponse:
        dashboard.require(viewer, WRITE, "Starting a fleet run")
        return start_form(request, viewer, {"operation": "migrate", "selection": "all"})

    @router.post("/fleet/new", name="dashboard_fleet_new_submit")
    def start_fleet(
        request: Request, viewer: CheckedViewer,
        operation: Annotated[str, Form()] = "",
        selection: Annotated[str, Form()] = "",
        plan: Annotated[str, Form()] = "",
        tag: Annotated[str, Form()] = "",
        tenants: Annotated[str, Form()] = "",
        revision: Annotated[str, Form()] = "",
        within_days: Annotated[str, Form()] = "",
        canary: Annotated[str, Form()] = "",
        concurrency: Annotated[str, Form()] = "",
        batch_size: Annotated[str, Form()] = "",
        max_failures: Annotated[str, Form()] = "",
        max_failure_percent: Annotated[str, Form()] = "",
        no_failure_limit: Annotated[str, Form()] = "",
        confirm: Annotated[str, Form()] = "",
    ) -> Response:
        """Without ``confirm``: the dry run of what was asked, per tenant. With it: start."""
        dashboard.require(viewer, WRITE, "Starting a fleet run")
        values = {"operation": operation, "selection": selection, "plan": plan, "tag": tag,
                  "tenants": tenants, "revision": revision, "within_days": within_days,
                  "canary": canary, "concurrency": concurrency, "batch_size": batch_size,
                  "max_failures": max_failures, "max_failure_percent": max_failure_percent,
                  "no_failure_limit": no_failure_limit}
        runs = FleetRuns(engine)
        try:
            asked = fleet_request(values)
            if confirm != "yes":
                return start_form(request, viewer, values, preview=runs.preview(asked))
            fleet = runs.create(asked, requested_by=requester(viewer.principal, names))
        except SpecError as exc:
            errors: dict[str, str] = {}
            summary: list[tuple[str, str]] = []
            for problem in exc.problems:
                name = problem.field.split(".")[-1]
                known = name if name in FLEET_LABELS else ""
                shown = f"{problem.value!r}" if problem.value is not None else "nothing"
                message = f"is {shown}: {problem.rule}" if known else (
                    f"{problem.field} is {shown}: {problem.rule}")
                if known:
                    errors.setdefault(known, message)
                summary.append((known, message))
            return start_form(request, viewer, values, status=422, errors=errors,
                              summary=summary)
        except MigrationError as exc:  # the revision asked for is not in migrations.folder
            message = f"is {revision!r}: {exc}"
            return start_form(request, viewer, values, status=422,
                              errors={"revision": message}, summary=[("revision", message)])
        return RedirectResponse(f"/fleet/{fleet.id}", status_code=303)

    def control(fleet_id: str, viewer: Viewer, action: str,
                call: Callable[..., object]) -> Response:
        """Pause, resume or cancel: the same `FleetRuns` calls as the API's routes."""
        dashboard.require(viewer, WRITE, action)
        fleet = catalog.fleets.get(fleet_id[:64])  # unknown: the "No such fleet run" page
        call(fleet.id, requested_by=requester(viewer.principal, names))
        return RedirectResponse(f"/fleet/{fleet.id}", status_code=303)

    @router.post("/fleet/{fleet_id}/pause", name="dashboard_fleet_pause")
    def pause_fleet(fleet_id: str, viewer: CheckedViewer) -> Response:
        return control(fleet_id, viewer, "Pausing a fleet run", FleetRuns(engine).pause)

    @router.post("/fleet/{fleet_id}/resume", name="dashboard_fleet_resume")
    def resume_fleet(fleet_id: str, viewer: CheckedViewer) -> Response:
        return control(fleet_id, viewer, "Resuming a fleet run", FleetRuns(engine).resume)

    @router.post("/fleet/{fleet_id}/cancel", name="dashboard_fleet_cancel")
    def cancel_fleet(fleet_id: str, viewer: CheckedViewer) -> Response:
        return control(fleet_id, viewer, "Cancelling a fleet run", FleetRuns(engine).cancel)

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
