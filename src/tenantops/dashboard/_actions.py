"""The actions: onboard, change a tenant, suspend and resume it, retry and cancel a run
(``Tenants.Write``), offboard (``Tenants.Delete``, the slug typed to confirm, after a preview
of what goes). A change is confirmed on a page that shows its diff and plan; the confirmation
carries the diff it was shown, and a tenant changed meanwhile is shown again, not changed.

Every ``POST`` carries the session's CSRF token (`CheckedViewer`); a refused role is a page
that names the role. A valid action answers ``303`` to the run it started (post/redirect/get);
an invalid form is shown again with each problem next to its field.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Form
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from tenantops.auth import Principal
from tenantops.catalog import Run
from tenantops.dashboard._app import DELETE, WRITE, Dashboard
from tenantops.dashboard._deps import CheckedViewer, ViewerDep
from tenantops.dashboard._signin import Viewer
from tenantops.errors import (
    PlacementError,
    RunConflictError,
    RunStateError,
    SpecError,
    TenantConflictError,
    TenantOpsError,
    TenantStateError,
)
from tenantops.provisioning.plans import Preview
from tenantops.provisioning.run_requests import TenantChange

__all__ = ["FIELD_LABELS", "ONBOARD_FIELDS", "requester", "routes"]

FIELD_LABELS = {
    "slug": "Slug", "display_name": "Display name", "custom_domain": "Custom domain",
    "plan": "Plan", "admin_email": "Administrator's email",
}
ONBOARD_FIELDS = tuple(FIELD_LABELS)
EDIT_LABELS = {
    "display_name": "Display name", "custom_domain": "Custom domain", "plan": "Plan",
    "admin_email": "Administrator's email", "remove_previous_admin": "Remove the previous "
    "administrator", "reason": "Reason", "tags": "Tags",
}
_REFUSED = (RunConflictError, TenantStateError, TenantConflictError, RunStateError)


def requester(principal: Principal, names: Mapping[str, str]) -> str:
    """Who asked, as runs record it (the API records the same)."""
    return principal.describe(names)


def _field_errors(error: SpecError, fields: tuple[str, ...] = ONBOARD_FIELDS
                  ) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Problems by form field, and every problem as (field, message) for the summary."""
    by_field: dict[str, str] = {}
    listed: list[tuple[str, str]] = []
    for problem in error.problems:
        field = problem.field.split(".", 1)[0]
        message = problem.rule
        if field in fields:
            by_field.setdefault(field, message)
        listed.append((field if field in fields else "", message))
    return by_field, listed


def _change(values: Mapping[str, str], current: Mapping[str, Any]) -> TenantChange:
    """The change a form asks for: fields left as they are do not count as changes."""
    def asked(name: str) -> str | None:
        value = values.get(name, "").strip()
        return value if value and value != current.get(name) else None

    return TenantChange(
        display_name=asked("display_name"), custom_domain=asked("custom_domain"),
        plan=asked("plan"), admin_email=asked("admin_email"),
        remove_previous_admin=values.get("remove_previous_admin") == "on",
        reason=values.get("reason") or None)


def _shown_diff(preview: Preview) -> str:
    return json.dumps({k: dict(v) for k, v in preview.diff.items()}, sort_keys=True)


