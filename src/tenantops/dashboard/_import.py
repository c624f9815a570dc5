"""The import page: adopt tenants made before tenantops from a JSON or CSV file, as
``tenantops import FILE`` and ``POST /api/tenants/import`` do (``Tenants.Write``;
docs/drift.md). The upload is read with `tenantops.import_file.read_import` and shown as a
dry run of `Engine.import_tenants` per entry (adopted, partial or refused, with the reasons);
the confirmation carries the file's text back (a multipart form, so within
``api.max_body_bytes`` as the upload was) and records the tenants.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse

from tenantops.dashboard._actions import requester
from tenantops.dashboard._app import WRITE, Dashboard
from tenantops.dashboard._deps import CheckedViewer, ViewerDep
from tenantops.dashboard._signin import Viewer
from tenantops.errors import ImportFileError, SpecError
from tenantops.import_file import read_import
from tenantops.log import redact
from tenantops.provisioning.adoption import AdoptionResult

__all__ = ["routes"]

_ACTION = "Importing tenants"


def _shown(results: list[AdoptionResult]) -> list[dict[str, Any]]:
    """Each entry's outcome as the page shows it (a refusal may quote the entry's values:
    redacted, as the API's answer is)."""
    return [{"slug": r.slug, "outcome": r.outcome, "recorded": r.recorded,
             "run_id": r.run_id,
             "reasons": [redact(x) if r.outcome == "refused" else x for x in r.reasons]}
            for r in results]


def routes(dashboard: Dashboard) -> APIRouter:
    router = APIRouter(route_class=dashboard.route_class, include_in_schema=False)
    engine = dashboard.engine
    names = engine.settings.auth.application_names

    def page(request: Request, viewer: Viewer, *, status: int = 200,
             error: str | None = None, results: list[AdoptionResult] | None = None,
             dry_run: bool = True, text: str = "", name: str = "") -> HTMLResponse:
        shown = _shown(results or [])
        counts = {o: sum(1 for r in shown if r["outcome"] == o)
                  for o in ("adopted", "partial", "refused")}
        return dashboard.render(
            request, "import.html", viewer=viewer, status=status, error=error,
            results=shown, counts=counts, dry_run=dry_run, text=text, name=name,
            limit=engine.settings.api.max_body_bytes,
            max_tenants=engine.settings.drift.import_max_tenants)

    @router.get("/import", name="dashboard_import")
    def import_page(request: Request, viewer: ViewerDep) -> HTMLResponse:
        dashboard.require(viewer, WRITE, _ACTION)
        return page(request, viewer)

    @router.post("/import", name="dashboard_import_submit")
    def import_tenants(
        request: Request, viewer: CheckedViewer,
        file: Annotated[UploadFile | None, File()] = None,
        text: Annotated[str, Form()] = "", name: Annotated[str, Form()] = "",
        confirm: Annotated[str, Form()] = "",
    ) -> HTMLResponse:
        """Without ``confirm``: the uploaded file's dry run. With it: the text it carries
        back, imported."""
        dashboard.require(viewer, WRITE, _ACTION)
        dry_run = confirm != "yes"
        if dry_run:
            if file is None or not file.filename:
                return page(request, viewer, status=422,
                            error="File is missing: choose a JSON or CSV (.csv) file")
            name = file.filename
            try:
                text = file.file.read().decode("utf-8")
            except UnicodeDecodeError as exc:
                return page(request, viewer, status=422, error=(
                    f"File {name!r} is not UTF-8 text ({exc.reason} at byte {exc.start}): "
                    "save it as UTF-8 JSON or CSV"))
        try:
            entries = read_import(text, source=name or "the file",
                                  csv_format=name.lower().endswith(".csv"))
            if not entries:
                raise ImportFileError(f"{name}: holds no tenants")
            results = engine.import_tenants(entries, dry_run=dry_run,
                                            requested_by=requester(viewer.principal, names))
        except ImportFileError as exc:
            return page(request, viewer, status=422, error=f"File {exc}")
        except SpecError as exc:
            return page(request, viewer, status=422, error="File " + "; ".join(
                f"{p.value}: {p.rule}" for p in exc.problems))
        return page(request, viewer, results=results, dry_run=dry_run, text=text, name=name)

    return router
