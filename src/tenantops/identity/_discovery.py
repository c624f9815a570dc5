"""Find the audience an API expects from its URL alone, within rules the server cannot bend.

Where the audience comes from, first answer wins:

1. the discovery cache (`DiscoveryCache`), when one is given: no request at all;
2. the tenantops API's public metadata route, ``<api root>/meta`` (``GET``, no token; the
   API root is the URL's path through ``/api``): ``{"service": "tenantops", "audience": ...}``;
3. a request to the URL without a token: a 401 whose ``WWW-Authenticate: Bearer ...
   resource_id="<client id>"`` names it (any API that answers like Entra-protected APIs do);
4. the configured audience (``IdentitySettings.audience``), when the API does not say (App
   Service Authentication does not).

Pinning (docs/identity.md, "Audience pinning"): what a server advertises (2 or 3, or a cached
copy of either) is used only when it is an application (client) ID or an ``api://`` App ID URI
that does not name one of Microsoft's own services (`tenantops.first_party`), or when it
equals the configured audience. Anything else raises `UntrustedAudienceError` before any token
is requested: a server that names ``https://management.azure.com/`` is asking for the caller's
Azure Resource Manager token.

An API that cannot be reached at all raises `ApiUnreachableError` naming the URL tried; it is
not an audience problem.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from tenantops.errors import (
    ApiUnreachableError,
    AudienceDiscoveryError,
    AudienceError,
    UntrustedAudienceError,
)
from tenantops.first_party import first_party_resource
from tenantops.identity._audience import Audience, is_guid, parse_audience
from tenantops.identity._challenge import BearerChallenge, parse_bearer_challenge
from tenantops.identity._discovery_cache import DiscoveryCache, api_root_of

__all__ = [
    "METADATA_PATH",
    "DiscoveredAudience",
    "discover_audience",
    "metadata_url",
    "pin_advertised",
]

METADATA_PATH = "/meta"
"""Under the API root (``/api``): the tenantops API's public metadata route."""

_CONFIGURE = (
    "set the API app registration's client ID (or api://<client-id>) with --audience, "
    "TENANTOPS_IDENTITY__AUDIENCE or [identity] audience in tenantops.toml"
)

Origin = Literal["cache", "metadata", "www-authenticate", "configuration"]


@dataclass(frozen=True)
class DiscoveredAudience:
    """The audience to request, where it came from, and what the API said."""

    audience: Audience
    origin: Origin
    detail: str
    status: int | None = None
    challenge: BearerChallenge | None = None
    tenant_id: str | None = None


def unreachable(method: str, url: str, exc: httpx.HTTPError) -> ApiUnreachableError:
    """The error for an API that did not answer at all."""
    return ApiUnreachableError(
        f"the API is unreachable: {method} {url} failed ({type(exc).__name__}: {exc}). Next: "
        "check the URL (--api-url, TENANTOPS_API__URL or api.url) and that the API is running "
        "('tenantops serve') and reachable from here (DNS, firewall, proxy)", url=url)


def _same_audience(a: str, b: str) -> bool:
    return a.strip().rstrip("/").lower() == b.strip().rstrip("/").lower()


def pin_advertised(advertised: str, *, where: str, configured: str | None) -> Audience:
    """The audience a server advertised, if tenantops may request it on the server's say-so.

    ``where`` says how the server said it (for messages). Allowed: the configured audience
    itself; else an application ID (GUID) or an ``api://`` URI, neither naming a Microsoft
    first-party service. Raises `UntrustedAudienceError` naming the value and the reason.
    """
    if configured and _same_audience(advertised, configured):
        try:
            return parse_audience(configured)
        except AudienceError as exc:
            raise AudienceDiscoveryError(
                f"{where} names {advertised!r}, the configured audience, which cannot be "
                f"used: {exc}") from exc
    service = first_party_resource(advertised)
    if service is not None:
        raise UntrustedAudienceError(
            f"{where} asks for a token for {advertised!r}, which is {service.name}: a token "
            f"for it {service.grants}. tenantops never requests a token for a Microsoft "
            "first-party service because a server asked for one; a server that does is asking "
            f"for your {service.name} token. Next: check that this URL is the API you meant. If "
            f"you really mean to send a {service.name} token there, pass --audience "
            f"{advertised} yourself (or set identity.audience)",
            advertised=advertised, url=where)
    try:
        audience = parse_audience(advertised)
    except AudienceError as exc:
        raise UntrustedAudienceError(
            f"{where} advertises {advertised!r}, which is not a usable audience ({exc}). "
            f"Next: fix the API's configuration, or {_CONFIGURE}",
            advertised=advertised, url=where) from exc
    resource = audience.resource
    if not (is_guid(resource) or resource.lower().startswith("api://")):
        raise UntrustedAudienceError(
            f"{where} asks for a token for {advertised!r}, which is neither an application "
            "(client) ID nor an api:// App ID URI. tenantops lets a server choose only those, "
            "because any other URI can name another service (https://vault.azure.net is Key "
            "Vault's). Next: if this API's App ID URI really is "
            f"{advertised}, pass --audience {advertised} (or set identity.audience)",
            advertised=advertised, url=where)
    return audience


