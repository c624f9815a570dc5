"""``/auth/*``: start a sign-in, the OIDC callback, sign out, and the signed-out page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from tenantops.dashboard._app import Dashboard
from tenantops.dashboard._errors import CsrfTokenError
from tenantops.dashboard._signin import CALLBACK_PATH, SIGNED_OUT_PATH, OidcSignIn

__all__ = ["routes"]


def routes(dashboard: Dashboard) -> APIRouter:
    router = APIRouter(route_class=dashboard.route_class, include_in_schema=False)
    sign_in = dashboard.sign_in
    assert sign_in is not None

    @router.get("/auth/sign-in", name="dashboard_sign_in")
    def start(request: Request, next: str = "/") -> Response:
        return sign_in.start(request, next)

    if isinstance(sign_in, OidcSignIn):
        oidc = sign_in

        @router.get(CALLBACK_PATH, name="dashboard_callback")
        def callback(request: Request) -> Response:
            """A plain ``def``: redeeming the code and fetching keys block."""
            return oidc.finish(request)

    @router.post("/auth/sign-out", name="dashboard_sign_out")
    def sign_out(request: Request, csrf_token: Annotated[str, Form()] = "") -> Response:
        session = sign_in.cookies.read_session(request)
        if session is not None:
            request.state.principal = session.principal  # named in the audit record
        # Without a session there is nothing to end; with one, only its own form may end it.
        if session is not None and not session.csrf_matches(csrf_token):
            raise CsrfTokenError(
                "the sign-out form does not carry this session's CSRF token; reload the page "
                "and sign out again")
        return sign_in.sign_out(request)

    @router.get(SIGNED_OUT_PATH, name="dashboard_signed_out")
    def signed_out(request: Request) -> HTMLResponse:
        return dashboard.render(request, "signed_out.html", viewer=None)

    return router
