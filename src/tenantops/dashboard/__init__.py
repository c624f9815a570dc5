"""The web dashboard: server-rendered pages at ``/`` in the API's app, for people.

Sign-in with OpenID Connect (authorization code + PKCE) against the configured authority, or
App Service Authentication's principal headers; sessions in encrypted cookies that hold no
token; CSRF tokens on every form; pages for tenants, a tenant, a run's live timeline, the
audit trail, and the onboard, retry, cancel and offboard actions, each shown only to people
whose app roles allow it. See docs/dashboard.md.
"""

from __future__ import annotations

from tenantops.dashboard._config import DashboardConfig, is_emulator_authority, resolve
from tenantops.dashboard._errors import (
    CsrfTokenError,
    RoleMissingError,
    SignInError,
    SignInRequired,
)
from tenantops.dashboard._mount import mount_dashboard

__all__ = [
    "CsrfTokenError",
    "DashboardConfig",
    "RoleMissingError",
    "SignInError",
    "SignInRequired",
    "is_emulator_authority",
    "mount_dashboard",
    "resolve",
]
