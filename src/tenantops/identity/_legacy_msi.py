"""The legacy ``MSI_ENDPOINT``/``MSI_SECRET`` endpoint (api-version 2017-09-01), asked directly.

azure-identity 1.27 sends this pair to msal's Azure ML path, which reads ``expires_on`` with
``int()``; the 2017-09-01 endpoint returns a date string (``"06/20/2019 02:57:58 +00:00"``,
shared reference §1b), so every successful answer fails with ``ValueError``. This credential
speaks the protocol itself and parses both forms (docs/decisions.md, 2026-11-30).
"""

from __future__ import annotations

import calendar
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from azure.core.credentials import AccessTokenInfo, TokenRequestOptions
from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError

from tenantops.identity._runtimes import EndpointAnswer, ManagedIdentityRuntime, request_token
from tenantops.identity._selector import IdentitySelector

__all__ = ["LegacyMsiCredential", "parse_expires_on"]

_DEFAULT_SUFFIX = "/.default"


def parse_expires_on(value: object) -> int:
    """Epoch seconds from an ``expires_on`` that is an integer or a 2017-09-01 date string."""
    text = str(value).strip()
    try:
        return int(text)
    except ValueError:
        pass
    if text.endswith(" +00:00"):
        date = text[: -len(" +00:00")]
        for pattern in ("%m/%d/%Y %H:%M:%S", "%m/%d/%Y %I:%M:%S %p"):  # Linux, Windows
            try:
                return calendar.timegm(time.strptime(date, pattern))
            except ValueError:
                continue
    raise ValueError(f"expires_on {text!r} is neither epoch seconds nor a 2017-09-01 date")


class LegacyMsiCredential:
    """azure-core ``SupportsTokenInfo`` for the 2017-09-01 endpoint; one request per call.

    Refusals are recorded with ``on_answer`` (so the caller sees status, body and headers) and
    raised as azure-core's `ClientAuthenticationError`, like azure-identity's credentials, so
    one translation layer handles every source. Constructing it does no I/O.
    """

    def __init__(
        self,
        runtime: ManagedIdentityRuntime,
        environ: Mapping[str, str],
        selector: IdentitySelector | None,
        *,
        on_answer: Callable[[EndpointAnswer], None] | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._runtime = runtime
        self._environ = dict(environ)
        self._selector = selector
        self._on_answer = on_answer
        self._transport = transport
        self._timeout = timeout
        self._http: httpx.Client | None = None
        self._lock = threading.Lock()

    def _client(self) -> httpx.Client:
        with self._lock:
            if self._http is None:
                self._http = httpx.Client(transport=self._transport, timeout=self._timeout)
            return self._http

    def get_token_info(
        self, *scopes: str, options: TokenRequestOptions | None = None
    ) -> AccessTokenInfo:
        if len(scopes) != 1:
            raise ValueError("the managed-identity endpoint takes exactly one scope")
        resource = scopes[0].removesuffix(_DEFAULT_SUFFIX)
        try:
            response = request_token(self._runtime, self._environ, resource, self._selector,
                                     self._client())
        except httpx.HTTPError as exc:
            raise ServiceRequestError(
                f"the legacy MSI endpoint did not answer: {exc}", error=exc) from exc
        if response.status_code != 200:
            answer = EndpointAnswer.from_parts(response.status_code, response.headers,
                                               response.text)
            if self._on_answer is not None:
                self._on_answer(answer)
            raise ClientAuthenticationError(message=answer.describe())
        payload: dict[str, Any] = response.json()
        return AccessTokenInfo(str(payload["access_token"]),
                               parse_expires_on(payload["expires_on"]),
                               token_type=str(payload.get("token_type", "Bearer")))

    def __enter__(self) -> LegacyMsiCredential:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._http is not None:
                self._http.close()
                self._http = None
