"""Long-running ARM operations a provider started and follows without any thread waiting.

A provider sends the PUT or DELETE, keeps the ``Azure-AsyncOperation`` URL Azure answered
with (`start_operation`), and on each later call reads that status resource once
(`TrackedOperations.check`): still running means the step stays `Pending`; ``Succeeded`` lets
the provider read the resource; ``Failed`` and ``Canceled`` become step errors naming the
operation, Azure's error code and message, and what to do (ARM RPC "Asynchronous operations",
the terminal states ``Succeeded``/``Failed``/``Canceled``).

The URLs are kept in the process only: after a restart the provider reads the resource and, if
needed, sends the request again, which ARM treats as the same idempotent PUT or DELETE.
"""

from __future__ import annotations

from typing import Any

from tenantops.errors import PermanentProviderError, ProviderError, TransientProviderError
from tenantops.provisioning.providers.azure.calls import operation_status

__all__ = ["TRANSIENT_OPERATION_CODES", "TrackedOperations"]

TRANSIENT_OPERATION_CODES = frozenset({
    "internalservererror", "serviceunavailable", "serverisbusy", "serverbusy",
    "conflictingdatabaseoperation", "operationtimedout", "toomanyrequests",
})
"""Error codes of a failed operation that a later attempt can clear by itself."""


class TrackedOperations:
    """The status URL of each operation in flight, by the provider's resource key."""

    def __init__(self) -> None:
        self._urls: dict[str, str] = {}

    def started(self, key: str, url: str | None) -> None:
        if url:
            self._urls[key] = url

    def forget(self, key: str) -> None:
        self._urls.pop(key, None)

    def running(self, key: str, client: Any, what: str) -> bool:
        """True while the operation for ``key`` runs; False when none is tracked or it
        succeeded; raises a provider error when it failed or was canceled. ``what`` names it
        ("create database tenant_acme on SQL server s")."""
        url = self._urls.get(key)
        if url is None:
            return False
        status = operation_status(f"read the status of the operation to {what}", client, url)
        if not status.done:
            return True
        del self._urls[key]
        state = status.status.lower()
        if state == "succeeded":
            return False
        raise _failure(state, status.code, status.message, what)


def _failure(state: str, code: str, message: str, what: str) -> ProviderError:
    if state.startswith("cancel"):
        return PermanentProviderError(
            f"Azure's operation to {what} was canceled (by someone or something other than "
            "tenantops, in the portal or by another client); nothing was left half-done by "
            "tenantops. Retry the run to start it again, or find out who canceled it")
    said = f"{code}: {message}" if code else (message or "no error given")
    if code.lower() in TRANSIENT_OPERATION_CODES:
        return TransientProviderError(
            f"Azure's operation to {what} ended Failed ({said}); this can clear by itself, "
            "will retry")
    return PermanentProviderError(
        f"Azure's operation to {what} ended Failed ({said}); fix what Azure names, then retry "
        "the run (the step starts the operation again)")
