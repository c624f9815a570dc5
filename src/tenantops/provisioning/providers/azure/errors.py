"""Azure SDK errors as provider errors, translated in one place.

The rule (issue #7, ARCHITECTURE.md "Provider contract"):

- HTTP 429 (throttled) and 5xx, and failures to reach Azure at all (connection reset,
  timeout), are `TransientProviderError`: the engine retries them with backoff. A 429's
  ``Retry-After`` is kept on the error as ``retry_after`` (seconds) so the engine can wait at
  least that long.
- A 409 whose ARM error says another operation is in progress on the resource (App Service
  answers so when bindings of one site change at once, pulumi-azure#751; Azure SQL's
  ``ConflictingDatabaseOperation``; PostgreSQL flexible server's ``ServerIsBusy``) is
  transient too: it clears by itself once the other operation ends. Every other 4xx is
  permanent.
- Every other 4xx is `PermanentProviderError` whose message carries ARM's error code and
  message, the HTTP status, and what to do next.
- tenantops' identity errors (no usable identity source, token refused) are permanent.

Both ARM error shapes are read: the standard ``{"error": {"code", "message"}}`` and App
Service's ``{"Code", "Message"}``.
"""

from __future__ import annotations

import json
from typing import Any

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from tenantops.errors import (
    IdentityError,
    PermanentProviderError,
    ProviderError,
    TransientProviderError,
)

__all__ = ["arm_error_parts", "is_not_found", "retry_after_seconds", "translate_azure_error"]

_IN_PROGRESS_CODES = frozenset({
    "anotheroperationinprogress", "operationinprogress", "conflictingoperationinprogress",
    # Azure SQL while another operation on the database runs (azure-service-operator#1274)
    "conflictingdatabaseoperation",
    # PostgreSQL flexible server while it processes another operation
    # (Azure/azure-postgresql#134, Azure/bicep-registry-modules#4451)
    "serverisbusy", "serverbusy",
})
_IN_PROGRESS_TEXT = ("another operation is in progress", "another operation in progress",
                     "busy processing another operation", "busy with another operation")

_ADVICE = {
    400: "the request was refused as invalid; check the values named above",
    401: "Azure refused the token; check [azure] source/identity and that the identity "
         "exists in the subscription's tenant",
    403: "the identity lacks a role on this resource; run 'tenantops azure check' to see "
         "which role to assign",
    404: "the resource or its parent does not exist; check the names and resource group in "
         "the [providers] configuration",
    409: "the resource conflicts with its current state (see ARM's message)",
    412: "the resource changed since it was read (ETag mismatch); it is read again on retry",
}


def arm_error_parts(exc: HttpResponseError) -> tuple[str, str]:
    """ARM's error ``(code, message)`` from the response body (either shape), else from the
    SDK's parsed error; ``("", "")`` when there is none."""
    body: Any = None
    response = exc.response
    if response is not None:
        try:
            body = json.loads(response.text() or "null")
        except (ValueError, TypeError):
            body = None
    if isinstance(body, dict):
        inner: dict[str, Any] = body["error"] if isinstance(body.get("error"), dict) else body
        code = str(inner.get("code") or inner.get("Code") or "")
        message = str(inner.get("message") or inner.get("Message") or "")
        nested = inner.get("innererror") if isinstance(inner.get("innererror"), dict) else None
        if nested and nested.get("code"):
            code = f"{code}/{nested['code']}" if code else str(nested["code"])
        if code or message:
            return code, " ".join(message.split())
    error = exc.error
    if error is not None:
        return str(error.code or ""), " ".join(str(error.message or "").split())
    return "", ""


def retry_after_seconds(exc: HttpResponseError) -> float | None:
    """The ``Retry-After`` (or ``x-ms-retry-after-ms``) the service asked for, in seconds."""
    response = exc.response
    if response is None:
        return None
    headers = getattr(response, "headers", {})
    millis = headers.get("x-ms-retry-after-ms") or headers.get("retry-after-ms")
    try:
        if millis is not None:
            return max(0.0, float(millis) / 1000)
        value = headers.get("Retry-After")
        return None if value is None else max(0.0, float(value))
    except ValueError:
        return None


def is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, ResourceNotFoundError) or (
        isinstance(exc, HttpResponseError) and exc.status_code == 404)


def translate_azure_error(exc: BaseException, *, doing: str) -> ProviderError:
    """``exc`` (raised while ``doing`` something, e.g. "create the hostname binding for x")
    as a `TransientProviderError` or `PermanentProviderError`; the caller raises it
    ``from exc``."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, IdentityError):
        return PermanentProviderError(f"could not {doing}: no token for Azure: {exc}")
    if isinstance(exc, HttpResponseError) and exc.status_code is not None:
        return _from_status(exc, exc.status_code, doing)
    if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
        return TransientProviderError(
            f"could not {doing}: Azure could not be reached ({_first_line(exc)}); will retry")
    if isinstance(exc, ClientAuthenticationError):
        return PermanentProviderError(
            f"could not {doing}: authentication failed ({_first_line(exc)}); check [azure] "
            "source/identity")
    if isinstance(exc, AzureError):
        return PermanentProviderError(f"could not {doing}: {_first_line(exc)}")
    return PermanentProviderError(f"could not {doing}: {type(exc).__name__}: {exc}")


def _from_status(exc: HttpResponseError, status: int, doing: str) -> ProviderError:
    code, message = arm_error_parts(exc)
    said = f"{code}: {message}" if code else (message or exc.reason or "no error body")
    if status == 429 or status >= 500 or status == 408:
        wait = retry_after_seconds(exc)
        hint = f"retry after {wait:g} s" if wait is not None else "will retry"
        error = TransientProviderError(
            f"could not {doing}: Azure answered {status} ({said}); {hint}", status_code=status)
        error.retry_after = wait
        return error
    if status in (409, 400) and (code.lower() in _IN_PROGRESS_CODES or
                          any(t in message.lower() for t in _IN_PROGRESS_TEXT)):
        return TransientProviderError(
            f"could not {doing}: Azure answered {status} ({said}); another operation on the "
            "resource is still running, will retry", status_code=status)
    advice = _ADVICE.get(status, "see Azure's message")
    return PermanentProviderError(
        f"could not {doing}: Azure answered {status} ({said}); {advice}", status_code=status)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
