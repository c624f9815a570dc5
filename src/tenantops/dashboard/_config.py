"""The dashboard's settings, resolved once at start-up: which sign-in, which secrets.

`resolve` decides, without I/O:

- ``auth.trust_easy_auth_principal`` on: **Easy Auth** mode; App Service Authentication signs
  people in and passes ``X-MS-CLIENT-PRINCIPAL``; only ``dashboard.session_secret`` is needed
  (for the CSRF token).
- otherwise **OIDC** mode: authorization code + PKCE as the dashboard's own app registration.

Against an emulator (an authority on a loopback address: Entra ID never is) the emulator's
``tenantops-dashboard`` client ID and secret are the defaults and the session key is random
per process. Against anything else, placeholder values are refused with `ConfigError`, and
missing ones leave the dashboard *unconfigured*: ``/`` then says which settings to set, and
the API is unaffected.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import SecretStr

from tenantops.config import Settings
from tenantops.errors import ConfigError

__all__ = [
    "EMULATOR_DASHBOARD_CLIENT_ID",
    "EMULATOR_DASHBOARD_SECRET",
    "MIN_SESSION_SECRET_CHARS",
    "DashboardConfig",
    "SignInMode",
    "is_emulator_authority",
    "resolve",
]

EMULATOR_DASHBOARD_CLIENT_ID = "3c2b1a09-8e7d-4c6b-a5f4-e3d2c1b0a987"
EMULATOR_DASHBOARD_SECRET = "dashboard-local-secret"
MIN_SESSION_SECRET_CHARS = 32

# Values that only ever appear in examples and templates.
_PLACEHOLDERS = frozenset({
    EMULATOR_DASHBOARD_SECRET, "changeme", "change-me", "changethis", "secret", "password",
    "placeholder", "dashboard-secret", "session-secret", "xxx",
})

SignInMode = Literal["oidc", "easy-auth", "unconfigured"]


def is_emulator_authority(authority: str) -> bool:
    """True when ``authority`` is on a loopback address, where only an emulator can be."""
    host = urlsplit(authority).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_placeholder(value: str) -> bool:
    text = value.strip().lower()
    return (not text or text in _PLACEHOLDERS or text.startswith("<")
            or set(text) <= {"x", "*", "-", "0"})


@dataclass(frozen=True)
class DashboardConfig:
    """Everything the dashboard needs, checked. ``missing`` names the settings to set when
    ``mode`` is ``unconfigured``."""

    mode: SignInMode
    emulator: bool
    authority: str
    tenant_id: str
    api_client_id: str
    ca_bundle: Path | None
    client_id: str
    client_secret: SecretStr | None
    session_key: bytes
    session_seconds: float
    public_url: str | None
    secure_cookies: bool | None
    page_size: int
    poll_seconds: float
    leeway_seconds: int
    missing: tuple[str, ...] = ()
    stream_once: bool = False
    stream_seconds: float = 3600.0
    keepalive_seconds: float = 15.0
    stats_seconds: float = 60.0
    trace_url: str | None = None

    @property
    def authorize_url(self) -> str:
        return f"{self.authority}/{self.tenant_id}/oauth2/v2.0/authorize"

    @property
    def token_url(self) -> str:
        return f"{self.authority}/{self.tenant_id}/oauth2/v2.0/token"

    @property
    def scope(self) -> str:
        """The API's app roles come in the access token of ``api://<API>/.default``."""
        return f"api://{self.api_client_id}/.default openid profile"


def resolve(settings: Settings, environ: Mapping[str, str] = os.environ) -> DashboardConfig:
    """The dashboard's configuration; `ConfigError` for a placeholder or too short secret
    against a real authority (module docstring). ``environ`` tells whether this process runs
    under Azure Functions (whose responses are buffered: `stream_once`)."""
    dash = settings.dashboard
    auth = settings.auth
    authority = auth.authority.rstrip("/")
    emulator = is_emulator_authority(authority)
    easy_auth = auth.trust_easy_auth_principal
    missing: list[str] = []

    client_id = dash.client_id or (EMULATOR_DASHBOARD_CLIENT_ID if emulator else "")
    client_secret = dash.client_secret or (
        SecretStr(EMULATOR_DASHBOARD_SECRET) if emulator else None)
    if not easy_auth and not emulator:
        if not client_id:
            missing.append("dashboard.client_id")
        if client_secret is None:
            missing.append("dashboard.client_secret")
        elif _is_placeholder(client_secret.get_secret_value()):
            raise ConfigError(
                "dashboard.client_secret is a placeholder (the emulator's or an example "
                f"value) but the authority {authority} is not an emulator; set it to the "
                "client secret of the dashboard's app registration "
                "(TENANTOPS_DASHBOARD__CLIENT_SECRET), or set dashboard.enabled = false")

    if dash.session_secret is not None:
        value = dash.session_secret.get_secret_value()
        if not emulator and _is_placeholder(value):
            raise ConfigError(
                "dashboard.session_secret is a placeholder value; set it to at least "
                f"{MIN_SESSION_SECRET_CHARS} random characters, the same on every instance "
                "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'), or set "
                "dashboard.enabled = false")
        if len(value) < MIN_SESSION_SECRET_CHARS and not emulator:
            raise ConfigError(
                f"dashboard.session_secret has {len(value)} characters; it must have at least "
                f"{MIN_SESSION_SECRET_CHARS} (python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))')")
        session_key = value.encode("utf-8")
    elif emulator:
        session_key = secrets.token_bytes(32)
    else:
        session_key = b""
        missing.append("dashboard.session_secret")

    if not auth.tenant_id:
        missing.append("auth.tenant_id")
    if not auth.client_id:
        missing.append("auth.client_id")

    mode: SignInMode = "easy-auth" if easy_auth else "oidc"
    if missing:
        mode = "unconfigured"
    return DashboardConfig(
        mode=mode, emulator=emulator, authority=authority, tenant_id=auth.tenant_id or "",
        api_client_id=auth.client_id or "", ca_bundle=auth.ca_bundle, client_id=client_id,
        client_secret=client_secret, session_key=session_key,
        session_seconds=dash.session_hours * 3600, public_url=dash.public_url,
        secure_cookies=dash.secure_cookies, page_size=dash.page_size,
        poll_seconds=dash.poll_seconds, leeway_seconds=auth.leeway_seconds,
        missing=tuple(missing),
        stream_once=dash.stream_mode == "once" or (
            dash.stream_mode == "auto" and bool(environ.get("FUNCTIONS_WORKER_RUNTIME"))),
        stream_seconds=dash.stream_seconds, keepalive_seconds=dash.keepalive_seconds,
        stats_seconds=dash.stats_seconds, trace_url=dash.trace_url,
    )
