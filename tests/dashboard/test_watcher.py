"""`ChangeWatcher` alone, on a real catalog: changes wake the streams that follow them, a
long background job (the trends) never delays them, and its topics wake their streams."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from tenantops.catalog import Catalog, StepTemplate
from tenantops.dashboard._live import ChangeWatcher, LiveView, event_stream
from tests.catalog.test_repository import Spec
from tests.support.processes import READY_SECONDS

STEPS = [StepTemplate("register", "catalog:sqlite", "ensure")]


def test_a_long_job_does_not_delay_changes_and_its_topics_wake_streams(tmp_path: Path) -> None:
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    catalog.migrate()
    watcher = ChangeWatcher(catalog, interval=0.05)
    release = threading.Event()

    def trends() -> frozenset[str]:
        release.wait(READY_SECONDS)
        return frozenset({"stats"})

    async def scenario() -> None:
        run = catalog.open_onboarding(Spec(), requested_by="ops", steps=STEPS).run
        follows_run = watcher.subscribe(frozenset({f"run:{run.id}"}))
        follows_stats = watcher.subscribe(frozenset({"stats"}))
        follows_other = watcher.subscribe(frozenset({"run:someone-else"}))
        for subscription in (follows_run, follows_stats, follows_other):
            # The first look wakes everyone once, against a known state.
            await asyncio.wait_for(subscription.changed.wait(), READY_SECONDS)
            subscription.changed.clear()
        watcher.submit("trends", trends)
        watcher.submit("trends", trends)  # once, while it runs
        catalog.step_started(run.id, "register")
        await asyncio.wait_for(follows_run.changed.wait(), READY_SECONDS)
        assert not release.is_set(), "the change arrived while the job was still running"
        assert not follows_stats.changed.is_set()
        release.set()
        await asyncio.wait_for(follows_stats.changed.wait(), READY_SECONDS)
        assert not follows_other.changed.is_set(), "nothing changed that it follows"
        for subscription in (follows_run, follows_stats, follows_other):
            watcher.unsubscribe(subscription)

    try:
        asyncio.run(scenario())
        assert watcher.watching == 0
    finally:
        release.set()
        watcher.close()
        catalog.close()


def test_a_stream_whose_session_ended_says_so_and_ends(tmp_path: Path) -> None:
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    catalog.migrate()
    watcher = ChangeWatcher(catalog, interval=0.05)
    rendered: list[int] = []

    def render() -> str:
        rendered.append(1)
        return "<p>secret page</p>"

    async def never() -> bool:
        return False

    async def scenario() -> list[str]:
        view = LiveView("run.html", {}, frozenset({"runs"}))
        return [message async for message in event_stream(
            watcher, view, render, last_id=None, signed_in=lambda: False,
            is_disconnected=never, once=False, stream_seconds=READY_SECONDS,
            keepalive_seconds=READY_SECONDS, retry_ms=2000)]

    try:
        messages = asyncio.run(scenario())
    finally:
        watcher.close()
        catalog.close()
    assert messages == ["retry: 2000\n\n",
                        "event: signed-out\ndata: Your session ended; sign in again.\n\n"]
    assert rendered == [], "nothing of the page is rendered for a signed-out stream"
    assert watcher.watching == 0