def routes(dashboard: Dashboard) -> APIRouter:
    router = APIRouter(route_class=dashboard.route_class, include_in_schema=False)
    engine = dashboard.engine
    names = engine.settings.auth.application_names

    def onboard_form(request: Request, viewer: Viewer, values: Mapping[str, str], *,
                     status: int = 200, errors: dict[str, str] | None = None,
                     summary: list[tuple[str, str]] | None = None) -> HTMLResponse:
        return dashboard.render(request, "onboard.html", viewer=viewer, status=status,
                                values=values, errors=errors or {}, summary=summary or [],
                                plans=tuple(engine.settings.plans),
                                field_labels=FIELD_LABELS)

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

    def edit_form(request: Request, viewer: Viewer, slug: str, values: Mapping[str, str], *,
                  status: int = 200, errors: dict[str, str] | None = None,
                  summary: list[tuple[str, str]] | None = None, notice: str | None = None,
                  active_run: str | None = None) -> HTMLResponse:
        return dashboard.render(request, "edit.html", viewer=viewer, status=status,
                                tenant=engine.catalog.get_tenant(slug), values=values,
                                errors=errors or {}, summary=summary or [],
                                plans=tuple(engine.settings.plans),
                                field_labels=EDIT_LABELS, notice=notice,
                                active_run=active_run)

    @router.get("/tenants/{slug}/edit", name="dashboard_edit")
    def edit_page(request: Request, slug: str, viewer: ViewerDep) -> HTMLResponse:
        dashboard.require(viewer, WRITE, "Changing a tenant")
        current = engine.catalog.get_tenant(slug).spec_fields()
        return edit_form(request, viewer, slug, {k: str(v) for k, v in current.items()
                                                 if k != "tags"})

    def confirm_page(request: Request, viewer: Viewer, slug: str, values: Mapping[str, str],
                     preview: Preview, *, status: int = 200,
                     notice: str | None = None) -> HTMLResponse:
        return dashboard.render(request, "confirm_change.html", viewer=viewer, status=status,
                                tenant=engine.catalog.get_tenant(slug), values=values,
                                preview=preview, shown=_shown_diff(preview), notice=notice,
                                field_labels=EDIT_LABELS)

    @router.post("/tenants/{slug}/edit", name="dashboard_edit_submit")
    def edit(
        request: Request, slug: str, viewer: CheckedViewer,
        display_name: Annotated[str, Form()] = "", custom_domain: Annotated[str, Form()] = "",
        plan: Annotated[str, Form()] = "", admin_email: Annotated[str, Form()] = "",
        remove_previous_admin: Annotated[str, Form()] = "",
        reason: Annotated[str, Form()] = "", shown: Annotated[str, Form()] = "",
        confirm: Annotated[str, Form()] = "",
    ) -> Response:
        """Without ``confirm``: show the diff and the plan. With it: make the change, unless
        the tenant changed since the diff ``shown`` was computed (then show it again)."""
        dashboard.require(viewer, WRITE, "Changing a tenant")
        values = {"display_name": display_name, "custom_domain": custom_domain,
                  "plan": plan, "admin_email": admin_email,
                  "remove_previous_admin": remove_previous_admin, "reason": reason}
        current = engine.catalog.get_tenant(slug).spec_fields()
        change = _change(values, current)
        try:
            preview = engine.preview_update(slug, change)
        except SpecError as exc:
            errors, summary = _field_errors(exc, tuple(EDIT_LABELS))
            return edit_form(request, viewer, slug, values, status=422, errors=errors,
                             summary=summary)
        if not preview.diff:
            return edit_form(request, viewer, slug, values,
                             notice=f"Nothing to change: {slug} already is as asked.")
        if confirm != "yes":
            return confirm_page(request, viewer, slug, values, preview)
        if shown != _shown_diff(preview):
            return confirm_page(request, viewer, slug, values, preview, status=409, notice=(
                f"{slug} changed since you reviewed this change; review it again."))
        try:
            run = engine.update(slug, change, requested_by=requester(viewer.principal, names))
        except SpecError as exc:
            errors, summary = _field_errors(exc, tuple(EDIT_LABELS))
            return edit_form(request, viewer, slug, values, status=422, errors=errors,
                             summary=summary)
        except _REFUSED as exc:
            return edit_form(request, viewer, slug, values, status=409,
                             summary=[("", str(exc))],
                             active_run=getattr(exc, "active_run_id", None) or None)
        if run is None:
            return edit_form(request, viewer, slug, values,
                             notice=f"Nothing to change: {slug} already is as asked.")
        return RedirectResponse(f"/runs/{run.id}", status_code=303)

    def state_page(request: Request, viewer: Viewer, slug: str, kind: str, *,
                   status: int = 200, reason: str = "", reason_error: str | None = None,
                   error: str | None = None, active_run: str | None = None) -> HTMLResponse:
        preview_error = None
        changes: list[Any] = []
        try:
            if kind == "reconcile":
                # The live drift check: what a reconcile would create or converge.
                preview = engine.preview_reconcile(slug)
            elif kind == "suspend":
                preview = engine.preview_suspension(slug)
            else:
                preview = engine.preview_resumption(slug)
            changes = list(preview.changes)
        except TenantOpsError as exc:
            preview_error = str(exc)
        return dashboard.render(
            request, "state_change.html", viewer=viewer, status=status, kind=kind,
            tenant=engine.catalog.get_tenant(slug), changes=changes,
            preview_error=preview_error, reason=reason, reason_error=reason_error,
            error=error, active_run=active_run)

    def submit_state_change(request: Request, viewer: Viewer, slug: str, kind: str,
                            reason: str, start: Callable[[str], Run]) -> Response:
        """Open a suspend, resume or reconcile run (``start`` given who asks) and go to it;
        its form again with the reason's error (422) or why it was refused (409)."""
        try:
            run = start(requester(viewer.principal, names))
        except SpecError as exc:
            return state_page(request, viewer, slug, kind, status=422, reason=reason,
                              reason_error=exc.problems[0].rule)
        except _REFUSED as exc:
            return state_page(request, viewer, slug, kind, status=409, reason=reason,
                              error=str(exc),
                              active_run=getattr(exc, "active_run_id", None) or None)
        return RedirectResponse(f"/runs/{run.id}", status_code=303)

    @router.get("/tenants/{slug}/suspend", name="dashboard_suspend")
    def suspend_page(request: Request, slug: str, viewer: ViewerDep) -> HTMLResponse:
        dashboard.require(viewer, WRITE, "Suspending a tenant")
        return state_page(request, viewer, slug, "suspend")

    @router.get("/tenants/{slug}/resume", name="dashboard_resume")
    def resume_page(request: Request, slug: str, viewer: ViewerDep) -> HTMLResponse:
        dashboard.require(viewer, WRITE, "Resuming a tenant")
        return state_page(request, viewer, slug, "resume")

    @router.post("/tenants/{slug}/suspend", name="dashboard_suspend_submit")
    def suspend(request: Request, slug: str, viewer: CheckedViewer,
                reason: Annotated[str, Form()] = "") -> Response:
        dashboard.require(viewer, WRITE, "Suspending a tenant")
        return submit_state_change(request, viewer, slug, "suspend", reason,
                                   lambda by: engine.suspend(slug, reason=reason, requested_by=by))

    @router.post("/tenants/{slug}/resume", name="dashboard_resume_submit")
    def resume(request: Request, slug: str, viewer: CheckedViewer,
               reason: Annotated[str, Form()] = "") -> Response:
        dashboard.require(viewer, WRITE, "Resuming a tenant")
        return submit_state_change(request, viewer, slug, "resume", reason,
                                   lambda by: engine.resume(slug, reason=reason or None,
                                                            requested_by=by))

    @router.get("/tenants/{slug}/reconcile", name="dashboard_reconcile")
    def reconcile_page(request: Request, slug: str, viewer: ViewerDep) -> HTMLResponse:
        dashboard.require(viewer, WRITE, "Reconciling a tenant")
        return state_page(request, viewer, slug, "reconcile")

    @router.post("/tenants/{slug}/reconcile", name="dashboard_reconcile_submit")
    def reconcile(request: Request, slug: str, viewer: CheckedViewer,
                  reason: Annotated[str, Form()] = "") -> Response:
        dashboard.require(viewer, WRITE, "Reconciling a tenant")
        return submit_state_change(request, viewer, slug, "reconcile", reason,
                                   lambda by: engine.reconcile_tenant(
                                       slug, reason=reason or None, requested_by=by))

    def move_page_of(request: Request, viewer: Viewer, slug: str, *, status: int = 200,
                     server: str = "", reason: str = "", error: str | None = None,
                     active_run: str | None = None) -> HTMLResponse:
        tenant = engine.catalog.get_tenant(slug)
        copies = engine.catalog.placements_of(slug)
        unfinished = next((c for c in copies if c.state == "target"), None)
        preview_error = None
        changes: list[Any] = []
        plan = engine.settings.plans.get(tenant.plan)
        pool = plan.database.pool if plan is not None else None
        loads = engine.catalog.server_loads()
        servers = [(s.name, loads.get(s.name, 0), s.capacity, s.draining)
                   for s in engine.settings.providers.database.server_list() if s.pool == pool]
        try:
            changes = list(engine.preview_move(slug, server=server or None,
                                               abandon=unfinished is not None).changes)
        except TenantOpsError as exc:
            preview_error = str(exc)
        return dashboard.render(
            request, "move.html", viewer=viewer, status=status, tenant=tenant,
            copies=copies, unfinished=unfinished, pool=pool, servers=servers, server=server,
            changes=changes, preview_error=preview_error, reason=reason, error=error,
            active_run=active_run)

    @router.get("/tenants/{slug}/move", name="dashboard_move")
    def move_page(request: Request, slug: str, viewer: ViewerDep,
                  server: str = "") -> HTMLResponse:
        dashboard.require(viewer, WRITE, "Moving a tenant")
        return move_page_of(request, viewer, slug, server=server)

    @router.post("/tenants/{slug}/move", name="dashboard_move_submit")
    def move(request: Request, slug: str, viewer: CheckedViewer,
             server: Annotated[str, Form()] = "", reason: Annotated[str, Form()] = "",
             abandon: Annotated[str, Form()] = "") -> Response:
        dashboard.require(viewer, WRITE, "Moving a tenant")
        try:
            run = engine.move(slug, server=None if abandon or not server else server,
                              abandon=bool(abandon), reason=reason or None,
                              requested_by=requester(viewer.principal, names))
        except (*_REFUSED, PlacementError, SpecError) as exc:
            return move_page_of(request, viewer, slug, status=422 if isinstance(
                exc, SpecError) else 409, server=server, reason=reason, error=str(exc),
                active_run=getattr(exc, "active_run_id", None) or None)
        return RedirectResponse(f"/runs/{run.id}", status_code=303)

    return router
