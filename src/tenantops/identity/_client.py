"""Call a protected API: `BearerAuth` for any httpx client, `TenantOpsClient` for the whole path.

`TenantOpsClient` discovers the audience (once), gets a token through a `TokenCache` (one
identity-endpoint request per token lifetime, shared by every thread), sends the call and turns
a 401/403 into `ApiCallRejectedError`, which shows the token's claims beside what the API
expects. The transport and the clock are injected; nothing connects before the first call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator, Mapping
from typing import Any

import httpx

from tenantops.errors import TenantOpsError
from tenantops.identity._audience import Audience, parse_audience
from tenantops.identity._cache import TokenCache
from tenantops.identity._credential import TokenProvider
from tenantops.identity._discovery import DiscoveredAudience, discover_audience
from tenantops.identity._rejection import ApiCallRejectedError, Rejection

__all__ = ["ApiUnreachableError", "BearerAuth", "TenantOpsClient"]


class ApiUnreachableError(TenantOpsError):
    """The API could not be reached at all (DNS, connection, TLS, timeout)."""


class BearerAuth(httpx.Auth):
    """Adds ``Authorization: Bearer <token>`` from a `TokenCache`.

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
        request.headers["Authorization"] = f"Bearer {self.cache.token().value}"
        yield request


class TenantOpsClient:
    """An audience-aware client for an Entra-protected API (the tenantops API, or any other).

    ``audience`` skips discovery; otherwise the first call probes its URL without a token and
    reads ``resource_id`` from the 401, falling back to ``configured_audience``. Thread-safe.
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
    ) -> None:
        self._base_url = base_url
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
                                          timeout=self._timeout, headers=self._headers)
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
                    configured=self._configured)
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
        """Send one call with a token; return the response unless it is a 401 or 403.

        Raises `ApiCallRejectedError` on 401/403, `ApiUnreachableError` when the API cannot be
        reached, and the identity errors of `IdentityCredential` when no token can be had.
        """
        cache = self._cache(self.audience(url))
        try:
            response = self._client().request(
                method.upper(), url, json=json, content=content, params=params,
                headers=headers, auth=BearerAuth(cache))
        except httpx.HTTPError as exc:
            raise ApiUnreachableError(
                f"{method.upper()} {url} could not be sent: {exc}. Next: check the URL and that "
                "the API is running and reachable from here.") from exc
        if response.status_code in (401, 403):
            if response.status_code == 401:
                cache.invalidate()  # a revoked or rotated-out token must not be sent again
            raise ApiCallRejectedError(Rejection.from_response(response), self._clock())
        return response

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
