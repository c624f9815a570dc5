"""Fleet runs on the embedded providers: a migration over many tenant databases (SQLite),
the canary set first, batches in order, the concurrency limit, the brake (count and percent),
resume after fixing the cause, cancel, dry run, and a new tenant migrated during onboarding."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from tenantops.catalog import FleetRun
from tenantops.errors import FleetStateError, MigrationError, SpecError
from tenantops.provisioning import Engine
from tenantops.provisioning.fleet import FleetRequest, FleetRuns, Selection, wait_for_fleet
from tenantops.provisioning.providers.base import Outcome, ProviderCall
from tenantops.provisioning.providers.database import DatabaseSchema
from tenantops.provisioning.providers.database.sqlite import SqliteDatabases
from tests.provisioning.conftest import EngineFactory, spec_for

pytestmark = pytest.mark.integration  # engines serve embedded DNS and web hosts

MIGRATIONS = {
    "0001_users.sql": "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL);",
    "0002_orders.sql": "CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER);",
    "0003_unique_email.sql": "CREATE UNIQUE INDEX users_email ON users (email);",
}


def migrations(folder: Path, files: dict[str, str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, body in (files or MIGRATIONS).items():
        (folder / name).write_text(body)
    return folder


class Concurrency:
    """Provider middleware: counts schema migrations in progress at once (the highest count
    seen), each held ``hold`` seconds so that overlapping ones overlap."""

    def __init__(self, hold: float = 0.05) -> None:
        self.hold = hold
        self.now = 0
        self.highest = 0
        self.order: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, call: ProviderCall, proceed: Callable[[], Outcome]) -> Outcome:
        if not isinstance(call.resource, DatabaseSchema) or call.verb != "ensure":
            return proceed()
        with self._lock:
            self.now += 1
            self.highest = max(self.highest, self.now)
            self.order.append(call.resource.database)
        try:
            time.sleep(self.hold)
            return proceed()
        finally:
            with self._lock:
                self.now -= 1


def onboard_all(engine: Engine, slugs: list[str]) -> None:
    runs = [engine.onboard(spec_for(s), requested_by="test").id for s in slugs]
    for run_id in runs:
        assert engine.wait(run_id, timeout=120).status == "succeeded"


def tenant_db(engine: Engine, slug: str) -> Path:
    provider = engine.providers.database
    assert isinstance(provider, SqliteDatabases)
    name = engine.catalog.get_tenant(slug).database_name
    assert name
    return provider.path(name)


def run_fleet(engine: Engine, **request: object) -> FleetRun:
    runs = FleetRuns(engine)
    selection = request.pop("selection", Selection(all=True))
    fleet = runs.create(FleetRequest("migrate", selection, **request),  # type: ignore[arg-type]
                        requested_by="test")
    return wait_for_fleet(runs, fleet.id, timeout=180)


def test_a_fleet_migrates_every_tenant_canary_first_in_batches_within_the_limit(
        make_engine: EngineFactory, tmp_path: Path) -> None:
    folder = migrations(tmp_path / "migrations", {k: v for k, v in MIGRATIONS.items()
                                                 if not k.startswith("0003")})
    counter = Concurrency()
    engine = make_engine(counter, migrations={"folder": folder, "on_onboarding": False},
                         fleet={"poll_seconds": 0.02})
    slugs = [f"t{n:02d}" for n in range(14)]
    onboard_all(engine, slugs)
    migrations(folder, {"0003_unique_email.sql": MIGRATIONS["0003_unique_email.sql"]})

    fleet = run_fleet(engine, canary=2, concurrency=3, batch_size=5, options={"revision": None})

    assert fleet.status == "succeeded", fleet.stop_reason
    assert fleet.counts.as_dict() == {"pending": 0, "running": 0, "succeeded": 14,
                                      "failed": 0, "skipped": 0, "cancelled": 0, "total": 14}
    assert counter.highest == 3  # the limit, and reached
    targets = engine.catalog.fleets.targets(fleet.id)
    assert [t.batch for t in targets] == [0, 0] + [1] * 5 + [2] * 5 + [3] * 2
    assert [t.canary for t in targets] == [True, True] + [False] * 12
    for earlier, later in zip(range(3), range(1, 4), strict=True):
        done = max(t.finished_at for t in targets if t.batch == earlier
                   and t.finished_at)
        first = min(t.started_at for t in targets if t.batch == later
                    and t.started_at)
        assert done <= first, f"batch {later} started before batch {earlier} was done"
    for slug in slugs:
        tenant = engine.catalog.get_tenant(slug)
        assert (tenant.status, tenant.schema_revision) == ("active", "0003_unique_email")
        with closing(sqlite3.connect(tenant_db(engine, slug))) as db:
            assert db.execute("SELECT name FROM sqlite_master WHERE name = 'users_email'"
                              ).fetchone() == ("users_email",)
    detail = targets[0].detail
    # not migrated during onboarding (on_onboarding = false): all three now, in order
    assert detail["applied"] == ["0001_users", "0002_orders", "0003_unique_email"]
    assert detail["previous_revision"] is None


def test_a_failing_tenant_keeps_its_revision_and_the_brake_stops_the_fleet_then_resume(
        make_engine: EngineFactory, tmp_path: Path) -> None:
    folder = migrations(tmp_path / "migrations", {k: v for k, v in MIGRATIONS.items()
                                                 if not k.startswith("0003")})
    engine = make_engine(migrations={"folder": folder}, fleet={"poll_seconds": 0.02})
    slugs = [f"u{n:02d}" for n in range(8)]
    onboard_all(engine, slugs)
    assert {engine.catalog.get_tenant(s).schema_revision for s in slugs} == {"0002_orders"}
    # Duplicate e-mail addresses in two tenants' data: the unique index fails there.
    for slug in ("u03", "u05"):
        with closing(sqlite3.connect(tenant_db(engine, slug))) as db:
            db.executemany("INSERT INTO users (email) VALUES (?)", [("a@x.test",)] * 2)
            db.commit()
    migrations(folder, {"0003_unique_email.sql": MIGRATIONS["0003_unique_email.sql"]
                        + "\nCREATE TABLE audit (id INTEGER);"})

    fleet = run_fleet(engine, canary=1, concurrency=1, max_failures=1)

    assert fleet.status == "stopped"
    assert fleet.stop_reason is not None
    assert "2 tenants failed, more than the 1 allowed (max_failures)" in fleet.stop_reason
    assert fleet.counts.failed == 2
    assert fleet.counts.pending == 2  # u06, u07 never started: the brake held them
    failed = engine.catalog.fleets.targets(fleet.id, status="failed")
    assert [t.tenant_slug for t in failed] == ["u03", "u05"]
    assert failed[0].error is not None
    assert "UNIQUE constraint failed" in failed[0].error
    assert "0003_unique_email" in failed[0].error
    for slug in ("u03", "u05"):
        assert engine.catalog.get_tenant(slug).schema_revision == "0002_orders"
        with closing(sqlite3.connect(tenant_db(engine, slug))) as db:
            # one transaction: the table made before the failing statement is gone too
            assert db.execute("SELECT name FROM sqlite_master WHERE name IN "
                              "('users_email', 'audit')").fetchall() == []
            assert db.execute("SELECT revision FROM tenantops_schema_version").fetchall(
                ) == [("0002_orders",)]
        assert engine.catalog.get_tenant(slug).status == "active"  # upkeep keeps the status

    for slug in ("u03", "u05"):  # the operator fixes the data
        with closing(sqlite3.connect(tenant_db(engine, slug))) as db:
            db.execute("DELETE FROM users WHERE id = 2")
            db.commit()
    runs = FleetRuns(engine)
    runs.resume(fleet.id, requested_by="test")
    resumed = wait_for_fleet(runs, fleet.id, timeout=180)
    assert resumed.status == "succeeded", resumed.stop_reason
    assert resumed.resumes == 1
    assert {engine.catalog.get_tenant(s).schema_revision for s in slugs} == {
        "0003_unique_email"}
    again = engine.catalog.fleets.targets(fleet.id)
    assert {t.tenant_slug: t.attempt for t in again if t.attempt != 1} == {}
    with pytest.raises(FleetStateError, match="only a stopped or failed fleet run"):
        runs.resume(fleet.id)


def test_a_failing_canary_stops_the_fleet_before_any_other_tenant(
        make_engine: EngineFactory, tmp_path: Path) -> None:
    folder = migrations(tmp_path / "migrations", {"0001_users.sql": MIGRATIONS["0001_users.sql"]})
    engine = make_engine(migrations={"folder": folder}, fleet={"poll_seconds": 0.02})
    onboard_all(engine, ["ccc1", "ccc2", "ccc3"])
    migrations(folder, {"0002_broken.sql": "ALTER TABLE nowhere ADD COLUMN x INTEGER;"})

    fleet = run_fleet(engine, canary=1, no_failure_limit=True)

    assert fleet.status == "stopped"
    assert fleet.stop_reason is not None
    assert fleet.stop_reason.startswith("canary tenant ccc1 failed")
    assert "no such table: nowhere" in fleet.stop_reason
    assert fleet.counts.pending == 2
    assert engine.catalog.get_tenant("ccc2").schema_revision == "0001_users"


def test_the_percent_threshold_stops_the_fleet(make_engine: EngineFactory,
                                               tmp_path: Path) -> None:
    folder = migrations(tmp_path / "migrations", {"0001_users.sql": MIGRATIONS["0001_users.sql"]})
    engine = make_engine(migrations={"folder": folder}, fleet={"poll_seconds": 0.02})
    slugs = [f"ppp{n}" for n in range(6)]
    onboard_all(engine, slugs)
    for slug in ("ppp1", "ppp2"):
        with closing(sqlite3.connect(tenant_db(engine, slug))) as db:
            db.executemany("INSERT INTO users (email) VALUES (?)", [("a@x.test",)] * 2)
            db.commit()
    migrations(folder, {"0002_unique.sql": MIGRATIONS["0003_unique_email.sql"]})

    fleet = run_fleet(engine, canary=0, concurrency=1, max_failures=None,
                      no_failure_limit=True, max_failure_percent=20.0)

    assert fleet.status == "stopped"
    assert fleet.stop_reason is not None
    assert ("2 of 6 tenants failed (33.3 %), more than the 20 % allowed "
            "(max_failure_percent)") in fleet.stop_reason
    assert fleet.counts.as_dict()["pending"] == 3


def test_failures_within_the_threshold_finish_the_fleet_as_failed(
        make_engine: EngineFactory, tmp_path: Path) -> None:
    folder = migrations(tmp_path / "migrations", {"0001_users.sql": MIGRATIONS["0001_users.sql"]})
    engine = make_engine(migrations={"folder": folder}, fleet={"poll_seconds": 0.02})
    onboard_all(engine, ["fff1", "fff2", "fff3"])
    with closing(sqlite3.connect(tenant_db(engine, "fff2"))) as db:
        db.executemany("INSERT INTO users (email) VALUES (?)", [("a@x.test",)] * 2)
        db.commit()
    migrations(folder, {"0002_unique.sql": MIGRATIONS["0003_unique_email.sql"]})

    fleet = run_fleet(engine, canary=0, max_failures=1)

    assert fleet.status == "failed"
    assert (fleet.counts.succeeded, fleet.counts.failed) == (2, 1)
    assert fleet.finished_at is not None


def test_dry_run_lists_pending_revisions_per_tenant_and_changes_nothing(
        make_engine: EngineFactory, tmp_path: Path) -> None:
    folder = migrations(tmp_path / "migrations", {"0001_users.sql": MIGRATIONS["0001_users.sql"]})
    engine = make_engine(migrations={"folder": folder}, fleet={"poll_seconds": 0.02})
    onboard_all(engine, ["ddd1", "ddd2"])
    migrations(folder, {k: v for k, v in MIGRATIONS.items() if not k.startswith("0001")})
    with closing(sqlite3.connect(tenant_db(engine, "ddd2"))) as db:
        db.execute("CREATE TABLE orders (id INTEGER)")  # not yet there: 0002 would fail on d2
        db.commit()

    preview = FleetRuns(engine).preview(FleetRequest("migrate", Selection(all=True),
                                                     options={"revision": "0002_orders"}))

    assert preview.options["revision"] == "0002_orders"
    by_slug = {t.slug: t for t in preview.targets}
    assert by_slug["ddd1"].action == "run"
    assert by_slug["ddd1"].detail == {"revision": "0001_users", "pending": ["0002_orders"],
                                    "to": "0002_orders"}
    assert engine.catalog.get_tenant("ddd1").schema_revision == "0001_users"
    assert engine.catalog.fleets.page()[1] == 0


def test_a_bad_request_names_the_field_the_value_and_the_rule(
        make_engine: EngineFactory, tmp_path: Path) -> None:
    folder = migrations(tmp_path / "migrations", {"0001_users.sql": MIGRATIONS["0001_users.sql"]})
    engine = make_engine(migrations={"folder": folder})
    onboard_all(engine, ["bbb1"])
    runs = FleetRuns(engine)
    with pytest.raises(SpecError) as unknown:
        runs.create(FleetRequest("migrate", Selection(tenants=("bbb1", "ghost"))),
                    requested_by="test")
    assert unknown.value.problems[0].field == "tenants"
    assert unknown.value.problems[0].value == ["ghost"]
    with pytest.raises(SpecError) as both:
        runs.create(FleetRequest("migrate", Selection(all=True, plan="free")),
                    requested_by="test")
    assert "choose exactly one" in both.value.problems[0].rule
    with pytest.raises(SpecError) as limits:
        runs.create(FleetRequest("migrate", Selection(all=True), concurrency=0,
                                 max_failure_percent=150.0), requested_by="test")
    assert {p.field for p in limits.value.problems} == {"concurrency", "max_failure_percent"}
    with pytest.raises(SpecError) as operation:
        runs.create(FleetRequest("defrag", Selection(all=True)), requested_by="test")
    assert operation.value.problems[0].rule.startswith("must be one of migrate")
    with pytest.raises(MigrationError, match="revision 'nope'"):
        runs.create(FleetRequest("migrate", Selection(all=True), options={"revision": "nope"}),
                    requested_by="test")
    assert engine.catalog.fleets.page()[1] == 0


def test_cancel_stops_the_fleet_and_its_runs_in_flight(make_engine: EngineFactory,
                                                       tmp_path: Path) -> None:
    folder = migrations(tmp_path / "migrations", {"0001_users.sql": MIGRATIONS["0001_users.sql"]})
    engine = make_engine(migrations={"folder": folder}, fleet={"poll_seconds": 0.02})
    onboard_all(engine, ["xxx1", "xxx2", "xxx3"])
    migrations(folder, {"0002_orders.sql": MIGRATIONS["0002_orders.sql"]})
    engine.conductor.stop()  # type: ignore[union-attr]  # nothing starts: cancel while pending
    runs = FleetRuns(engine)
    fleet = runs.create(FleetRequest("migrate", Selection(all=True)), requested_by="test")
    cancelled = runs.cancel(fleet.id, requested_by="test")
    assert cancelled.status == "cancelled"
    assert cancelled.counts.cancelled == 3
    with pytest.raises(FleetStateError, match="there is nothing to cancel"):
        runs.cancel(fleet.id)
    with pytest.raises(FleetStateError, match="only a stopped or failed fleet run"):
        runs.resume(fleet.id)
    assert engine.catalog.get_tenant("xxx1").schema_revision == "0001_users"


def test_alembic_scripts_migrate_many_tenants_at_once_each_with_its_own_connection(
        make_engine: EngineFactory, tmp_path: Path) -> None:
    from tests.provisioning.providers.test_fleet_migrate_postgres import (
        ALEMBIC_0001,
        ALEMBIC_0002,
    )

    folder = tmp_path / "alembic"
    (folder / "versions").mkdir(parents=True)
    (folder / "versions" / "a0001_users.py").write_text(ALEMBIC_0001)
    engine = make_engine(migrations={"folder": folder}, fleet={"poll_seconds": 0.02})
    slugs = [f"alem{n}" for n in range(6)]
    onboard_all(engine, slugs)
    (folder / "versions" / "a0002_unique.py").write_text(ALEMBIC_0002)

    fleet = run_fleet(engine, canary=0, concurrency=6)

    assert fleet.status == "succeeded", fleet.stop_reason
    for slug in slugs:
        assert engine.catalog.get_tenant(slug).schema_revision == "a0002"
        with closing(sqlite3.connect(tenant_db(engine, slug))) as db:
            assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [
                ("a0002",)]
            assert db.execute("SELECT count(*) FROM sqlite_master WHERE name IN "
                              "('audit', 'users_email')").fetchone() == (2,)


def test_a_finished_child_run_starts_the_next_tenant_without_waiting_for_the_poll(
        make_engine: EngineFactory, tmp_path: Path) -> None:
    # A poll far longer than the test may take: only the conductor's wake-ups (the fleet
    # created here, each child run of this worker finishing) can move the fleet along.
    folder = migrations(tmp_path / "migrations")
    engine = make_engine(migrations={"folder": folder, "on_onboarding": False},
                         fleet={"poll_seconds": 60})
    slugs = ["w01", "w02", "w03", "w04"]
    onboard_all(engine, slugs)
    runs = FleetRuns(engine)
    fleet = runs.create(FleetRequest("migrate", Selection(tenants=tuple(slugs)), canary=1,
                                     concurrency=1), requested_by="test")
    done = wait_for_fleet(runs, fleet.id, timeout=55)
    assert done.status == "succeeded", done.stop_reason
    assert done.counts.succeeded == 4
