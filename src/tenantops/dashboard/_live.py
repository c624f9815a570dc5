"""Live pages: one Server-Sent Events stream per page, fed by one change watcher per process.

**What changes.** `ChangeWatcher` is one thread per process that, while at least one page is
open (or a background job waits), looks at the catalog every ``dashboard.poll_seconds``:

- the pending and running runs, each with the step it is at and that step's status,
  attempts and last message (`RunReports.active`, two indexed queries): every write of the
  engine (a step started, waiting, retrying, succeeded, failed; a run opened, started,
  finished, cancelled, retried) changes one of these, so no write needs a signal of its own;
- the newest lifecycle event (``events.seq``): tenant and run transitions, and whatever
  other parts of tenantops record as events;
- the newest audit record.

It turns differences into *topics* (``runs``, ``run:<id>``, ``tenants``, ``tenant:<slug>``,
``events``, ``audit``, ``stats``) and wakes the streams subscribed to them. Its cost is
those four queries per tick per process, whatever the number of open pages; with no page
open it stops.

**What a page receives.** `event_stream` renders the page's live part (the same template
block the page was rendered with) when one of its topics changed, at most once per the
page's ``min_interval``, and sends it only if the HTML differs from what the page has. The
SSE event ID is a digest of that HTML: a browser that reconnects sends it back as
``Last-Event-ID`` and gets the current HTML at once if it differs, from any instance, as no
instance keeps state about a page. Comments keep an idle stream open through proxies.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio

from tenantops.catalog import Catalog
from tenantops.errors import TenantOpsError

__all__ = [
    "ChangeWatcher",
    "LiveView",
    "Subscription",
    "event_stream",
    "live_id",
    "sse_event",
]

log = logging.getLogger("tenantops.dashboard")

Job = Callable[[], frozenset[str]]
"""Work the watcher runs on a thread of its own (computing the overview's trends); returns
the topics to wake when it is done."""


@dataclass(frozen=True)
class LiveView:
    """A page that updates live: its template (whose ``live`` block is the part that
    changes), the values the template needs, the topics it follows, and how often at most
    it is rendered again (lists and the overview: once a second; a run: each change)."""

    template: str
    context: Mapping[str, Any]
    topics: frozenset[str]
    min_interval: float = 0.0
    title: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)


def live_id(html: str) -> str:
    """The SSE event ID of a rendering: a digest of its HTML (the same on every instance)."""
    return hashlib.sha256(html.encode("utf-8")).hexdigest()[:20]


def sse_event(event: str, data: str, *, event_id: str | None = None) -> str:
    """One SSE message (WHATWG HTML, "Server-sent events": one ``data:`` field per line)."""
    lines = [f"event: {event}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.extend(f"data: {line}" for line in data.replace("\r\n", "\n").replace("\r", "\n")
                 .split("\n"))
    return "\n".join(lines) + "\n\n"


class Subscription:
    """One open stream's interest in some topics (``*``: every change). ``changed`` is set
    from the watcher's thread when one of them changed; the first tick after subscribing
    sets it too, so the stream renders against a known state of the catalog."""

    def __init__(self, topics: frozenset[str], loop: asyncio.AbstractEventLoop) -> None:
        self.topics = topics
        self.changed = asyncio.Event()
        self.fresh = True
        self._loop = loop

    def wants(self, topics: set[str]) -> bool:
        return self.fresh or "*" in self.topics or not self.topics.isdisjoint(topics)

    def notify(self) -> None:
        """Called from the watcher's thread."""
        self.fresh = False
        with contextlib.suppress(RuntimeError):  # the loop closed: the stream is gone
            self._loop.call_soon_threadsafe(self.changed.set)


@dataclass
class _State:
    runs: dict[str, tuple[str, tuple[Any, ...]]]
    event_seq: int
    audit_id: int


class ChangeWatcher:
    """Looks for changes in the catalog while anyone watches (module docstring); runs
    background jobs, each on a thread of its own. Starts on first use, stops when idle or
    closed."""

    def __init__(self, catalog: Catalog, *, interval: float, idle_seconds: float = 5.0
                 ) -> None:
        self._catalog = catalog
        self._interval = interval
        self._idle_seconds = idle_seconds
        self._lock = threading.Lock()
        self._subscriptions: set[Subscription] = set()
        self._jobs: dict[str, Job] = {}
        self._done: set[str] = set()
        self._workers: set[threading.Thread] = set()
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()
        self._wake = threading.Event()
        self.ticks = 0

    def subscribe(self, topics: frozenset[str]) -> Subscription:
        subscription = Subscription(topics, asyncio.get_running_loop())
        with self._lock:
            self._subscriptions.add(subscription)
            self._ensure_thread()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscriptions.discard(subscription)

    @property
    def watching(self) -> int:
        """How many streams are subscribed now."""
        with self._lock:
            return len(self._subscriptions)

    def submit(self, key: str, job: Job) -> None:
        """Run ``job`` on a thread of its own soon (once, if submitted again while it runs),
        so that a long job (the trends: seconds at 100,000 runs) never delays the look for
        changes; the topics it returns wake their streams at the next look."""
        with self._lock:
            if key in self._jobs or self._closed.is_set():
                return
            self._jobs[key] = job
            self._ensure_thread()
            worker = threading.Thread(target=self._work, args=(key, job), daemon=True,
                                      name=f"tenantops-dashboard-{key}")
            self._workers.add(worker)
        worker.start()

    def _work(self, key: str, job: Job) -> None:
        topics: frozenset[str] = frozenset()
        try:
            topics = job()
        except TenantOpsError as exc:
            log.warning("dashboard job %s failed: %s", key, exc)
        with self._lock:
            self._jobs.pop(key, None)
            self._done |= topics
            self._workers.discard(threading.current_thread())
        self._wake.set()

    def close(self) -> None:
        """Stop the thread (and wait for it); later subscriptions are never notified."""
        self._closed.set()
        self._wake.set()
        with self._lock:
            threads = [t for t in (self._thread, *self._workers) if t is not None]
        for thread in threads:
            thread.join(timeout=30)

    def _ensure_thread(self) -> None:
        if self._closed.is_set():
            return
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="tenantops-dashboard-changes",
                                            daemon=True)
            self._thread.start()

    def _run(self) -> None:
        state: _State | None = None
        idle_since = time.monotonic()
        while not self._closed.is_set():
            with self._lock:
                subscriptions = list(self._subscriptions)
                topics: set[str] = set(self._done)
                self._done.clear()
            if subscriptions:
                idle_since = time.monotonic()
                try:
                    state, changed = self._tick(state)
                    topics |= changed
                except TenantOpsError as exc:
                    log.warning("dashboard could not look for changes: %s", exc)
                self.ticks += 1
                for subscription in subscriptions:
                    if subscription.wants(topics):
                        subscription.notify()
            else:
                state = None  # nobody watched for a while: start from what is, next time
                with self._lock:
                    if not self._subscriptions and not self._jobs and (
                            time.monotonic() - idle_since > self._idle_seconds):
                        self._thread = None
                        return
            self._wake.wait(self._interval)
            self._wake.clear()

    def _tick(self, previous: _State | None) -> tuple[_State, set[str]]:
        catalog = self._catalog
        runs = {run.id: (run.tenant_slug, run.fingerprint())
                for run in catalog.run_reports.active()}
        current = _State(runs, catalog.events.last_seq(), catalog.audit.last_id())
        topics: set[str] = set()
        if previous is None:
            return current, topics
        for run_id in previous.runs.keys() | runs.keys():
            before, after = previous.runs.get(run_id), runs.get(run_id)
            if before != after:
                slug = (after or before or ("", ()))[0]
                topics |= {"runs", f"run:{run_id}", "tenants", f"tenant:{slug}"}
        if current.event_seq > previous.event_seq:
            topics.add("events")
            for event in catalog.events.page(after=previous.event_seq, limit=1000):
                if event.run_id:
                    topics |= {"runs", f"run:{event.run_id}"}
                if event.tenant_slug:
                    topics |= {"tenants", f"tenant:{event.tenant_slug}"}
        if current.audit_id != previous.audit_id:
            topics.add("audit")
        return current, topics


