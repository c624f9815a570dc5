"""Webhooks end to end: a started engine onboards tenants, the worker's dispatcher delivers
every lifecycle event to a receiver that verifies it with the Standard Webhooks library and
reads it with the CloudEvents library; failing receivers, parking after a day, filters,
410, redirects, and secrets that never reach a log."""

from __future__ import annotations

import base64
import datetime as dt
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tenantops.catalog import Catalog
from tenantops.config import Settings
from tenantops.events import EventDispatcher
from tenantops.provisioning.engine import Engine
from tests.provisioning.conftest import fast_settings, spec_for
from tests.provisioning.middleware import Outage

from .receiver import Receiver, receiving

pytestmark = pytest.mark.integration  # loopback HTTP servers and the engine's own

SECRET = "whsec_" + base64.b64encode(b"tenantops-events-test-secret-32b").decode()
T0 = dt.datetime(2026, 12, 6, 9, 0, tzinfo=dt.timezone.utc)


def events_settings(url: str, **webhook: Any) -> dict[str, Any]:
    return {"webhooks": [{"name": "ops", "url": url, "secret": SECRET, **webhook}],
            "poll_seconds": 0.05, "retry_initial_seconds": 0.05, "retry_max_seconds": 0.2,
            "lease_seconds": 5, "timeout_seconds": 2}


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout:.0f} s: {what}"
        time.sleep(0.05)


def all_delivered(catalog: Catalog) -> bool:
    counts = catalog.events.counts()
    return counts["unrouted"] == 0 and counts["pending"] == 0


def test_a_receiver_failing_the_first_attempts_gets_every_event_once_in_order_per_tenant(
        tmp_path: Path) -> None:
    outage = Outage("organization", "keycloak: 403 Forbidden (injected)")
    with receiving(Receiver(SECRET, fail_first=2)) as receiver:
        engine = Engine(fast_settings(tmp_path / "data", events=events_settings(receiver.url)),
                        middleware=[outage])
        engine.start()
        try:
            slugs = ["alpha", "bravo", "charlie", "delta"]
            runs = [engine.onboard(spec_for(slug), requested_by="ops@contoso.test")
                    for slug in slugs]
            finished = [engine.wait(run.id, timeout=60) for run in runs]
            assert {run.status for run in finished} == {"failed"}
            outage.fix()
            for run in runs:
                engine.retry(run.id, requested_by="oncall@contoso.test")
            assert {engine.wait(run.id, timeout=60).status for run in runs} == {"succeeded"}
            wait_until(lambda: all_delivered(engine.catalog), "every event delivered")
            outbox = engine.catalog.events.page(limit=1000)
        finally:
            engine.stop()

    assert receiver.rejected == [], "every request verified with the Standard Webhooks library"
    ids = receiver.ids()
    assert len(ids) == len(set(ids)), "no event accepted twice"
    assert set(ids) == {e.id for e in outbox}, "every event of the outbox arrived"
    assert receiver.duplicates == []
    assert set(receiver.attempts.values()) == {3}, "two failed attempts, then accepted"
    for slug in slugs:
        received = [a.seq for a in receiver.accepted if a.tenant == slug]
        assert received == [e.seq for e in outbox if e.tenant_slug == slug], slug
        types = [a.type.removeprefix("com.tenantops.") for a in receiver.accepted
                 if a.tenant == slug]
        assert types == ["run.requested", "run.started", "step.failed", "tenant.failed",
                         "run.retried", "run.started", "tenant.onboarded"]
    delivered = engine.catalog.events.deliveries(limit=1000)
    assert {(d.status, d.attempts, d.last_status) for d in delivered} == {
        ("delivered", 3, 204)}
    retried = next(a for a in receiver.accepted if a.type == "com.tenantops.run.retried")
    assert retried.data["tenant"]["slug"] in slugs


def dispatcher_for(tmp_path: Path, settings: Settings, clock: Callable[[], dt.datetime]
                   ) -> tuple[Catalog, EventDispatcher]:
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    catalog.migrate()
    return catalog, EventDispatcher(settings, catalog, executor_id="test-worker", clock=clock)


