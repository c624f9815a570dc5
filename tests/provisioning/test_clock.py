"""Liveness by the database's clock: a worker's heartbeat is stamped with the database's
time, its own clock's offset is measured, and nobody is seen in the future. (That a skewed
worker's clock is not used is shown by the fault suite, with libfaketime.)"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from tenantops.catalog import Catalog

from ..catalog.postgres import postgres_database


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Catalog]:
    if request.param == "sqlite":
        opened = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
        opened.migrate()
        yield opened
        opened.close()
        return
    with postgres_database() as url:
        opened = Catalog(url)
        opened.migrate()
        yield opened
        opened.close()


def test_a_beat_measures_the_workers_clock_against_the_databases(catalog: Catalog) -> None:
    offset = catalog.worker_seen("worker-a", host="host-1", pid=1)
    assert abs(offset) < 1.0  # the same machine: the same clock, within a round trip
    (worker,) = catalog.workers()
    assert worker.clock_offset_seconds == pytest.approx(offset)
    assert 0 <= worker.seen_seconds_ago < 5


def test_liveness_is_judged_by_the_databases_clock(catalog: Catalog) -> None:
    catalog.worker_seen("fresh", host="h", pid=1)
    catalog.worker_seen("silent", host="h", pid=2)
    with catalog.engine.begin() as connection:
        old = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=10)).replace(
            tzinfo=None if catalog.dialect == "sqlite" else dt.timezone.utc)
        connection.execute(text("UPDATE workers SET last_seen = :t WHERE executor_id = "
                                "'silent'"), {"t": old})
    assert catalog.live_workers(dt.timedelta(minutes=1)) == {"fresh"}
    seen = {w.executor_id: w.seen_seconds_ago for w in catalog.workers()}
    assert 590 < seen["silent"] < 620



def test_workers_silent_for_long_are_forgotten(catalog: Catalog) -> None:
    catalog.worker_seen("killed", host="h", pid=1)
    catalog.worker_seen("alive", host="h", pid=2)
    with catalog.engine.begin() as connection:
        old = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=2)).replace(
            tzinfo=None if catalog.dialect == "sqlite" else dt.timezone.utc)
        connection.execute(text("UPDATE workers SET last_seen = :t WHERE executor_id = "
                                "'killed'"), {"t": old})
    assert catalog.forget_silent_workers(dt.timedelta(days=1)) == 1
    assert [w.executor_id for w in catalog.workers()] == ["alive"]