def metadata_url(url: str) -> str | None:
    """``<api root>/meta`` for a URL whose path has an ``/api`` segment, else ``None``."""
    root = api_root_of(url)
    return root + METADATA_PATH if root.endswith("/api") else None


def _metadata(body: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(body or b"null")
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("service") != "tenantops":
        return None
    return data if isinstance(data.get("audience"), str) and data["audience"] else None


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


def discover_audience(url: str, *, http: httpx.Client, configured: str | None = None,
                      cache: DiscoveryCache | None = None) -> DiscoveredAudience:
    """The audience for calls to ``url`` (module docstring: sources, pinning, errors).

    Raises `UntrustedAudienceError` for an advertised audience tenantops will not request,
    `AudienceDiscoveryError` when no source gives one, `ApiUnreachableError` when the API does
    not answer at all.
    """
    root = api_root_of(url)
    if cache is not None:
        cached = cache.get(root)
        if cached is not None:
            where = f"the discovery cache ({cache.path}) for {root}"
            try:
                audience = pin_advertised(cached.audience, where=where, configured=configured)
            except AudienceDiscoveryError:
                cache.forget(root)
                raise
            return DiscoveredAudience(
                audience, "cache", f"{where}: {audience.resource}, learned from the API's "
                f"{cached.learned_from or 'answer'}", tenant_id=cached.tenant_id)
    found = _from_metadata(url, http, configured)
    if found is None:
        found = _from_challenge(url, http, configured)
    if found.origin != "configuration" and cache is not None:
        cache.put(root, audience=found.audience.resource, tenant_id=found.tenant_id,
                  learned_from=found.origin)
    return found


def _from_metadata(url: str, http: httpx.Client, configured: str | None
                   ) -> DiscoveredAudience | None:
    meta = metadata_url(url)
    if meta is None:
        return None
    try:
        response = http.get(meta)
    except httpx.HTTPError as exc:
        raise unreachable("GET", meta, exc) from exc
    data = _metadata(response.content) if response.status_code == 200 else None
    if data is None:
        return None
    where = f"the API's metadata (GET {meta})"
    audience = pin_advertised(data["audience"], where=where, configured=configured)
    tenant = data.get("tenant_id")
    return DiscoveredAudience(audience, "metadata", f"{where} names {audience.resource}",
                              200, tenant_id=tenant if isinstance(tenant, str) else None)


def _from_challenge(url: str, http: httpx.Client, configured: str | None) -> DiscoveredAudience:
    try:
        response = http.get(url)
    except httpx.HTTPError as exc:
        raise unreachable("GET", url, exc) from exc
    challenge = parse_bearer_challenge(response.headers.get("www-authenticate"))
    status = response.status_code
    if challenge is not None and challenge.resource_id:
        where = (f"GET {url} without a token (401, WWW-Authenticate: Bearer ... "
                 f"resource_id={challenge.resource_id})" if status == 401 else
                 f"GET {url} without a token ({status}, WWW-Authenticate: Bearer ... "
                 f"resource_id={challenge.resource_id})")
        audience = pin_advertised(challenge.resource_id, where=where, configured=configured)
        return DiscoveredAudience(
            audience, "www-authenticate",
            f"GET {url} without a token answered {status} with WWW-Authenticate: Bearer ... "
            f"resource_id={challenge.resource_id}", status, challenge, challenge.tenant_id)
    if status == 401:
        what = ("a WWW-Authenticate challenge without resource_id" if challenge is not None
                else "no WWW-Authenticate challenge (App Service Authentication answers like "
                "this)")
        detail = f"GET {url} without a token answered 401 with {what}"
    else:
        detail = (f"GET {url} without a token answered {status}, not 401, so it did not say "
                  "which audience it expects")
    return _configured(configured, detail, status, challenge)
