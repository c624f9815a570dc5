"""Provider middleware for tests: call logs, injected faults, delays and gates.

Each is a real `Middleware` attached through `Engine(middleware=...)` or
`Providers.use(...)`: the seam the engine offers, no patching.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tenantops.errors import PermanentProviderError, ProviderError, TransientProviderError
from tenantops.provisioning.engine import current_step
from tenantops.provisioning.providers.base import Outcome, Pending, ProviderCall


class CallLog:
    """Appends one JSON line per call event (begin, end, error) to ``path``.

    Lines are written with O_APPEND in one write each, so several threads and processes can
    share the file, and a SIGKILL leaves every finished line intact.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def _write(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def __call__(self, call: ProviderCall, proceed: Callable[[], Outcome]) -> Outcome:
        step = current_step()
        base = {
            "pid": os.getpid(), "provider": call.provider.label, "verb": call.verb,
            "resource": call.resource.key, "run": step.run_id if step else None,
            "step": step.step if step else None, "tenant": step.tenant if step else None,
        }
        self._write({**base, "event": "begin", "t": time.time()})
        try:
            outcome = proceed()
        except ProviderError as exc:
            self._write({**base, "event": "error", "t": time.time(), "error": str(exc)})
            raise
        self._write({**base, "event": "end", "t": time.time(),
                     "pending": isinstance(outcome, Pending)})
        return outcome

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line]


class TransientFaults:
    """Fails a share of calls with an HTTP-503-like transient error, before they run."""

    def __init__(self, rate: float, seed: int = 0) -> None:
        self.rate = rate
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self.injected = 0

    def __call__(self, call: ProviderCall, proceed: Callable[[], Outcome]) -> Outcome:
        with self._lock:
            fail = self._random.random() < self.rate
            if fail:
                self.injected += 1
        if fail:
            raise TransientProviderError(
                f"{call.provider.label} answered HTTP 503 Service Unavailable (injected)",
                status_code=503)
        return proceed()


class Outage:
    """Fails every call of one provider kind permanently until `fix` is called."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        self.message = message
        self.broken = True

    def fix(self) -> None:
        self.broken = False

    def __call__(self, call: ProviderCall, proceed: Callable[[], Outcome]) -> Outcome:
        if self.broken and call.provider.kind == self.kind:
            raise PermanentProviderError(self.message)
        return proceed()


class Delay:
    """Sleeps before each call (uniform in [low, high]), to spread work out in time."""

    def __init__(self, low: float, high: float | None = None, kind: str | None = None) -> None:
        self.low, self.high = low, high if high is not None else low
        self.kind = kind

    def __call__(self, call: ProviderCall, proceed: Callable[[], Outcome]) -> Outcome:
        if self.kind is None or call.provider.kind == self.kind:
            time.sleep(random.uniform(self.low, self.high))
        return proceed()


class Gate:
    """Holds calls of one provider kind until `open` is called; `entered` is set meanwhile."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.entered = threading.Event()
        self._open = threading.Event()

    def open(self) -> None:
        self._open.set()

    def __call__(self, call: ProviderCall, proceed: Callable[[], Outcome]) -> Outcome:
        if call.provider.kind == self.kind:
            self.entered.set()
            if not self._open.wait(30):
                raise PermanentProviderError("the test never opened the gate")
        return proceed()


class Intervals:
    """Records (tenant, start, end) of the calls of one provider kind."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.calls: list[tuple[str, float, float]] = []
        self._lock = threading.Lock()

    def __call__(self, call: ProviderCall, proceed: Callable[[], Outcome]) -> Outcome:
        if call.provider.kind != self.kind:
            return proceed()
        started = time.monotonic()
        try:
            return proceed()
        finally:
            step = current_step()
            with self._lock:
                self.calls.append((step.tenant if step else "", started, time.monotonic()))


class PendingFor:
    """Answers `Pending` for the first ``times`` calls of one plan step (every call while
    ``times`` is None), as a provider waiting on something outside it would (a customer's
    DNS records, a certificate), with ``retry_after`` and ``timeout_seconds``."""

    def __init__(self, step: str, *, retry_after: float, times: int | None = None,
                 timeout_seconds: float | None = None,
                 reason: str = "waiting for TXT asuid.app.example.test") -> None:
        self.step = step
        self.retry_after = retry_after
        self.times = times
        self.timeout_seconds = timeout_seconds
        self.reason = reason
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, call: ProviderCall, proceed: Callable[[], Outcome]) -> Outcome:
        current = current_step()
        if current is None or current.step != self.step:
            return proceed()
        with self._lock:
            self.calls += 1
            waiting = self.times is None or self.calls <= self.times
        if waiting:
            return Pending(self.reason, self.retry_after, timeout_seconds=self.timeout_seconds)
        return proceed()


class Throttled:
    """Raises a 429 with ``Retry-After: retry_after`` for the first ``times`` calls of one
    plan step, as a throttled cloud API does."""

    def __init__(self, step: str, *, retry_after: float, times: int) -> None:
        self.step = step
        self.retry_after = retry_after
        self.times = times
        self.calls = 0

    def __call__(self, call: ProviderCall, proceed: Callable[[], Outcome]) -> Outcome:
        current = current_step()
        if current is not None and current.step == self.step and self.calls < self.times:
            self.calls += 1
            raise TransientProviderError(
                f"{call.provider.label} answered 429 Too Many Requests", status_code=429,
                retry_after=self.retry_after)
        return proceed()
