"""The actions: onboard (``Tenants.Write``), retry and cancel a run (``Tenants.Write``),
offboard (``Tenants.Delete``, the slug typed to confirm, after a preview of what goes).

Every ``POST`` carries the session's CSRF token (`CheckedViewer`); a refused role is a page
that names the role. A valid action answers ``303`` to the run it started (post/redirect/get);
an invalid form is shown again with each problem next to its field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from fastapi import APIRouter, Form
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from tenantops.auth import Principal
from tenantops.dashboard._app import DELETE, WRITE, Dashboard
from tenantops.dashboard._deps import CheckedViewer, ViewerDep
from tenantops.dashboard._signin import Viewer
from tenantops.errors import (
    RunConflictError,
    RunStateError,
    SpecError,
    TenantConflictError,
    TenantOpsError,
)
from tenantops.provisioning.spec import PLANS

__all__ = ["FIELD_LABELS", "ONBOARD_FIELDS", "requester", "routes"]

FIELD_LABELS = {
    "slug": "Slug", "display_name": "Display name", "custom_domain": "Custom domain",
    "plan": "Plan", "admin_email": "Administrator's email",
}
ONBOARD_FIELDS = tuple(FIELD_LABELS)


def requester(principal: Principal, names: Mapping[str, str]) -> str:
    """Who asked, as runs record it (the API records the same)."""
    return principal.describe(names)


def _field_errors(error: SpecError) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Problems by form field, and every problem as (field, message) for the summary."""
    by_field: dict[str, str] = {}
    listed: list[tuple[str, str]] = []
    for problem in error.problems:
        field = problem.field.split(".", 1)[0]
        message = problem.rule
        if field in ONBOARD_FIELDS:
            by_field.setdefault(field, message)
        listed.append((field if field in ONBOARD_FIELDS else "", message))
    return by_field, listed


def routes(dashboard: Dashboard) -> APIRouter:
    router = APIRouter(route_class=dashboard.route_class, include_in_schema=False)
    engine = dashboard.engine
    names = engine.settings.auth.application_names

    def onboard_form(request: Request, viewer: Viewer, values: Mapping[str, str], *,
                     status: int = 200, errors: dict[str, str] | None = None,
                     summary: list[tuple[str, str]] | None = None) -> HTMLResponse:
        return dashboard.render(request, "onboard.html", viewer=viewer, status=status,
                                values=values, errors=errors or {}, summary=summary or [],
                                plans=PLANS, field_labels=FIELD_LABELS)

    @router.get("/onboard", name="dashboard_onboard")
    def onboard_page(request: Request, viewer: ViewerDep) -> HTMLResponse:
        dashboard.require(viewer, WRITE, "Onboarding a tenant")
        return onboard_form(request, viewer, {"plan": "standard"})

    @router.post("/onboard", name="dashboard_onboard_submit")
    def onboard(
        request: Request, viewer: CheckedViewer,
        slug: Annotated[str, Form()] = "", display_name: Annotated[str, Form()] = "",
        custom_domain: Annotated[str, Form()] = "", plan: Annotated[str, Form()] = "standard",
        admin_email: Annotated[str, Form()] = "",
    ) -> Response:
        dashboard.require(viewer, WRITE, "Onboarding a tenant")
        values = {"slug": slug.strip(), "display_name": display_name,
                  "custom_domain": custom_domain.strip(), "plan": plan,
                  "admin_email": admin_email.strip()}
        try:
            run = engine.onboard(values, requested_by=requester(viewer.principal, names))
        except SpecError as exc:
            errors, summary = _field_errors(exc)
            return onboard_form(request, viewer, values, status=422, errors=errors,
                                summary=summary)
        except (TenantConflictError, RunConflictError) as exc:
            return onboard_form(request, viewer, values, status=409,
                                summary=[("", str(exc))])
        return RedirectResponse(f"/runs/{run.id}", status_code=303)

    @router.post("/runs/{run_id}/retry", name="dashboard_retry")
    def retry(run_id: str, viewer: CheckedViewer) -> Response:
        dashboard.require(viewer, WRITE, "Retrying a run")
        engine.retry(run_id, requested_by=requester(viewer.principal, names))
        return RedirectResponse(f"/runs/{run_id}", status_code=303)

    @router.post("/runs/{run_id}/cancel", name="dashboard_cancel")
    def cancel(run_id: str, viewer: CheckedViewer) -> Response:
        dashboard.require(viewer, WRITE, "Cancelling a run")
        engine.cancel(run_id, requested_by=requester(viewer.principal, names))
        return RedirectResponse(f"/runs/{run_id}", status_code=303)

    def offboard_form(request: Request, viewer: Viewer, slug: str, *, status: int = 200,
                      confirm: str = "", keep_database: bool = False,
                      confirm_error: str | None = None, error: str | None = None,
                      active_run: str | None = None) -> HTMLResponse:
        tenant = engine.catalog.get_tenant(slug)
        preview_error = None
        changes = []
        try:
            changes = list(engine.preview_offboarding(slug, keep_database=keep_database).changes)
        except TenantOpsError as exc:  # the preview is advice; offboarding can still go ahead
            preview_error = str(exc)
        return dashboard.render(
            request, "offboard.html", viewer=viewer, status=status, tenant=tenant,
            changes=changes, preview_error=preview_error, confirm=confirm,
            keep_database=keep_database, confirm_error=confirm_error, error=error,
            active_run=active_run)

    @router.get("/tenants/{slug}/offboard", name="dashboard_offboard")
    def offboard_page(request: Request, slug: str, viewer: ViewerDep,
                      keep_database: str = "") -> HTMLResponse:
        dashboard.require(viewer, DELETE, "Offboarding a tenant")
        return offboard_form(request, viewer, slug, keep_database=keep_database == "on")

    @router.post("/tenants/{slug}/offboard", name="dashboard_offboard_submit")
    def offboard(request: Request, slug: str, viewer: CheckedViewer,
                 confirm: Annotated[str, Form()] = "",
                 keep_database: Annotated[str, Form()] = "") -> Response:
        dashboard.require(viewer, DELETE, "Offboarding a tenant")
        keep = keep_database == "on"
        if confirm.strip() != slug:
            message = (f"type the tenant's slug, {slug}, exactly, to confirm"
                       if confirm.strip() else f"type {slug} to confirm")
            return offboard_form(request, viewer, slug, status=422, confirm=confirm,
                                 keep_database=keep, confirm_error=message)
        try:
            run = engine.offboard(slug, requested_by=requester(viewer.principal, names),
                                  keep_database=keep)
        except RunConflictError as exc:
            return offboard_form(request, viewer, slug, status=409, keep_database=keep,
                                 error=str(exc), active_run=exc.active_run_id)
        except (TenantConflictError, RunStateError) as exc:
            return offboard_form(request, viewer, slug, status=409, keep_database=keep,
                                 error=str(exc))
        return RedirectResponse(f"/runs/{run.id}", status_code=303)

    return router