async def event_stream(
    watcher: ChangeWatcher, view: LiveView, render: Callable[[], str], *,
    last_id: str | None, signed_in: Callable[[], bool], is_disconnected: Callable[[], Any],
    once: bool, stream_seconds: float, keepalive_seconds: float, retry_ms: int,
) -> AsyncIterator[str]:
    """The SSE body of one page's stream (module docstring). ``render`` returns the page's
    live HTML (it reads the catalog: run in a worker thread); ``once``: end after the first
    update (hosts that buffer responses)."""
    subscription = watcher.subscribe(view.topics)
    sent = last_id
    deadline = time.monotonic() + stream_seconds
    last_render = 0.0
    try:
        yield f"retry: {retry_ms}\n\n"
        while time.monotonic() < deadline:
            try:
                await asyncio.wait_for(subscription.changed.wait(),
                                       timeout=min(keepalive_seconds,
                                                   max(0.1, deadline - time.monotonic())))
            except TimeoutError:
                if not signed_in():
                    yield sse_event("signed-out", "Your session ended; sign in again.")
                    return
                yield ": keep-alive\n\n"
                continue
            wait = last_render + view.min_interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            subscription.changed.clear()
            if await is_disconnected():
                return
            if not signed_in():
                yield sse_event("signed-out", "Your session ended; sign in again.")
                return
            last_render = time.monotonic()
            html = await anyio.to_thread.run_sync(render)
            event_id = live_id(html)
            if event_id != sent:
                sent = event_id
                yield sse_event("update", html, event_id=event_id)
                if once:
                    return
    finally:
        watcher.unsubscribe(subscription)
