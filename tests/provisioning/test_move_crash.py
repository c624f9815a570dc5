"""Crash safety of moves: a worker killed with SIGKILL at random moments, restarted each
time, finishes every move with each tenant's rows on the new server, its old copy gone, its
login able to sign in, and no step that had succeeded run again."""

from __future__ import annotations

import random
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from tenantops.config import load_settings
from tenantops.provisioning import Engine
from tenantops.provisioning.placement import database_of

from .conftest import spec_for
from .middleware import CallLog
from .test_crash import CONFIG, Worker, assert_no_succeeded_step_ran_again, wait_all
from .test_lifecycle_crash import killing

pytestmark = pytest.mark.integration

TENANTS = 16
ROWS = 20000

SERVERS = """
[providers.database]
move_grace_seconds = 0

[[providers.database.servers]]
name = "one"
directory = "{data}/one"

[[providers.database.servers]]
name = "two"
directory = "{data}/two"
"""


def test_sigkilled_worker_finishes_every_move(tmp_path: Path) -> None:
    data = tmp_path / "data"
    worker = Worker(tmp_path)
    worker.config.write_text(CONFIG.format(data=data) + SERVERS.format(data=data))
    settings = load_settings(worker.config)
    worker.start()
    requester = Engine(settings)
    chance = random.Random(20261207)
    slugs = [f"mv{i:02d}" for i in range(TENANTS)]
    try:
        onboarded = wait_all(requester, [requester.onboard(spec_for(s), requested_by="crash")
                                         for s in slugs], timeout=180)
        assert [(r.status, r.error) for r in onboarded] == [("succeeded", None)] * TENANTS
        database = requester.providers.database
        started = {s: requester.catalog.placement_of(s) for s in slugs}
        assert {p.server for p in started.values() if p} == {"one", "two"}  # spread
        there = {s: "two" if p and p.server == "one" else "one" for s, p in started.items()}
        for slug in slugs:
            with database.connect(database_of(slug, requester.catalog.placement_of(slug))) as db:
                db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT)")
                db.executemany("INSERT INTO orders (item) VALUES (?)",
                               [(f"{slug} {n}",) for n in range(ROWS)])

        moves = [requester.move(s, server=there[s], requested_by="crash") for s in slugs]
        landed = killing(worker, requester, moves, chance)
        moved = wait_all(requester, moves, timeout=240)
        worker.stop()
        assert [(r.status, r.error) for r in moved] == [("succeeded", None)] * TENANTS
        assert landed >= 2, "too few kills landed while moves were going on"

        for slug in slugs:
            placements = requester.catalog.placements_of(slug)
            assert [(p.state, p.server) for p in placements] == [("current", there[slug])]
            with closing(sqlite3.connect(data / there[slug] / f"tenant_{slug}.sqlite")) as db:
                assert db.execute("SELECT count(*) FROM orders").fetchone() == (ROWS,)
            left = "one" if there[slug] == "two" else "two"
            assert not (data / left / f"tenant_{slug}.sqlite").exists()
            assert database.read_metadata(database_of(slug, placements[0]))["database"] == \
                f"tenant_{slug}"
            assert requester.catalog.get_tenant(slug).status == "active"
        assert sum(requester.catalog.server_loads().values()) == TENANTS
        assert_no_succeeded_step_ran_again(requester, moved, CallLog(worker.calls).read(),
                                           worker.killed_pids)
    finally:
        worker.stop()
        requester.stop()
