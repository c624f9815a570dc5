"""The event dispatcher: a worker's background loop that delivers the outbox to the sinks.

Durable because it keeps no state of its own: events are written by the catalog in the
transaction of the change they report, and every step here is a catalog write, so a worker
killed at any moment loses nothing; the next dispatcher (the same worker restarted, or any
other) carries on from the catalog. Nothing in the request path waits for it.

One pass (every ``events.poll_seconds``, sooner when a retry falls due):

1. hold the lease (`EventStore.take_lease`): one dispatcher at a time sends, so the events of
   one tenant reach each sink in order. A dispatcher unheard of for ``events.lease_seconds``
   is replaced; the same worker restarted on the same host (same ``engine.executor_id``, its
   former process gone) takes over at once;
2. route: each new event gets a pending delivery for every sink whose filter it matches;
3. deliver: for each sink and tenant, the oldest pending delivery, when due, at most
   ``events.concurrency`` at once. A 2xx marks it delivered; a failure is tried again after
   an exponential backoff with jitter (``retry_initial_seconds`` doubling up to
   ``retry_max_seconds``, or the receiver's ``Retry-After`` when longer); once
   ``give_up_after_seconds`` (a day) have passed since its first attempt, or when the sink
   says trying again cannot help, the delivery is parked: shown by ``GET /api/events`` and
   ``tenantops events deliveries``, and the tenant's later events go on.

Guarantee: every event is delivered at least once to every sink it was routed to, unless it
is parked; a worker killed after the receiver accepted an event but before the catalog
recorded it sends the event again with the same ``webhook-id``, so a receiver that drops
duplicates by it sees every event exactly once, in order per tenant.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import socket
import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import httpx

from tenantops.catalog import Catalog, Delivery, Event
from tenantops.config import IdentitySettings, Settings
from tenantops.errors import EventDeliveryError, TenantOpsError
from tenantops.events.sinks import EventGridSink, Sink, WebhookSink
from tenantops.identity import IdentityCredential, TokenProvider

__all__ = ["EventDispatcher", "build_sinks"]

log = logging.getLogger("tenantops.events")

_ROUTE_BATCH = 500


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def build_sinks(settings: Settings, client: httpx.Client, *,
                event_grid_tokens: TokenProvider | None = None) -> list[Sink]:
    """The sinks ``settings.events`` configures (none: nothing is delivered)."""
    events = settings.events
    sinks: list[Sink] = [WebhookSink(w, source=events.source, client=client)
                         for w in events.webhooks]
    grid = events.event_grid
    if grid.topic_endpoint:
        tokens = event_grid_tokens or IdentityCredential(IdentitySettings(
            source=grid.identity_source or settings.identity.source,
            identity=grid.identity or settings.identity.identity))
        sinks.append(EventGridSink(grid, source=events.source, client=client, tokens=tokens))
    return sinks


class EventDispatcher:
    """Delivers the catalog's events to ``sinks`` (by default those the settings configure).

    ``executor_id`` names the worker (``engine.executor_id``); ``clock`` is injectable for
    tests. Construction does no I/O; `start` runs passes on a thread until `stop`, and
    `run_once` runs one pass on the caller's thread.
    """

    def __init__(
        self, settings: Settings, catalog: Catalog, *, executor_id: str,
        sinks: Sequence[Sink] | None = None, transport: httpx.BaseTransport | None = None,
        event_grid_tokens: TokenProvider | None = None,
        clock: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        self.settings = settings.events
        self.catalog = catalog
        self.executor_id = executor_id
        self.holder = f"{executor_id}:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._clock = clock
        # TCP_NODELAY: a small body sent after its headers otherwise waits for the
        # receiver's delayed ACK (about 40 ms per delivery on Linux).
        self._client = httpx.Client(
            timeout=self.settings.timeout_seconds, follow_redirects=False,
            transport=transport or httpx.HTTPTransport(
                socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]))
        self.sinks: list[Sink] = (list(sinks) if sinks is not None else build_sinks(
            settings, self._client, event_grid_tokens=event_grid_tokens))
        self._pool: ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self.holding = False

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Run passes on a background thread (a daemon: it never holds up an exit)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="tenantops-events",
                                        daemon=True)
        self._thread.start()
        log.info("event dispatcher started: %s", ", ".join(s.name for s in self.sinks)
                 or "no sinks configured (events are kept as history)")

    def stop(self) -> None:
        """Finish the current pass, give up the lease and close connections."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self.settings.timeout_seconds + 5)
            self._thread = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self.holding:
            try:
                self.catalog.events.release_lease(self.holder)
            except TenantOpsError as exc:
                log.warning("could not give up the event dispatcher lease: %s", exc)
            self.holding = False
        self._client.close()

    def wake(self) -> None:
        """Run the next pass now (new events were written in this process)."""
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except TenantOpsError as exc:
                log.warning("event dispatch failed (will try again in %.1f s): %s",
                            self.settings.poll_seconds, exc)
            except Exception as exc:  # the catalog unreachable mid-pass, for one
                log.warning("event dispatch failed (will try again in %.1f s): %s: %s",
                            self.settings.poll_seconds, type(exc).__name__, exc)
            self._wake.wait(self._pause())
            self._wake.clear()

    def _pause(self) -> float:
        pause = self.settings.poll_seconds
        if self.holding and self.sinks:
            try:
                due = self.catalog.events.next_due()
            except TenantOpsError:
                return pause
            if due is not None:
                pause = min(pause, max(0.0, (due - self._clock()).total_seconds()))
        return pause

    # -- one pass -------------------------------------------------------------------------

    def run_once(self) -> int:
        """Route new events and make the attempts that are due; returns how many attempts
        were made (0 when another worker holds the lease)."""
        store = self.catalog.events
        at = self._clock()
        self.holding = store.take_lease(self.holder, at=at, seconds=self.settings.lease_seconds,
                                        replaceable=self.replaces)
        if not self.holding:
            return 0
        self._route(at)
        if not self.sinks:
            return 0
        due = store.due(at, limit=self.settings.concurrency,
                        sinks=[s.name for s in self.sinks])
        if not due:
            return 0
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.settings.concurrency,
                                            thread_name_prefix="tenantops-event-delivery")
        by_name = {s.name: s for s in self.sinks}
        list(self._pool.map(lambda item: self._attempt(by_name[item[0].sink], *item), due))
        return len(due)

    def replaces(self, holder: str) -> bool:
        """True when ``holder`` is an earlier process of this worker that has died: same
        executor ID, same host, and its process is gone (a worker restarted after a kill
        takes the lease over at once instead of waiting for it to lapse)."""
        executor, _, rest = holder.partition(":")
        host, _, rest = rest.partition(":")
        pid_text = rest.partition(":")[0]
        if executor != self.executor_id or host != socket.gethostname():
            return False
        if not pid_text.isdigit() or int(pid_text) == os.getpid():
            return False
        try:
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def _route(self, at: dt.datetime) -> None:
        store = self.catalog.events
        while True:
            batch = store.unrouted(_ROUTE_BATCH)
            if not batch:
                return
            routes = {e.seq: [s.name for s in self.sinks if s.accepts(e)] for e in batch}
            store.route(routes, ordering_keys={e.seq: e.subject for e in batch}, at=at)
            if len(batch) < _ROUTE_BATCH:
                return

    def _attempt(self, sink: Sink, delivery: Delivery, event: Event) -> None:
        try:
            status = sink.deliver(event)
        except EventDeliveryError as exc:
            self._failed(delivery, event, exc)
            return
        except Exception as exc:  # a sink's bug must not stop the others
            self._failed(delivery, event, EventDeliveryError(
                f"{sink.name} failed unexpectedly: {type(exc).__name__}: {exc}",
                sink=sink.name))
            return
        self.catalog.events.attempted(delivery.id, at=self._clock(), delivered=True,
                                      status_code=status)

    def _failed(self, delivery: Delivery, event: Event, error: EventDeliveryError) -> None:
        at = self._clock()
        first = delivery.first_attempt_at or at
        attempt = delivery.attempts + 1
        next_at: dt.datetime | None = None
        if not error.permanent:
            wait = self.backoff(attempt, error.retry_after)
            candidate = at + dt.timedelta(seconds=wait)
            if candidate - first < dt.timedelta(seconds=self.settings.give_up_after_seconds):
                next_at = candidate
        self.catalog.events.attempted(delivery.id, at=at, delivered=False,
                                      status_code=error.status, error=str(error),
                                      next_attempt_at=next_at)
        if next_at is None:
            log.error("event %s (%s, %s) parked for %s after %d attempts: %s; redeliver it "
                      "with: tenantops events redeliver %d", event.id, event.type,
                      event.subject, delivery.sink, attempt, error, delivery.id)
        else:
            log.warning("event %s (%s) to %s: attempt %d failed: %s; next attempt in %.0f s",
                        event.id, event.type, delivery.sink, attempt, error,
                        (next_at - at).total_seconds())

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds before attempt ``attempt + 1``: exponential with jitter, capped; at least
        what the receiver asked for (``Retry-After``), within the same cap."""
        config = self.settings
        base = min(config.retry_max_seconds,
                   config.retry_initial_seconds * 2.0 ** (attempt - 1))
        wait: float = base * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not security
        if retry_after is not None:
            wait = max(wait, min(retry_after, config.retry_max_seconds))
        return wait
