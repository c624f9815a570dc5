"""Calling the Azure SDK with errors translated at the boundary."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest

from tenantops.provisioning.providers.azure.errors import is_not_found, translate_azure_error

__all__ = ["OperationStatus", "azure_call", "azure_get", "operation_status", "start_operation"]

T = TypeVar("T")


def azure_call(doing: str, call: Callable[[], T]) -> T:
    """``call()``; any exception becomes a provider error whose message starts with
    "could not <doing>"."""
    try:
        return call()
    except Exception as exc:
        raise translate_azure_error(exc, doing=doing) from exc


def azure_get(doing: str, call: Callable[[], T]) -> T | None:
    """`azure_call` for a read: ``None`` when the resource does not exist (404)."""
    try:
        return call()
    except Exception as exc:
        if is_not_found(exc):
            return None
        raise translate_azure_error(exc, doing=doing) from exc


def start_operation(doing: str, call: Callable[[Callable[[Any], None]], object]) -> str | None:
    """Send the first request of a long-running operation, ``call(hook)`` passing ``hook`` as
    the SDK's ``raw_response_hook``; the status URL Azure answered with
    (``Azure-AsyncOperation``, else ``Location``), or None when it gave none."""
    seen: list[str] = []

    def hook(response: Any) -> None:
        headers = response.http_response.headers
        url = headers.get("Azure-AsyncOperation") or headers.get("Location")
        if url:
            seen.append(str(url))

    azure_call(doing, lambda: call(hook))
    return seen[-1] if seen else None


@dataclass(frozen=True)
class OperationStatus:
    """An ARM asynchronous operation's state: ``InProgress`` (or another non-terminal state),
    ``Succeeded``, ``Failed`` (with ``code`` and ``message``) or ``Canceled``."""

    status: str
    code: str = ""
    message: str = ""

    @property
    def done(self) -> bool:
        return self.status.lower() in ("succeeded", "failed", "canceled", "cancelled")


def operation_status(doing: str, client: Any, url: str) -> OperationStatus:
    """GET the ``Azure-AsyncOperation`` status resource (ARM RPC "Asynchronous operations":
    ``{"status", "error": {"code", "message"}}``) through ``client``'s pipeline."""
    response = azure_call(doing, lambda: client.send_request(HttpRequest("GET", url)))
    if response.status_code == 202:
        return OperationStatus("InProgress")
    if response.status_code >= 400:
        raise translate_azure_error(
            HttpResponseError(response=response), doing=doing)
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or "status" not in body:
        # A Location URL answers the resource itself (200/204) once done.
        return OperationStatus("Succeeded")
    error: dict[str, Any] = body["error"] if isinstance(body.get("error"), dict) else {}
    return OperationStatus(str(body["status"]), str(error.get("code") or ""),
                           " ".join(str(error.get("message") or "").split()))
