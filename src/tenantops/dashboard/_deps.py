"""The dashboard's FastAPI dependencies, as ``Annotated`` aliases (as `tenantops.api.deps`).

``viewer: ViewerDep`` needs a signed-in person (else the route sends them to sign in);
``viewer: CheckedViewer`` also needs the form to carry the session's CSRF token.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Form
from starlette.requests import Request

from tenantops.dashboard._app import Dashboard
from tenantops.dashboard._errors import CsrfTokenError
from tenantops.dashboard._signin import Viewer

__all__ = ["CheckedViewer", "ViewerDep", "checked_viewer", "current_viewer", "dashboard_of"]


def dashboard_of(request: Request) -> Dashboard:
    dashboard = request.app.state.dashboard
    assert isinstance(dashboard, Dashboard)
    return dashboard


def current_viewer(request: Request) -> Viewer:
    """A plain ``def``: FastAPI runs it in a worker thread (checks may fetch signing keys)."""
    return dashboard_of(request).viewer(request)


ViewerDep = Annotated[Viewer, Depends(current_viewer)]


def checked_viewer(viewer: ViewerDep, csrf_token: Annotated[str, Form()] = "") -> Viewer:
    """The viewer, once the form proved it came from one of this session's pages."""
    if not csrf_token or not hmac.compare_digest(viewer.csrf.encode(), csrf_token.encode()):
        raise CsrfTokenError(
            "the form did not carry this session's CSRF token (it is older than your session, "
            "or it came from another site); go back, reload the page and submit it again",
            expected={"csrf_token": "this session's"},
            received={"csrf_token": "missing" if not csrf_token else "another"})
    return viewer


CheckedViewer = Annotated[Viewer, Depends(checked_viewer)]