def open_and_finish(catalog: Catalog, slug: str) -> str:
    run = catalog.open_onboarding(spec_for(slug), requested_by="ops", steps=[]).run
    catalog.finish_run(run.id, "succeeded")
    return run.id


class FakeClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


def test_a_delivery_failing_for_a_day_is_parked_then_redelivered(tmp_path: Path) -> None:
    clock = FakeClock()
    with receiving(Receiver(SECRET, fail_first=10**6, fail_status=503)) as receiver:
        settings = fast_settings(tmp_path, events={
            **events_settings(receiver.url), "retry_initial_seconds": 60,
            "retry_max_seconds": 3600})
        catalog, dispatcher = dispatcher_for(tmp_path, settings, clock)
        try:
            open_and_finish(catalog, "echo")
            first, second = catalog.events.page(tenant="echo")
            attempts = 0
            while catalog.events.counts()["parked"] == 0:
                attempts += dispatcher.run_once()
                clock.advance(3600)
                assert attempts < 100, "never parked"
            parked = catalog.events.deliveries(status="parked")
            assert [(d.event_id, d.sink) for d in parked] == [(first.id, "webhook:ops")]
            assert parked[0].last_status == 503
            assert "answered 503" in (parked[0].last_error or "")
            window = parked[0].last_attempt_at - parked[0].first_attempt_at  # type: ignore[operator]
            assert dt.timedelta(hours=20) < window <= dt.timedelta(days=1)
            assert 10 <= parked[0].attempts <= 40, "backoff doubles up to an hour"
            # The tenant's next event is no longer held back by the parked one.
            due = catalog.events.due(clock(), sinks=["webhook:ops"])
            assert [e.id for _, e in due] == [second.id]

            receiver.fail_first = 0
            catalog.events.redeliver(parked[0].id)
            while not all_delivered(catalog):
                assert dispatcher.run_once() >= 1
            # The tenant's next event had not gone out yet: the redelivered one, older, goes
            # first, so this receiver still sees the tenant's events in order.
            assert receiver.ids() == [first.id, second.id]
        finally:
            dispatcher.stop()
            catalog.close()


def test_410_gone_parks_at_once_and_a_redirect_is_not_followed(tmp_path: Path) -> None:
    clock = FakeClock()
    with receiving(Receiver(SECRET, fail_first=10**6, fail_status=410)) as gone, \
            receiving(Receiver(SECRET, fail_first=10**6, fail_status=307)) as moved:
        settings = fast_settings(tmp_path, events=events_settings(gone.url))
        settings.events.webhooks.append(settings.events.webhooks[0].model_copy(
            update={"name": "moved", "url": moved.url}))
        catalog, dispatcher = dispatcher_for(tmp_path, settings, clock)
        try:
            open_and_finish(catalog, "foxtrot")
            dispatcher.run_once()
            parked = catalog.events.deliveries(status="parked")
            assert [(d.sink, d.attempts, d.last_status) for d in parked] == [
                ("webhook:ops", 1, 410)]
            assert "410 Gone" in (parked[0].last_error or "")
            pending = catalog.events.deliveries(status="pending", sink="webhook:moved")
            assert {d.last_status for d in pending} == {307, None}
            assert "redirects are not followed" in next(
                d.last_error for d in pending if d.last_error)
            assert len(moved.requests) == 1, "one attempt, not followed anywhere"
        finally:
            dispatcher.stop()
            catalog.close()


def test_each_webhook_gets_only_what_its_filter_and_tenants_take(tmp_path: Path) -> None:
    clock = FakeClock()
    with receiving(Receiver(SECRET)) as everything, receiving(Receiver(SECRET)) as billing:
        settings = fast_settings(tmp_path, events=events_settings(everything.url))
        settings.events.webhooks.append(settings.events.webhooks[0].model_copy(update={
            "name": "billing", "url": billing.url, "filter": ["com.tenantops.tenant.*"],
            "tenants": ["golf"]}))
        catalog, dispatcher = dispatcher_for(tmp_path, settings, clock)
        try:
            open_and_finish(catalog, "golf")
            open_and_finish(catalog, "hotel")
            while not all_delivered(catalog):
                dispatcher.run_once()
            assert len(everything.ids()) == 4
            assert [(a.type, a.tenant) for a in billing.accepted] == [
                ("com.tenantops.tenant.onboarded", "golf")]
        finally:
            dispatcher.stop()
            catalog.close()


