"""Crash safety of a fleet run: the worker conducting a migration over many tenants is
killed with SIGKILL at random moments and restarted; the fleet finishes with every tenant
migrated exactly once: one child run per tenant (none opened twice, none skipped), each
tenant's migration committed once."""

from __future__ import annotations

import random
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest

from tenantops.config import load_settings
from tenantops.provisioning import Engine
from tenantops.provisioning.fleet import FleetRequest, FleetRuns, Selection, wait_for_fleet
from tenantops.provisioning.providers.database.sqlite import SqliteDatabases

from .conftest import spec_for
from .test_crash import CONFIG, Worker, wait_all

pytestmark = pytest.mark.integration

TENANTS = 16
KILLS = 5


def test_a_worker_killed_mid_fleet_migrates_every_tenant_exactly_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "0001_users.sql").write_text("CREATE TABLE users (id INTEGER PRIMARY KEY);")
    worker = Worker(tmp_path)
    worker.config.write_text(CONFIG.format(data=data) + (
        f'\n[migrations]\nfolder = "{migrations}"\n\n[fleet]\npoll_seconds = 0.05\n'
        "lease_seconds = 2\n"))
    settings = load_settings(worker.config)
    worker.start()
    requester = Engine(settings)  # not started: it only records; the worker conducts
    try:
        slugs = [f"fleetcrash{i:02d}" for i in range(TENANTS)]
        onboarded = wait_all(requester, [requester.onboard(spec_for(s), requested_by="t")
                                         for s in slugs], timeout=180)
        assert {r.status for r in onboarded} == {"succeeded"}
        (migrations / "0002_log.sql").write_text(
            "CREATE TABLE applied (n INTEGER);\nINSERT INTO applied VALUES (1);")
        runs = FleetRuns(requester)
        fleet = runs.create(FleetRequest("migrate", Selection(all=True), canary=2,
                                         concurrency=3, batch_size=5), requested_by="t")
        chance = random.Random(20261207)
        kills_mid_fleet = 0
        for _ in range(KILLS):
            time.sleep(chance.uniform(0.2, 0.8))
            kills_mid_fleet += runs.get(fleet.id).status == "running"
            worker.kill()
            worker.start()
        done = wait_for_fleet(runs, fleet.id, timeout=240)
        worker.stop()

        assert kills_mid_fleet >= 2, "too few kills landed while the fleet was running"
        assert done.status == "succeeded", (done.stop_reason, done.counts)
        assert done.counts.succeeded == TENANTS
        targets = requester.catalog.fleets.targets(fleet.id)
        assert {t.attempt for t in targets} == {1}  # no tenant got a second child run
        provider = requester.providers.database
        assert isinstance(provider, SqliteDatabases)
        for slug in slugs:
            migrate_runs = [r for r in requester.catalog.list_runs(slug)
                            if r.kind == "migrate"]
            assert len(migrate_runs) == 1, f"{slug} has {len(migrate_runs)} migrate runs"
            assert migrate_runs[0].status == "succeeded"
            tenant = requester.catalog.get_tenant(slug)
            assert tenant.schema_revision == "0002_log"
            assert tenant.database_name
            with closing(sqlite3.connect(provider.path(tenant.database_name))) as db:
                assert db.execute("SELECT count(*) FROM applied").fetchone() == (1,)
    finally:
        worker.stop()
        requester.stop()
