"""`Dashboard`: who is looking, what their roles allow, and how pages and errors are rendered.

Pages are rendered on the server (Jinja2, autoescaped) and work without JavaScript; a small
script keeps each page's live part current from the page's event stream
(`tenantops.dashboard._live`). Every page sends a strict Content Security Policy (scripts and
styles from this site only), ``Cache-Control: no-store`` and ``Referrer-Policy:
same-origin``.

A page that updates live is a `LiveView` built by a function registered with
`Dashboard.add_live_page` under a path pattern: the page's route renders it
(`Dashboard.render_live`) and ``/live/<the page's path>`` streams its ``live`` block again
whenever the topics it follows change.

The API maps domain errors to JSON in `tenantops.api.main`; the dashboard's routes use
`Dashboard.route_class`, which maps the same errors to HTML pages in one place,
`Dashboard.error_page`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from tenantops import __version__
from tenantops.auth import Authenticator
from tenantops.dashboard._config import DashboardConfig
from tenantops.dashboard._errors import (
    CsrfTokenError,
    RoleMissingError,
    SignInError,
    SignInRequired,
)
from tenantops.dashboard._live import ChangeWatcher, LiveView, live_id
from tenantops.dashboard._overview import TrendCache
from tenantops.dashboard._signin import SignIn, Viewer
from tenantops.errors import (
    AuthError,
    CatalogError,
    ConfirmationError,
    FleetNotFoundError,
    FleetStateError,
    RunConflictError,
    RunNotFoundError,
    RunStateError,
    SpecError,
    TenantConflictError,
    TenantNotFoundError,
    TenantOpsError,
)
from tenantops.provisioning.engine import Engine

__all__ = ["AUDIT", "DELETE", "LIVE_PATH", "READ", "STATIC_PATH", "WRITE", "Dashboard",
           "PageBuilder"]

log = logging.getLogger("tenantops.dashboard")

READ, WRITE, DELETE = "Tenants.Read", "Tenants.Write", "Tenants.Delete"
AUDIT = "Audit.Read"

_HERE = Path(__file__).parent
STATIC_PATH = "/static"
LIVE_PATH = "/live"

PageBuilder = Callable[[Request, Viewer, Mapping[str, str], Mapping[str, str]], LiveView]
"""Builds a live page: (request, viewer, the path's parameters, the query) -> `LiveView`.
Called in a worker thread (it reads the catalog), for the page and for each update."""

_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")

# Domain errors as the dashboard shows them: status and heading (the API's JSON mapping lives
# in tenantops.api.main).
_PAGES: list[tuple[type[TenantOpsError], int, str]] = [
    (SignInError, 401, "Sign-in failed"),
    (RoleMissingError, 403, "You do not have the role for this"),
    (CsrfTokenError, 403, "This form has expired"),
    (TenantNotFoundError, 404, "No such tenant"),
    (RunNotFoundError, 404, "No such run"),
    (FleetNotFoundError, 404, "No such fleet run"),
    (FleetStateError, 409, "Not possible in this fleet run's state"),
    (SpecError, 422, "The tenant is not valid"),
    (ConfirmationError, 422, "Not confirmed"),
    (TenantConflictError, 409, "Conflicts with an existing tenant"),
    (RunConflictError, 409, "Another run is active"),
    (RunStateError, 409, "Not possible in this run's state"),
    (CatalogError, 503, "The catalog is unavailable"),
]


class Dashboard:
    """Renders pages for signed-in people and refuses what their roles do not allow."""

    def __init__(self, config: DashboardConfig, engine: Engine, authenticator: Authenticator,
                 sign_in: SignIn | None) -> None:
        self.config = config
        self.engine = engine
        self.authenticator = authenticator
        self.sign_in = sign_in
        self.templates = Environment(
            loader=FileSystemLoader(_HERE / "templates"), autoescape=True,
            undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
        self.templates.globals.update(static=f"{STATIC_PATH}/", version=__version__,
                                      READ=READ, WRITE=WRITE, DELETE=DELETE,
                                      AUDIT=AUDIT)
        self.route_class = _route_class(self)
        self.watcher = ChangeWatcher(engine.catalog, interval=config.poll_seconds)
        self.trends = TrendCache(engine.catalog, self.watcher, max_age=config.stats_seconds)
        self._live_pages: list[tuple[re.Pattern[str], PageBuilder]] = []
        self.nav: list[tuple[str, str, str | None]] = []
        """The main navigation: (label, path, app role needed to see it or None)."""

    def close(self) -> None:
        """Stop the change watcher (the app is shutting down)."""
        self.watcher.close()

    # -- live pages ------------------------------------------------------------------------

    def add_live_page(self, pattern: str, builder: PageBuilder) -> None:
        """Serve updates of the page whose path matches ``pattern`` (a regular expression
        with named groups: ``/runs/(?P<run_id>[0-9a-f]{32})``) at ``/live<path>``."""
        self._live_pages.append((re.compile(pattern), builder))

    def live_page(self, path: str) -> tuple[PageBuilder, dict[str, str]] | None:
        for pattern, builder in self._live_pages:
            match = pattern.fullmatch(path)
            if match is not None:
                return builder, match.groupdict()
        return None

    def render_block(self, request: Request, template: str, block: str, *,
                     viewer: Viewer | None, context: Mapping[str, Any]) -> str:
        """One block of ``template`` alone (the ``live`` block a stream sends)."""
        compiled = self.templates.get_template(template)
        variables = dict(context)
        variables.update(request=request, viewer=viewer, csrf=viewer.csrf if viewer else "",
                         mode=self.sign_in.mode if self.sign_in else "unconfigured")
        return "".join(compiled.blocks[block](compiled.new_context(variables)))

    def render_live(self, request: Request, viewer: Viewer, view: LiveView, *,
                    status: int = 200) -> HTMLResponse:
        """The page of ``view``: its ``live`` block rendered once, placed in the page, and
        the URL of its stream (which knows, by the block's digest, what the page holds)."""
        html = self.render_block(request, view.template, "live", viewer=viewer,
                                 context=view.context)
        digest = live_id(html)
        query = [(k, v) for k, v in request.query_params.multi_items() if k != "last"]
        stream = f"{LIVE_PATH}{request.url.path}?{urlencode([*query, ('last', digest)])}"
        live_html = Markup(html)  # noqa: S704 (rendered by the autoescaping environment)
        return self.render(request, view.template, viewer=viewer, status=status,
                           live_html=live_html, live_id=digest, stream_url=stream,
                           **view.context)

    # -- who is looking ----------------------------------------------------------------------

    def viewer(self, request: Request) -> Viewer:
        """The signed-in person; `SignInRequired` when there is none."""
        viewer = self.sign_in.viewer(request) if self.sign_in is not None else None
        if viewer is None:
            next_path = request.url.path
            if request.url.query:
                next_path += "?" + request.url.query
            raise SignInRequired(next_path if request.method == "GET" else "/")
        request.state.principal = viewer.principal  # named in the action's audit record
        return viewer

    def require(self, viewer: Viewer, role: str, action: str) -> None:
        """Refuse with `RoleMissingError` unless ``viewer`` holds ``role``."""
        if viewer.has(role):
            return
        error = RoleMissingError(action=action, role=role, held=viewer.principal.roles,
                                 who=viewer.account)
        log.info("dashboard refused %s to %s (oid %s): needs %s, holds %s", action,
                 viewer.account, viewer.principal.oid, role,
                 ", ".join(viewer.principal.roles) or "none")
        raise error

    # -- responses -------------------------------------------------------------------------

    def render(self, request: Request, template: str, *, viewer: Viewer | None,
               status: int = 200, **context: Any) -> HTMLResponse:
        html = self.templates.get_template(template).render(
            request=request, viewer=viewer, csrf=viewer.csrf if viewer else "",
            mode=self.sign_in.mode if self.sign_in else "unconfigured",
            path=request.url.path, nav=self.nav, **context)
        response = HTMLResponse(html, status_code=status)
        self.secure_headers(response)
        if viewer is not None and viewer.new_session is not None and self.sign_in is not None:
            self.sign_in.cookies.write_session(request, response, viewer.new_session)
        return response

    @staticmethod
    def secure_headers(response: Response) -> None:
        response.headers["Content-Security-Policy"] = _CSP
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"

    def send_to_sign_in(self, request: Request, signal: SignInRequired) -> Response:
        if request.url.path.startswith(LIVE_PATH + "/"):
            return PlainTextResponse("signed out", status_code=401,
                                     headers={"Cache-Control": "no-store"})
        query = urlencode({"next": signal.next_path})
        return RedirectResponse(f"/auth/sign-in?{query}", status_code=303)

    def error_page(self, request: Request, exc: TenantOpsError) -> Response:
        """The one place a domain error becomes an HTML page (status from ``_PAGES``)."""
        status, title = next(((s, t) for kind, s, t in _PAGES if isinstance(exc, kind)),
                             (getattr(exc, "status_code", 500) if isinstance(exc, AuthError)
                              else 500, "Something went wrong"))
        viewer: Viewer | None = None
        if not isinstance(exc, AuthError) or isinstance(exc, RoleMissingError | CsrfTokenError):
            try:
                viewer = self.sign_in.viewer(request) if self.sign_in is not None else None
            except AuthError:
                viewer = None
        if status >= 500:
            log.warning("dashboard %s %s failed: %s", request.method, request.url.path, exc)
        response = self.render(request, "error.html", viewer=viewer, status=status,
                               title=title, error=exc, message=str(exc),
                               role_error=exc if isinstance(exc, RoleMissingError) else None,
                               sign_in_failed=isinstance(exc, SignInError))
        if isinstance(exc, AuthError) and exc.status_code == 503:
            response.headers["Retry-After"] = "5"
        return response


def _route_class(dashboard: Dashboard) -> type[APIRoute]:
    class HtmlRoute(APIRoute):
        """A dashboard route: sign-in signals become redirects, domain errors HTML pages."""

        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def guarded(request: Request) -> Response:
                try:
                    return await handler(request)
                except SignInRequired as signal:
                    return dashboard.send_to_sign_in(request, signal)
                except TenantOpsError as exc:
                    return await run_in_threadpool(dashboard.error_page, request, exc)

            return guarded

    return HtmlRoute