def test_the_webhook_secret_never_reaches_a_log(tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    caplog.set_level(logging.DEBUG)
    with receiving(Receiver(SECRET, fail_first=1)) as receiver:
        catalog, dispatcher = dispatcher_for(
            tmp_path, fast_settings(tmp_path, events=events_settings(receiver.url)), clock)
        try:
            open_and_finish(catalog, "india")
            while not all_delivered(catalog):
                dispatcher.run_once()
                clock.advance(1)
        finally:
            dispatcher.stop()
            catalog.close()
    assert "attempt 1 failed" in caplog.text
    key = SECRET.removeprefix("whsec_")
    assert key not in caplog.text
    assert base64.b64decode(key).decode() not in caplog.text
    assert all(key not in (d.last_error or "") for d in catalog.events.deliveries())
    assert key not in repr(fast_settings(tmp_path, events=events_settings(receiver.url)))


def test_two_dispatchers_send_each_event_once(tmp_path: Path) -> None:
    """Only the lease holder sends; the other's passes make no attempt."""
    clock = FakeClock()
    with receiving(Receiver(SECRET)) as receiver:
        settings = fast_settings(tmp_path, events=events_settings(receiver.url))
        catalog, first = dispatcher_for(tmp_path, settings, clock)
        second = EventDispatcher(settings, catalog, executor_id="other-worker", clock=clock)
        try:
            for slug in ("juliet", "kilo"):
                open_and_finish(catalog, slug)
            assert first.run_once() == 2
            assert second.run_once() == 0
            while not all_delivered(catalog):
                first.run_once()
                assert second.run_once() == 0
            assert sorted(receiver.ids()) == sorted(e.id for e in catalog.events.page())
            assert receiver.duplicates == []
            first.stop()  # gives the lease up: the other takes over at its next pass
            open_and_finish(catalog, "lima")
            while not all_delivered(catalog):
                assert second.run_once() >= 1
            assert len(receiver.ids()) == 6
        finally:
            first.stop()
            second.stop()
            catalog.close()


def test_backoff_doubles_with_jitter_and_honours_retry_after(tmp_path: Path) -> None:
    settings = fast_settings(tmp_path, events={"retry_initial_seconds": 5,
                                               "retry_max_seconds": 3600})
    catalog = Catalog(f"sqlite:///{tmp_path / 'c.sqlite'}")
    dispatcher = EventDispatcher(settings, catalog, executor_id="w")
    try:
        for attempt, base in ((1, 5), (2, 10), (3, 20), (12, 3600)):
            waits = [dispatcher.backoff(attempt) for _ in range(50)]
            assert all(0.8 * base <= w <= 1.2 * base for w in waits), (attempt, waits)
            assert len(set(waits)) > 1, "jittered"
        assert dispatcher.backoff(1, retry_after=120) >= 120
        assert dispatcher.backoff(1, retry_after=10**6) == 3600
    finally:
        dispatcher.stop()
    assert os.path.exists(tmp_path / "c.sqlite") is False, "constructing did no I/O"


def test_a_restarted_worker_replaces_only_its_own_dead_process(tmp_path: Path) -> None:
    catalog = Catalog(f"sqlite:///{tmp_path / 'c.sqlite'}")
    dispatcher = EventDispatcher(fast_settings(tmp_path), catalog, executor_id="worker-1")
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    host = socket.gethostname()
    dead_pid = 4_194_304 + 17  # above Linux's pid_max: no such process
    try:
        assert dispatcher.replaces(f"worker-1:{host}:{dead_pid}:ab12")
        assert not dispatcher.replaces(f"worker-1:{host}:{alive.pid}:ab12"), "still running"
        assert not dispatcher.replaces(f"worker-1:{host}:{os.getpid()}:ab12"), "this process"
        assert not dispatcher.replaces(f"worker-1:another-host:{dead_pid}:ab12")
        assert not dispatcher.replaces(f"worker-2:{host}:{dead_pid}:ab12")
        assert not dispatcher.replaces("worker-1")
    finally:
        alive.kill()
        alive.wait()
        dispatcher.stop()
