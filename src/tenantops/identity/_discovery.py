"""Find the audience an API expects from its URL alone.

An unauthenticated ``GET`` gets a 401 whose ``WWW-Authenticate: Bearer ... resource_id="<client
id>"`` names it (the tenantops API always sends it). Easy Auth and many APIs do not; then the
configured audience (``IdentitySettings.audience``) is used, and without one the error says what
to configure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import httpx

from tenantops.errors import AudienceDiscoveryError, AudienceError
from tenantops.identity._audience import Audience, parse_audience
from tenantops.identity._challenge import BearerChallenge, parse_bearer_challenge

__all__ = ["DiscoveredAudience", "discover_audience"]

_CONFIGURE = (
    "set the API app registration's client ID (or api://<client-id>) with --audience, "
    "TENANTOPS_IDENTITY__AUDIENCE or [identity] audience in tenantops.toml"
)


@dataclass(frozen=True)
class DiscoveredAudience:
    """The audience to request, where it came from, and what the probe saw."""

    audience: Audience
    origin: Literal["www-authenticate", "configuration"]
    detail: str
    status: int | None = None
    challenge: BearerChallenge | None = None


def _configured(configured: str | None, detail: str, status: int | None,
                challenge: BearerChallenge | None) -> DiscoveredAudience:
    if not configured:
        raise AudienceDiscoveryError(
            f"{detail}, and no audience is configured. Next: {_CONFIGURE}.")
    try:
        audience = parse_audience(configured)
    except AudienceError as exc:
        raise AudienceDiscoveryError(
            f"{detail}; the configured audience cannot be used: {exc}") from exc
    return DiscoveredAudience(audience, "configuration",
                              f"{detail}; using the configured audience {audience.resource}",
                              status, challenge)


def discover_audience(url: str, *, http: httpx.Client,
                      configured: str | None = None) -> DiscoveredAudience:
    """Probe ``url`` without a token; the advertised ``resource_id`` wins over ``configured``.

    Raises `AudienceDiscoveryError` when neither gives a usable audience; the message names the
    probe's outcome and the setting to use.
    """
    try:
        response = http.get(url)
    except httpx.HTTPError as exc:
        return _configured(configured, f"GET {url} without a token failed ({exc})", None, None)
    challenge = parse_bearer_challenge(response.headers.get("www-authenticate"))
    status = response.status_code
    if challenge is not None and challenge.resource_id:
        try:
            audience = parse_audience(challenge.resource_id)
        except AudienceError as exc:
            raise AudienceDiscoveryError(
                f"GET {url} advertises resource_id={challenge.resource_id!r}, which is not a "
                f"usable audience ({exc}). Next: fix the API's configuration, or {_CONFIGURE}."
            ) from exc
        return DiscoveredAudience(
            audience, "www-authenticate",
            f"GET {url} without a token answered {status} with WWW-Authenticate: Bearer ... "
            f"resource_id={challenge.resource_id}", status, challenge)
    if status == 401:
        what = ("a WWW-Authenticate challenge without resource_id" if challenge is not None
                else "no WWW-Authenticate challenge (App Service Authentication answers like "
                "this)")
        detail = f"GET {url} without a token answered 401 with {what}"
    else:
        detail = (f"GET {url} without a token answered {status}, not 401, so it did not say "
                  "which audience it expects")
    return _configured(configured, detail, status, challenge)
