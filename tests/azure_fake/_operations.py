"""Asynchronous ARM operations: ``202 Accepted`` with ``Azure-AsyncOperation`` and ``Location``
headers, and the status resource a poller reads until the operation is done.

This is the ARM long-running-operation pattern (ARM RPC "Asynchronous operations") that
azure-mgmt-core's ``ARMPolling`` follows: the status URL answers ``{"status": "InProgress"}``
until the work is done, then ``{"status": "Succeeded"}``; the ``Location`` URL answers 202
until done, then 200 (or 204 after a delete). Completion is measured on the fake clock.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from tests.azure_fake._transport import FakeClock, FakeResponse, Incoming

__all__ = ["AsyncOperations"]


@dataclass
class _Operation:
    id: str
    done_at: float


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

    def done(self, op: str) -> bool:
        operation = self._operations.get(op)
        return operation is None or self.clock.now() >= operation.done_at

    def accepted(self, op: str, retry_after: int = 10) -> FakeResponse:
        base = f"https://{self.host}{self.status_path}"
        return FakeResponse(202, None, {
            "Azure-AsyncOperation": f"{base}/status/{op}?api-version={self.api_version}",
            "Location": f"{base}/result/{op}?api-version={self.api_version}",
            "Retry-After": str(retry_after),
        })

    def handle(self, _request: Incoming, match: re.Match[str]) -> FakeResponse:
        op = match["op"]
        finished = self.done(op)
        if match["kind"] == "status":
            return FakeResponse(200, {"name": op, "status": "Succeeded" if finished
                                      else "InProgress"})
        return FakeResponse(204 if finished else 202, None,
                            {} if finished else {"Retry-After": "10"})
