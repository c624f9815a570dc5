"""Call a protected API: `BearerAuth` for any httpx client, `TenantOpsClient` for the whole path.

`TenantOpsClient` discovers the audience (once, within the pinning rules of `discover_audience`),
gets a token through a `TokenCache` (one identity-endpoint request per token lifetime, shared by
every thread), sends the call and turns a 401/403 into `ApiCallRejectedError`, which shows the
token's claims beside what the API expects. The transport and the clock are injected; nothing
connects before the first call.

Where a token may travel (docs/identity.md, "Where a token goes"): only over ``https``, or
plain ``http`` to this machine (``localhost``, ``127.0.0.0/8``, ``::1``); never along a
redirect: a 3xx answer raises `ApiRedirectedError` naming where the server wanted to send it.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable, Generator, Mapping
from typing import Any

import httpx

from tenantops.errors import ApiRedirectedError, ApiUnreachableError, InsecureTransportError
from tenantops.identity._audience import Audience, parse_audience
from tenantops.identity._cache import TokenCache
from tenantops.identity._credential import TokenProvider
from tenantops.identity._discovery import DiscoveredAudience, discover_audience, unreachable
from tenantops.identity._discovery_cache import DiscoveryCache, api_root_of
from tenantops.identity._rejection import ApiCallRejectedError, Rejection

__all__ = [
    "ApiUnreachableError", "BearerAuth", "TenantOpsClient", "is_loopback",
    "require_secure_destination",
]

_REDIRECTS = frozenset({301, 302, 303, 307, 308})


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (``127.0.0.0/8``, ``::1``): this machine."""
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def require_secure_destination(url: httpx.URL | str) -> None:
    """Raise `InsecureTransportError` unless a bearer token may be sent to ``url``: ``https``,
    or plain ``http`` to this machine. Checked before any token is requested."""
    target = url if isinstance(url, httpx.URL) else httpx.URL(url)
    if target.scheme == "https" or (target.scheme == "http" and is_loopback(target.host)):
        return
    raise InsecureTransportError(
        f"tenantops will not send a bearer token to {target}: it is plain {target.scheme}, not "
        "https, to another machine, so anyone on the way could read the token and replay it. "
        f"Next: use https://{target.netloc.decode('ascii')}{target.raw_path.decode('ascii')} "
        "(plain http is allowed only to localhost / 127.0.0.1 / ::1)", url=str(target))


class BearerAuth(httpx.Auth):
    """Adds ``Authorization: Bearer <token>`` from a `TokenCache`, only to a secure destination
    (`require_secure_destination`). httpx itself drops the header when a followed redirect
    leaves the origin; `TenantOpsClient` follows none.

    Blocking: meant for ``httpx.Client``. With ``httpx.AsyncClient`` the (rare) token fetch
    would block the event loop.
    """

    def __init__(self, cache: TokenCache) -> None:
        self.cache = cache

    @classmethod
    def for_audience(cls, provider: TokenProvider, audience: str | Audience, *,
                     clock: Callable[[], float] = time.time) -> BearerAuth:
        aud = audience if isinstance(audience, Audience) else parse_audience(audience)
        return cls(TokenCache(provider, aud, clock=clock))

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        require_secure_destination(request.url)
        request.headers["Authorization"] = f"Bearer {self.cache.token().value}"
        yield request


