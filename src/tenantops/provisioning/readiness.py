"""Is this process ready to serve, and what is degraded? (`ReadinessProbe`, behind
``GET /api/health/ready``).

Each check touches a dependency with a short timeout (``engine.readiness_timeout_seconds``)
on a daemon thread of its own; a check that has not answered when the next probe comes is
not started again (a hung database costs one thread, not one per probe). What a check says
is meant for an anonymous caller: a status and a reason in a few words, never a URL, a
host name, a user or a secret.

- ``catalog`` and ``system_database``: ``SELECT 1``; on SQLite also the free space of the
  folder (a full disk stops every write). Down: the probe answers 503.
- ``workers``: how many workers are alive and how many have a skewed clock (degraded when
  none is alive: runs wait in the queue).
- ``worker`` (only in a process that runs one): what its upkeep could not do (reach a
  database, resume a stalled run) and a clock that disagrees with the database's.
"""

from __future__ import annotations

import datetime as dt
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

if TYPE_CHECKING:
    from tenantops.provisioning.engine import Engine

__all__ = ["Check", "CheckStatus", "Readiness", "ReadinessProbe"]

CheckStatus = Literal["ok", "degraded", "down"]
_FULL_BYTES = 1 << 20


@dataclass(frozen=True)
class Check:
    status: CheckStatus
    detail: str | None = None
    seconds: float | None = None


@dataclass(frozen=True)
class Readiness:
    """``ok``; ``degraded`` (serving, but something needs a look); ``unavailable`` (a
    database this process needs is down: do not send it traffic)."""

    status: Literal["ok", "degraded", "unavailable"]
    checks: dict[str, Check] = field(default_factory=dict)


class _Pending:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: Check | None = None


class ReadinessProbe:
    """The checks of one process; `check` runs them all, each within the timeout."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._timeout = engine.settings.engine.readiness_timeout_seconds
        self._lock = threading.Lock()
        self._running: dict[str, _Pending] = {}
        self._system: sa.Engine | None = None

    def check(self) -> Readiness:
        checks: dict[str, Callable[[], Check]] = {
            "catalog": self._catalog, "system_database": self._system_database,
            "workers": self._workers,
        }
        if self._engine.started:
            checks["worker"] = self._worker
        started = {name: self._start(name, run) for name, run in checks.items()}
        deadline = time.monotonic() + self._timeout
        results: dict[str, Check] = {}
        for name, pending in started.items():
            if pending.done.wait(max(0.0, deadline - time.monotonic())) and pending.result:
                results[name] = pending.result
            else:
                results[name] = Check("down", f"no answer within {self._timeout:g} s")
        down = [c for n, c in results.items() if c.status == "down" and n != "workers"]
        if down:
            return Readiness("unavailable", results)
        if any(c.status != "ok" for c in results.values()):
            return Readiness("degraded", results)
        return Readiness("ok", results)

    def close(self) -> None:
        if self._system is not None:
            self._system.dispose()
            self._system = None

    def _start(self, name: str, run: Callable[[], Check]) -> _Pending:
        with self._lock:
            current = self._running.get(name)
            if current is not None and not current.done.is_set():
                return current  # the previous probe's check still waits on the dependency
            pending = _Pending()
            self._running[name] = pending

        def work() -> None:
            began = time.monotonic()
            try:
                result = run()
            except Exception as exc:
                result = Check("down", _reason(exc))
            pending.result = Check(result.status, result.detail,
                                   round(time.monotonic() - began, 4))
            pending.done.set()

        threading.Thread(target=work, name=f"tenantops-ready-{name}", daemon=True).start()
        return pending

    def _catalog(self) -> Check:
        self._engine.catalog.ping()
        return _disk_check(self._engine.catalog.engine.url, "catalog")

    def _system_database(self) -> Check:
        url = self._engine.system_database_url
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite" and parsed.database and (
                parsed.database != ":memory:" and not Path(parsed.database).exists()):
            return Check("ok", "not created yet: the first request or worker creates it")
        with self._lock:
            if self._system is None:
                self._system = _ping_engine(url, self._timeout)
            engine = self._system
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        return _disk_check(parsed, "system database")

    def _workers(self) -> Check:
        settings = self._engine.settings.engine
        workers = self._engine.catalog.workers()
        within = dt.timedelta(seconds=settings.worker_timeout_seconds)
        alive = [w for w in workers if w.alive(within)]
        skewed = [w for w in alive if w.clock_offset_seconds is not None
                  and abs(w.clock_offset_seconds) > settings.clock_skew_tolerance_seconds]
        if not alive:
            return Check("degraded", f"no worker has been seen in the last "
                         f"{settings.worker_timeout_seconds:g} s: runs wait until one starts")
        if skewed:
            return Check("degraded", f"{len(alive)} alive; {len(skewed)} with a clock off the "
                         f"database's by more than {settings.clock_skew_tolerance_seconds:g} s")
        return Check("ok", f"{len(alive)} alive")

    def _worker(self) -> Check:
        problems = dict(self._engine.problems)
        if problems:
            return Check("degraded", "; ".join(f"{k}: {v}" for k, v in sorted(problems.items())))
        return Check("ok")


def _ping_engine(url: str, timeout: float) -> sa.Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return sa.create_engine(parsed, poolclass=NullPool, connect_args={"timeout": timeout})
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return sa.create_engine(parsed, poolclass=NullPool,
                            connect_args={"connect_timeout": max(1, round(timeout))})


def _disk_check(parsed: sa.URL, what: str) -> Check:
    if parsed.get_backend_name() != "sqlite" or not parsed.database or (
            parsed.database == ":memory:"):
        return Check("ok")
    folder = Path(parsed.database).resolve().parent
    if not folder.exists():
        return Check("ok")
    free = shutil.disk_usage(folder).free
    if free < _FULL_BYTES:
        return Check("down", f"the {what}'s disk is full ({free // 1024} KiB free)")
    return Check("ok")


def _reason(exc: BaseException) -> str:
    """A few words on why a dependency check failed, fit for an anonymous caller."""
    text = str(exc).lower()
    if "timeout" in text or "timed out" in text:
        return "timed out"
    if "refused" in text or "could not connect" in text or "connection" in text:
        return "unreachable"
    if "disk is full" in text or "no space" in text:
        return "disk full"
    if "no such table" in text or "does not exist" in text:
        return "not migrated (start a worker, or run the migrations)"
    if "authentication" in text or "password" in text:
        return "refused the credentials"
    return f"failed ({type(exc).__name__})"
