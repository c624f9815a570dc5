"""Asynchronous ARM operations: ``202 Accepted`` with ``Azure-AsyncOperation`` and ``Location``
headers, and the status resource a poller reads until the operation is done.

This is the ARM long-running-operation pattern (Azure/azure-resource-manager-rpc,
``v1.0/async-api-reference.proposed.md``) that azure-mgmt-core's ``ARMPolling`` follows and
the network recordings in ``Azure/azure-sdk-assets`` show: the ``Azure-AsyncOperation`` URL
answers 200 ``{"status": "InProgress"}`` until the work ends, then one of the terminal
states ``Succeeded``, ``Failed`` (with ``error: {code, message}``) or ``Canceled``; the
``Location`` URL answers 202 until done, then 200 (or 204 after a delete), and for a failed
operation the error (the fake answers 400 with it; the exact status is unconfirmed).
Completion is measured on the fake clock; tests make an operation fail or be canceled with
`fail` and `cancel`.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from tests.azure_fake._transport import FakeClock, FakeResponse, Incoming, arm_error

__all__ = ["AsyncOperations"]


@dataclass
class _Operation:
    id: str
    done_at: float
    outcome: str = "Succeeded"
    error: tuple[str, str] | None = None


class AsyncOperations:
    """Operations of one fake; ``status_path`` is the path prefix of its status URLs."""

    def __init__(self, clock: FakeClock, host: str, status_path: str, api_version: str) -> None:
        self.clock = clock
        self.host = host
        self.status_path = status_path
        self.api_version = api_version
        self._operations: dict[str, _Operation] = {}
        self._numbers = itertools.count(1)

    @property
    def pattern(self) -> str:
        return re.escape(self.status_path) + r"/(?P<kind>status|result)/(?P<op>[^/]+)"

    def start(self, seconds: float) -> str:
        op = f"op-{next(self._numbers):06d}"
        self._operations[op] = _Operation(op, self.clock.now() + seconds)
        return op

    def fail(self, op: str, code: str, message: str) -> None:
        """The operation ends ``Failed`` with this error when its time comes."""
        self._operations[op].outcome = "Failed"
        self._operations[op].error = (code, message)

    def cancel(self, op: str) -> None:
        """The operation ends ``Canceled`` now (as when someone cancels it in the portal)."""
        operation = self._operations[op]
        operation.outcome = "Canceled"
        operation.done_at = min(operation.done_at, self.clock.now())

    def done(self, op: str) -> bool:
        operation = self._operations.get(op)
        return operation is None or self.clock.now() >= operation.done_at

    def outcome(self, op: str) -> str:
        """InProgress, Succeeded, Failed or Canceled."""
        operation = self._operations.get(op)
        if operation is None:
            return "Succeeded"
        return operation.outcome if self.done(op) else "InProgress"

    def accepted(self, op: str, retry_after: int = 10) -> FakeResponse:
        base = f"https://{self.host}{self.status_path}"
        return FakeResponse(202, None, {
            "Azure-AsyncOperation": f"{base}/status/{op}?api-version={self.api_version}",
            "Location": f"{base}/result/{op}?api-version={self.api_version}",
            "Retry-After": str(retry_after),
        })

    def handle(self, _request: Incoming, match: re.Match[str]) -> FakeResponse:
        op = match["op"]
        state = self.outcome(op)
        operation = self._operations.get(op)
        if match["kind"] == "status":
            body: dict[str, object] = {"name": op, "status": state}
            if state == "Failed" and operation is not None and operation.error is not None:
                body["error"] = {"code": operation.error[0], "message": operation.error[1]}
            return FakeResponse(200, body)
        if state == "InProgress":
            return FakeResponse(202, None, {"Retry-After": "10"})
        if state == "Failed" and operation is not None and operation.error is not None:
            return arm_error(400, *operation.error)
        if state == "Canceled":
            return arm_error(400, "OperationCanceled", f"The operation {op} was canceled.")
        return FakeResponse(204)
