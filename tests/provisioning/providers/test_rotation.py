"""Rotating tenants' database credentials on the real PostgreSQL server, as a fleet run:
an application keeps querying throughout (it picks up the new login and secret from the
catalog and reconnects, make-before-break), the previous login is disabled only once its
last session ended, the next rotation goes back to the first login, suspension and
resumption act on the login in use, and offboarding drops both logins."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tenantops.errors import SpecError
from tenantops.provisioning import Engine
from tenantops.provisioning.fleet import FleetRequest, FleetRuns, Selection, wait_for_fleet
from tests.provisioning.conftest import fast_settings, spec_for

from .servers import postgres_url, unique_slug

pytestmark = pytest.mark.integration


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    settings = fast_settings(
        tmp_path / "data",
        providers={"database": {"name": "postgres",
                                "postgres": {"admin_url": postgres_url(),
                                             "connection_limit": 5}}},
        rotation={"min_grace_seconds": 0.3, "max_grace_seconds": 60, "poll_seconds": 0.05},
        fleet={"poll_seconds": 0.02})
    started = Engine(settings)
    started.start()
    yield started
    started.stop()


def can_login(login: str) -> bool | None:
    with psycopg.connect(postgres_url(), autocommit=True) as admin:
        row = admin.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s",
                            (login,)).fetchone()
    return None if row is None else bool(row[0])


class App:
    """The tenant's application: one connection, queried in a loop; when the catalog names
    another login (or secret), it connects with the new one first, then closes the old."""

    def __init__(self, engine: Engine, slug: str) -> None:
        self.engine, self.slug = engine, slug
        self.queries = 0
        self.errors: list[str] = []
        self.logins: list[str] = []
        self.stop = threading.Event()
        self.reconnected = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _connect(self) -> tuple[psycopg.Connection[tuple[Any, ...]], tuple[str, str]]:
        tenant = self.engine.catalog.get_tenant(self.slug)
        assert tenant.database_login
        assert tenant.database_secret
        assert tenant.database_name
        password = self.engine.providers.secrets.read(tenant.database_secret)
        conninfo = psycopg.conninfo.make_conninfo(
            postgres_url(), dbname=tenant.database_name, user=tenant.database_login,
            password=password)
        self.logins.append(tenant.database_login)
        return (psycopg.connect(conninfo, autocommit=True),
                (tenant.database_login, tenant.database_secret))

    def _run(self) -> None:
        connection, using = self._connect()
        try:
            while not self.stop.is_set():
                tenant = self.engine.catalog.get_tenant(self.slug)
                if (tenant.database_login, tenant.database_secret) != using:
                    fresh, using = self._connect()
                    connection.close()
                    connection = fresh
                    self.reconnected.set()
                try:
                    connection.execute("SELECT count(*) FROM tenantops_meta").fetchone()
                    self.queries += 1
                except psycopg.Error as exc:
                    self.errors.append(str(exc))
                    connection.close()
                    connection, using = self._connect()
                self.stop.wait(0.01)
        finally:
            connection.close()

    def __enter__(self) -> App:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self._thread.join(timeout=30)


def rotate(engine: Engine, *slugs: str) -> None:
    runs = FleetRuns(engine)
    fleet = runs.create(FleetRequest("rotate-database-credentials",
                                     Selection(tenants=slugs), canary=1),
                        requested_by="test")
    done = wait_for_fleet(runs, fleet.id, timeout=180)
    assert done.status == "succeeded", (done.stop_reason,
                                        engine.catalog.fleets.targets(fleet.id))
    # Every tenant rotated: none skipped (a skipped target leaves the fleet succeeded).
    assert done.counts.succeeded == len(slugs), engine.catalog.fleets.targets(fleet.id)


def rotation_error(engine: Engine, slug: str) -> str:
    """The error of a rotation of ``slug`` that fails (the fleet stops at it)."""
    runs = FleetRuns(engine)
    fleet = runs.create(FleetRequest("rotate-database-credentials",
                                     Selection(tenants=(slug,)), canary=0),
                        requested_by="test")
    done = wait_for_fleet(runs, fleet.id, timeout=120)
    assert done.status == "stopped"
    failed = engine.catalog.fleets.targets(fleet.id, status="failed")
    assert failed[0].error is not None
    return failed[0].error


def test_rotation_keeps_the_application_working_and_retires_the_old_login_after(
        engine: Engine) -> None:
    first, second = unique_slug("rot"), unique_slug("rot")
    for slug in (first, second):
        assert engine.wait(engine.onboard(spec_for(slug), requested_by="t").id,
                           timeout=120).status == "succeeded"
    owner = f"{first}_app"
    before = engine.providers.secrets.read(f"{first}-database-password")
    try:
        with App(engine, first) as app:
            rotate(engine, first, second)
            assert app.reconnected.wait(30)
        assert app.errors == []
        assert app.queries > 0
        assert app.logins == [owner, f"{owner}_b"]
        tenant = engine.catalog.get_tenant(first)
        assert (tenant.database_login, tenant.database_secret) == (
            f"{owner}_b", f"{first}-database-password-b")
        assert (can_login(owner), can_login(f"{owner}_b")) == (False, True)
        assert engine.providers.secrets.read(f"{first}-database-password") == before
        run = engine.catalog.latest_run(first, kind="rotate")
        assert run is not None
        assert [s.name for s in run.steps] == ["store_new_database_secret",
                                               "switch_database_login",
                                               "switch_connection_secret",
                                               "retire_previous_login"]
        assert run.steps[-1].outputs["disabled"] is True
        # The tenant app's connection URL (placement's secret) names the new login and signs
        # in, now that the previous login is disabled.
        with psycopg.connect(engine.providers.secrets.read(f"{first}-database-url"),
                             autocommit=True) as via_url:
            assert via_url.execute("SELECT session_user").fetchone() == (f"{owner}_b",)
        # What the new login makes belongs to the database's owner (it acts as it).
        with psycopg.connect(psycopg.conninfo.make_conninfo(
                postgres_url(), dbname=tenant.database_name, user=f"{owner}_b",
                password=engine.providers.secrets.read(f"{first}-database-password-b")),
                autocommit=True) as db:
            db.execute("CREATE TABLE made_after_rotation (id int)")
            row = db.execute("SELECT tableowner FROM pg_tables WHERE tablename = "
                             "'made_after_rotation'").fetchone()
            assert row == (owner,)
        # Suspension and resumption act on the login in use.
        assert engine.wait(engine.suspend(first, reason="test", requested_by="t").id,
                           timeout=120).status == "succeeded"
        assert (can_login(owner), can_login(f"{owner}_b")) == (False, False)
        assert engine.wait(engine.resume(first, requested_by="t").id,
                           timeout=120).status == "succeeded"
        assert (can_login(owner), can_login(f"{owner}_b")) == (False, True)
        # The next rotation goes back to the first login, with a new password.
        with App(engine, first) as app:
            rotate(engine, first)
            assert app.reconnected.wait(30)
        assert app.errors == []
        assert engine.catalog.get_tenant(first).database_login == owner
        assert engine.providers.secrets.read(f"{first}-database-password") != before
        assert (can_login(owner), can_login(f"{owner}_b")) == (True, False)
    finally:
        for slug in (first, second):
            engine.wait(engine.offboard(slug, requested_by="t").id, timeout=120)
    assert (can_login(owner), can_login(f"{owner}_b")) == (None, None)


def test_a_session_on_the_old_login_holds_its_retirement_until_it_ends(
        engine: Engine) -> None:
    slug = unique_slug("rot")
    assert engine.wait(engine.onboard(spec_for(slug), requested_by="t").id,
                       timeout=120).status == "succeeded"
    owner = f"{slug}_app"
    tenant = engine.catalog.get_tenant(slug)
    try:
        lingering = psycopg.connect(psycopg.conninfo.make_conninfo(
            postgres_url(), dbname=tenant.database_name, user=owner,
            password=engine.providers.secrets.read(f"{slug}-database-password")),
            autocommit=True)
        with lingering:
            runs = FleetRuns(engine)
            fleet = runs.create(FleetRequest("rotate-database-credentials",
                                             Selection(tenants=(slug,))), requested_by="test")
            run_id = None
            for _ in range(2000):
                run = engine.catalog.latest_run(slug, kind="rotate")
                step = run.steps[-1] if run else None
                if step is not None and step.status == "waiting" and "sessions still use" in (
                        step.message or ""):
                    run_id = run.id if run else None
                    break
                threading.Event().wait(0.02)
            assert run_id is not None, "the retirement never waited for the open session"
            assert can_login(owner) is True
            lingering.execute("SELECT 1")  # the old session keeps working meanwhile
        done = wait_for_fleet(runs, fleet.id, timeout=120)
        assert done.status == "succeeded"
        assert can_login(owner) is False
    finally:
        engine.wait(engine.offboard(slug, requested_by="t").id, timeout=120)


def test_rotation_is_refused_on_a_provider_without_two_logins(tmp_path: Path) -> None:
    engine = Engine(fast_settings(tmp_path / "data"))
    with pytest.raises(SpecError) as refused:
        FleetRuns(engine).create(FleetRequest("rotate-database-credentials",
                                              Selection(all=True)), requested_by="test")
    assert refused.value.problems[0].field == "operation"
    assert "sqlite cannot rotate credentials" in refused.value.problems[0].rule


def test_a_superuser_role_squatting_the_second_login_is_refused(
        engine: Engine) -> None:
    slug = unique_slug("rot")
    assert engine.wait(engine.onboard(spec_for(slug), requested_by="t").id,
                       timeout=120).status == "succeeded"
    squatter = f"{slug}_app_b"
    with psycopg.connect(postgres_url(), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} SUPERUSER").format(sql.Identifier(squatter)))
    try:
        assert "superuser, replication or bypassrls" in rotation_error(engine, slug)
        assert engine.catalog.get_tenant(slug).database_login == f"{slug}_app"
        assert can_login(f"{slug}_app") is True
    finally:
        with psycopg.connect(postgres_url(), autocommit=True) as admin:
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(squatter)))
        engine.wait(engine.offboard(slug, requested_by="t").id, timeout=120)


def test_a_consumer_that_never_reconnects_cannot_keep_the_old_password_alive(
        tmp_path: Path) -> None:
    settings = fast_settings(
        tmp_path / "data",
        providers={"database": {"name": "postgres",
                                "postgres": {"admin_url": postgres_url(),
                                             "connection_limit": 5}}},
        rotation={"min_grace_seconds": 0.1, "max_grace_seconds": 1.0, "poll_seconds": 0.1},
        fleet={"poll_seconds": 0.02})
    engine = Engine(settings)
    engine.start()
    slug = unique_slug("rot")
    try:
        assert engine.wait(engine.onboard(spec_for(slug), requested_by="t").id,
                           timeout=120).status == "succeeded"
        tenant = engine.catalog.get_tenant(slug)
        stale = psycopg.connect(psycopg.conninfo.make_conninfo(
            postgres_url(), dbname=tenant.database_name, user=f"{slug}_app",
            password=engine.providers.secrets.read(f"{slug}-database-password")),
            autocommit=True)
        with stale:
            rotate(engine, slug)  # finishes although the stale session never ended
            assert can_login(f"{slug}_app") is False
            with pytest.raises(psycopg.OperationalError):
                stale.execute("SELECT 1")  # its session was ended at max_grace_seconds
        run = engine.catalog.latest_run(slug, kind="rotate")
        assert run is not None
        assert run.steps[-1].outputs["sessions_ended"] == 1
    finally:
        engine.wait(engine.offboard(slug, requested_by="t").id, timeout=120)
        engine.stop()


def test_observing_a_rotated_tenant_s_database_reports_the_login_in_use(
        engine: Engine) -> None:
    from tenantops.provisioning.providers.database import Database

    slug = unique_slug("rot")
    assert engine.wait(engine.onboard(spec_for(slug), requested_by="t").id,
                       timeout=120).status == "succeeded"
    try:
        rotate(engine, slug)
        tenant = engine.catalog.get_tenant(slug)
        assert tenant.database_name
        seen = engine.providers.database.observe(Database(
            tenant.database_name, f"{slug}_app", f"{slug}-database-password"))
        assert seen is not None
        assert (seen["active_login"], seen["login_enabled"]) == (f"{slug}_app_b", True)
        assert can_login(f"{slug}_app") is False  # the owner is disabled, yet nothing drifted
        from tenantops.provisioning.drift import DriftChecker

        report = DriftChecker.of(engine).check(slug)
        database = next(r for r in report.resources if r.step == "create_database")
        assert (database.state, database.differences) == ("in_sync", ())
        with psycopg.connect(postgres_url(), autocommit=True) as admin:
            owner = admin.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE "
                                  "datname = %s", (tenant.database_name,)).fetchone()
        assert owner == (f"{slug}_app",)  # ensure by the recorded (second) login kept it
    finally:
        engine.wait(engine.offboard(slug, requested_by="t").id, timeout=120)
