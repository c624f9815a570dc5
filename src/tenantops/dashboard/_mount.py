"""`mount_dashboard`: the dashboard's routes and static files, added to the API's app."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from tenantops.auth import Authenticator
from tenantops.config import Settings
from tenantops.dashboard import _actions, _audit, _auth_routes, _fleet, _import, _pages
from tenantops.dashboard._app import AUDIT, READ, STATIC_PATH, WRITE, Dashboard
from tenantops.dashboard._config import resolve
from tenantops.dashboard._session import CookieJar
from tenantops.dashboard._signin import EasyAuthSignIn, OidcSignIn, SignIn
from tenantops.provisioning.engine import Engine

__all__ = ["mount_dashboard"]

log = logging.getLogger("tenantops.dashboard")


def mount_dashboard(app: FastAPI, settings: Settings, engine: Engine, *,
                    authenticator: Authenticator | None = None) -> Dashboard | None:
    """Serve the dashboard at ``/`` in ``app``, sharing the API's `Authenticator`
    (``app.state.authenticator`` unless given). Does nothing when ``dashboard.enabled`` is
    off; raises `ConfigError` for placeholder secrets against a real authority; when settings
    are missing, ``/`` says which. Does no I/O."""
    if not settings.dashboard.enabled:
        return None
    config = resolve(settings)
    auth = authenticator if authenticator is not None else app.state.authenticator
    assert isinstance(auth, Authenticator)
    sign_in: SignIn | None = None
    if config.mode != "unconfigured":
        cookies = CookieJar(config.session_key, max_age=config.session_seconds,
                            secure=config.secure_cookies)
        sign_in = (EasyAuthSignIn(config, auth, cookies) if config.mode == "easy-auth"
                   else OidcSignIn(config, auth, cookies))
    dashboard = Dashboard(config, engine, auth, sign_in)
    app.state.dashboard = dashboard
    app.mount(STATIC_PATH, StaticFiles(directory=Path(__file__).parent / "static"),
              name="dashboard-static")
    if sign_in is None:
        log.warning("the dashboard is not configured: set %s (or dashboard.enabled = false)",
                    ", ".join(config.missing))
        app.include_router(_pages.unconfigured_routes(dashboard))
        return dashboard
    dashboard.nav.extend([
        ("Overview", "/", READ), ("Runs", "/runs", READ), ("Tenants", "/tenants", READ),
        ("Drift", "/drift", READ), ("Events", "/events", READ),
        ("Fleet runs", "/fleet", READ),
        ("Audit trail", "/audit", AUDIT),
        ("Onboard a tenant", "/onboard", WRITE),
    ])
    app.include_router(_auth_routes.routes(dashboard))
    app.include_router(_pages.routes(dashboard))
    app.include_router(_actions.routes(dashboard))
    app.include_router(_audit.routes(dashboard))
    app.include_router(_fleet.routes(dashboard))
    app.include_router(_import.routes(dashboard))
    return dashboard