class TenantOpsClient:
    """An audience-aware client for an Entra-protected API (the tenantops API, or any other).

    ``audience`` skips discovery (the caller's own choice, sent as given); otherwise the first
    call discovers it (`discover_audience`: ``discovery_cache``, the API's metadata route, its
    401 challenge, then ``configured_audience``), within the pinning rules. Thread-safe.
    """

    def __init__(
        self,
        base_url: str = "",
        *,
        credential: TokenProvider,
        audience: str | Audience | None = None,
        configured_audience: str | None = None,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        timeout: float = 30.0,
        headers: Mapping[str, str] | None = None,
        discovery_cache: DiscoveryCache | None = None,
    ) -> None:
        self._base_url = base_url
        self._discovery_cache = discovery_cache
        self._credential = credential
        self._explicit = (audience if isinstance(audience, Audience) or audience is None
                          else parse_audience(audience))
        self._configured = configured_audience
        self._transport = transport
        self._clock = clock
        self._timeout = timeout
        self._headers = dict(headers or {})
        self._lock = threading.Lock()
        self._http: httpx.Client | None = None
        self._discovered: DiscoveredAudience | None = None
        self._caches: dict[str, TokenCache] = {}

    def _client(self) -> httpx.Client:
        with self._lock:
            if self._http is None:
                self._http = httpx.Client(base_url=self._base_url, transport=self._transport,
                                          timeout=self._timeout, headers=self._headers,
                                          follow_redirects=False)
            return self._http

    @property
    def discovered(self) -> DiscoveredAudience | None:
        """How the audience was found, once a call has needed it (``None`` if given)."""
        return self._discovered

    def audience(self, url: str = "") -> Audience:
        """The audience for calls: given, or discovered by probing ``url`` (once)."""
        if self._explicit is not None:
            return self._explicit
        http = self._client()
        with self._lock:
            if self._discovered is None:
                self._discovered = discover_audience(
                    str(http.build_request("GET", url).url), http=http,
                    configured=self._configured, cache=self._discovery_cache)
            return self._discovered.audience

    def _cache(self, audience: Audience) -> TokenCache:
        with self._lock:
            cache = self._caches.get(audience.resource)
            if cache is None:
                cache = TokenCache(self._credential, audience, clock=self._clock)
                self._caches[audience.resource] = cache
            return cache

    def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        content: str | bytes | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send one call with a token; return the response unless it is a 401, 403 or redirect.

        Raises `InsecureTransportError` (before anything is sent) for plain http to another
        machine, `ApiCallRejectedError` on 401/403, `ApiRedirectedError` on a redirect,
        `ApiUnreachableError` when the API cannot be reached, `UntrustedAudienceError` when the
        API asks for an audience tenantops will not request, and the identity errors of
        `IdentityCredential` when no token can be had.
        """
        verb = method.upper()
        target = self._client().build_request(verb, url, params=params).url

        def send() -> tuple[httpx.Response, TokenCache]:
            cache = self._cache(self.audience(url))
            try:
                sent = self._client().request(
                    verb, url, json=json, content=content, params=params,
                    headers=headers, auth=BearerAuth(cache))
            except httpx.HTTPError as exc:
                raise unreachable(verb, str(target), exc) from exc
            if sent.status_code == 401:
                cache.invalidate()  # a revoked or rotated-out token must not be sent again
            return sent, cache

        require_secure_destination(target)
        response, _ = send()
        if response.status_code == 401 and self._forget_discovery(str(target)):
            response, _ = send()  # the cached audience was stale: learn it again, once
        if response.status_code in _REDIRECTS and "location" in response.headers:
            location = str(response.url.join(response.headers["location"]))
            raise ApiRedirectedError(
                f"{verb} {target} answered {response.status_code} {response.reason_phrase} and "
                f"would send the call to {location}; tenantops does not follow redirects with "
                "a token, because the token is for this API only. Next: if you trust "
                f"{location}, call it directly (or fix --api-url / api.url)",
                url=str(target), status=response.status_code, location=location)
        if response.status_code in (401, 403):
            raise ApiCallRejectedError(Rejection.from_response(response), self._clock())
        return response

    def _forget_discovery(self, url: str) -> bool:
        """After a 401: drop what the discovery cache holds for the API, and say whether the
        refused audience came from it (then it is worth learning again)."""
        with self._lock:
            discovered = self._discovered
            if self._discovery_cache is None or discovered is None \
                    or discovered.origin == "configuration":
                return False
            self._discovery_cache.forget(api_root_of(url))
            if discovered.origin != "cache":
                return False
            self._discovered = None
            return True

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)

    def close(self) -> None:
        with self._lock:
            if self._http is not None:
                self._http.close()
                self._http = None

    def __enter__(self) -> TenantOpsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
