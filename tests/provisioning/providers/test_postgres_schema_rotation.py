"""Rotating the database credentials of schema-mode tenants (a schema of their own in a pooled
database) on the real PostgreSQL server, as database-mode tenants' are rotated
(tests/provisioning/providers/test_rotation.py): the application keeps querying throughout,
the previous login is disabled after the grace period and cannot sign in, the new one signs
in with the tenant's schema as its search path, acts as the schema's owner and reaches no
other tenant's schema; suspension and resumption act on the login in use; drift sees nothing
drifted; a fleet rotates a mix of both modes; offboarding leaves no role behind. And a move
of a rotated tenant (into a pooled schema) carries the login in use along."""

from __future__ import annotations

import json
import secrets as random
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import errors as pg_errors
from psycopg import sql

from tenantops.provisioning import Engine
from tenantops.provisioning.drift import DriftChecker
from tenantops.provisioning.fleet import FleetRequest, FleetRuns, Selection, wait_for_fleet
from tenantops.provisioning.placement import database_of
from tenantops.provisioning.providers.webhost.local_edge import LocalEdge
from tenantops.provisioning.run_requests import TenantChange

from ..conftest import fast_settings, spec_for
from ..tls import fetch
from .servers import postgres_url, unique_slug
from .test_rotation import App, can_login, rotate, rotation_error

pytestmark = pytest.mark.integration

Connection = psycopg.Connection[tuple[Any, ...]]


@pytest.fixture
def engine(tmp_path: Path, pooled: str) -> Iterator[Engine]:
    """Plan ``standard``: schema mode in ``pooled``; plan ``premium``: a database each."""
    settings = fast_settings(
        tmp_path / "data",
        providers={"database": {"name": "postgres", "move_grace_seconds": 0,
                                "postgres": {"admin_url": postgres_url(),
                                             "connection_limit": 5}}},
        plans={"standard": {"database": {"mode": "schema", "shared_database": pooled}},
               "premium": {}},
        rotation={"min_grace_seconds": 0.3, "max_grace_seconds": 60, "poll_seconds": 0.05},
        fleet={"poll_seconds": 0.02})
    started = Engine(settings)
    started.start()
    yield started
    started.stop()


def onboard(engine: Engine, slug: str, plan: str) -> None:
    run = engine.wait(engine.onboard(spec_for(slug, plan=plan), requested_by="t").id,
                      timeout=180)
    assert run.status == "succeeded", (run.failed_step, run.error)


def offboard(engine: Engine, *slugs: str) -> None:
    for slug in slugs:
        engine.wait(engine.offboard(slug, requested_by="t").id, timeout=180)


def sign_in(engine: Engine, database: str, login: str, secret: str) -> Connection:
    """A session as the tenant's app opens it: the login and its password, nothing else."""
    return psycopg.connect(psycopg.conninfo.make_conninfo(
        postgres_url(), dbname=database, user=login,
        password=engine.providers.secrets.read(secret)), autocommit=True)


def schema_of(engine: Engine, slug: str) -> str:
    placement = engine.catalog.placement_of(slug)
    assert placement is not None
    assert placement.schema is not None
    return placement.schema


def role_settings(login: str) -> list[str]:
    """Every per-database setting PostgreSQL keeps for ``login`` (its search path)."""
    with psycopg.connect(postgres_url(), autocommit=True) as admin:
        rows = admin.execute(
            "SELECT unnest(setconfig) FROM pg_db_role_setting s JOIN pg_roles r "
            "ON r.oid = s.setrole WHERE r.rolname = %s", (login,)).fetchall()
    return [str(r[0]) for r in rows]


def test_a_fleet_rotates_schema_and_database_mode_tenants_without_downtime(
        engine: Engine, pooled: str) -> None:
    first, second, own = unique_slug("srot"), unique_slug("srot"), unique_slug("drot")
    onboard(engine, first, "standard")
    onboard(engine, second, "standard")
    onboard(engine, own, "premium")
    owner = f"{first.replace('-', '_')}_app"
    schema = schema_of(engine, first)
    tenant = engine.catalog.get_tenant(first)
    assert tenant.database_name == pooled
    try:
        # The dry run lists both modes to run; a schema-mode tenant's with its schema.
        preview = FleetRuns(engine).preview(FleetRequest(
            "rotate-database-credentials", Selection(tenants=(first, own))))
        assert [(t.slug, t.action, t.detail.get("schema")) for t in preview.targets] == [
            (first, "run", schema), (own, "run", None)]
        assert preview.targets[0].detail["to_login"] == f"{owner}_b"
        with App(engine, first) as app:
            rotate(engine, first, second, own)
            assert app.reconnected.wait(30)
        # The app's connection (its login's search path: the tenant's schema) answered every
        # query through the rotation; it moved to the new login once the catalog named it.
        assert app.errors == []
        assert app.queries > 0
        assert app.logins == [owner, f"{owner}_b"]
        for slug in (first, second, own):
            login = f"{slug.replace('-', '_')}_app"
            tenant = engine.catalog.get_tenant(slug)
            assert (tenant.database_login, tenant.database_secret) == (
                f"{login}_b", f"{slug}-database-password-b")
            assert (can_login(login), can_login(f"{login}_b")) == (False, True)
        run = engine.catalog.latest_run(first, kind="rotate")
        assert run is not None
        assert run.steps[-1].outputs["disabled"] is True
        # After the grace period the old password no longer signs in.
        with pytest.raises(psycopg.OperationalError, match="not permitted to log in"):
            sign_in(engine, pooled, owner, f"{first}-database-password")
        # The new login signs in with the tenant's schema as its search path, acts as the
        # schema's owner, and what it makes belongs to the owner, in the tenant's schema.
        with sign_in(engine, pooled, f"{owner}_b", f"{first}-database-password-b") as db:
            assert db.execute("SELECT session_user, current_user, current_schema()"
                              ).fetchone() == (f"{owner}_b", owner, schema)
            db.execute("CREATE TABLE made_after_rotation (id int)")
            assert db.execute(
                "SELECT schemaname, tableowner FROM pg_tables WHERE tablename = "
                "'made_after_rotation'").fetchone() == (schema, owner)
            meta = {str(k): str(v) for k, v in db.execute(
                "SELECT key, value FROM tenantops_meta").fetchall()}
            assert meta["active_login"] == f"{owner}_b"
        # The connection URL (the placement's secret) names the new login and signs in.
        with psycopg.connect(engine.providers.secrets.read(f"{first}-database-url"),
                             autocommit=True) as via_url:
            assert via_url.execute("SELECT session_user, current_schema()").fetchone() == (
                f"{owner}_b", schema)
        # The tenant app's view of its metadata, and drift: nothing drifted.
        placement = engine.catalog.placement_of(first)
        recorded = database_of(first, placement)
        seen = engine.providers.database.observe(recorded)
        assert seen is not None
        assert (seen["active_login"], seen["login_enabled"], seen["schema"]) == (
            f"{owner}_b", True, schema)
        read = engine.providers.database.read_metadata(
            replace(recorded, login=f"{owner}_b", secret=f"{first}-database-password-b"))
        assert (read["database"], read["active_login"]) == (pooled, f"{owner}_b")
        # Code working in the tenant's data (`connect`) with the recorded (second) login
        # acts as the schema's owner too, in the tenant's schema.
        with engine.providers.database.connect(replace(
                recorded, login=f"{owner}_b", secret=f"{first}-database-password-b")) as db:
            db.execute("CREATE TABLE made_by_connect (id int)")
        with psycopg.connect(psycopg.conninfo.make_conninfo(postgres_url(), dbname=pooled),
                             autocommit=True) as admin:
            assert admin.execute("SELECT schemaname, tableowner FROM pg_tables WHERE "
                                 "tablename = 'made_by_connect'").fetchone() == (schema, owner)
        # The tenant's app (the sample app behind the local edge) reads its metadata with
        # the login in use: the owner cannot sign in any more.
        webhost = engine.providers.webhost
        assert isinstance(webhost, LocalEdge)
        assert webhost.edge is not None
        reply = fetch(webhost.edge.port, f"app.{first}.test", webhost.ca_pem(), "/tenant.json")
        assert reply.status == 200, reply.body
        assert json.loads(reply.body)["database"]["active_login"] == f"{owner}_b"
        report = DriftChecker.of(engine).check(first)
        database = next(r for r in report.resources if r.step == "create_database")
        assert (database.state, database.differences) == ("in_sync", ())
        assert [r for r in report.resources if r.state not in ("in_sync", "unchecked")] == []
        # A reconcile of the rotated tenant keeps the login in use and the schema's owner.
        reconcile = engine.wait(engine.reconcile_tenant(first, requested_by="t").id, timeout=180)
        assert reconcile.status == "succeeded", (reconcile.failed_step, reconcile.error)
        assert (can_login(owner), can_login(f"{owner}_b")) == (False, True)
        assert engine.catalog.get_tenant(first).database_login == f"{owner}_b"
        with psycopg.connect(psycopg.conninfo.make_conninfo(postgres_url(), dbname=pooled),
                             autocommit=True) as admin:
            assert admin.execute("SELECT nspowner::regrole::text FROM pg_namespace "
                                 "WHERE nspname = %s", (schema,)).fetchone() == (owner,)
        # Suspension disables the login in use and ends its sessions; resumption enables it.
        with sign_in(engine, pooled, f"{owner}_b", f"{first}-database-password-b") as open_one:
            suspend = engine.wait(engine.suspend(first, reason="test", requested_by="t").id,
                                  timeout=180)
            assert suspend.status == "succeeded", (suspend.failed_step, suspend.error)
            assert (can_login(owner), can_login(f"{owner}_b")) == (False, False)
            with pytest.raises(psycopg.OperationalError):
                open_one.execute("SELECT 1")
        with pytest.raises(psycopg.OperationalError, match="not permitted to log in"):
            sign_in(engine, pooled, f"{owner}_b", f"{first}-database-password-b")
        resume = engine.wait(engine.resume(first, requested_by="t").id, timeout=180)
        assert resume.status == "succeeded", (resume.failed_step, resume.error)
        assert (can_login(owner), can_login(f"{owner}_b")) == (False, True)
        with sign_in(engine, pooled, f"{owner}_b", f"{first}-database-password-b") as db:
            assert db.execute("SELECT count(*) FROM made_after_rotation").fetchone() == (0,)
        # The next rotation goes back to the first login, with a new password.
        with App(engine, first) as app:
            rotate(engine, first)
            assert app.reconnected.wait(30)
        assert app.errors == []
        assert engine.catalog.get_tenant(first).database_login == owner
        assert (can_login(owner), can_login(f"{owner}_b")) == (True, False)
        with sign_in(engine, pooled, owner, f"{first}-database-password") as db:
            assert db.execute("SELECT current_schema()").fetchone() == (schema,)
    finally:
        offboard(engine, first, second, own)
    # Offboarding drops both logins of each tenant, and their settings with them.
    for slug in (first, second, own):
        login = f"{slug.replace('-', '_')}_app"
        assert (can_login(login), can_login(f"{login}_b")) == (None, None)
        assert role_settings(f"{login}_b") == []
    with psycopg.connect(psycopg.conninfo.make_conninfo(postgres_url(), dbname=pooled),
                         autocommit=True) as admin:
        assert admin.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s",
                             (schema,)).fetchone() is None


def test_a_session_on_the_old_schema_login_keeps_working_until_the_grace_ends(
        engine: Engine, pooled: str) -> None:
    """A connection opened before the rotation, used in a loop throughout, keeps working
    (it holds the retirement); once it ends the old login is disabled and cannot sign in."""
    slug = unique_slug("srot")
    onboard(engine, slug, "standard")
    owner = f"{slug.replace('-', '_')}_app"
    schema = schema_of(engine, slug)
    try:
        lingering = sign_in(engine, pooled, owner, f"{slug}-database-password")
        with lingering:
            runs = FleetRuns(engine)
            fleet = runs.create(FleetRequest("rotate-database-credentials",
                                             Selection(tenants=(slug,))), requested_by="test")
            held = False
            for _ in range(3000):
                # The old session, used in a loop: it answers, in the tenant's schema.
                row = lingering.execute("SELECT current_schema(), count(*) FROM "
                                        "tenantops_meta").fetchone()
                assert row is not None
                assert row[0] == schema
                run = engine.catalog.latest_run(slug, kind="rotate")
                step = run.steps[-1] if run else None
                if step is not None and step.status == "waiting" and "sessions still use" in (
                        step.message or ""):
                    held = True
                    break
                lingering.execute("SELECT pg_sleep(0.01)")
            assert held, "the retirement never waited for the open session"
            assert can_login(owner) is True
            assert lingering.execute("SELECT current_user").fetchone() == (owner,)
            # Until the grace ends the old password still signs in (a consumer that has not
            # read the new secret yet), in the tenant's schema.
            with sign_in(engine, pooled, owner, f"{slug}-database-password") as late:
                assert late.execute("SELECT current_schema()").fetchone() == (schema,)
        done = wait_for_fleet(runs, fleet.id, timeout=120)
        assert done.status == "succeeded"
        assert can_login(owner) is False
        with pytest.raises(psycopg.OperationalError, match="not permitted to log in"):
            sign_in(engine, pooled, owner, f"{slug}-database-password")
        with sign_in(engine, pooled, f"{owner}_b", f"{slug}-database-password-b") as db:
            assert db.execute("SELECT current_user, current_schema()").fetchone() == (
                owner, schema)
    finally:
        offboard(engine, slug)


def test_rotated_login_reading_another_tenants_schema_is_refused(
        engine: Engine, pooled: str) -> None:
    """The second login is a member of its own tenant's owner only: another tenant's schema
    in the same pooled database stays out of its reach, however it asks."""
    mine, theirs = unique_slug("srot"), unique_slug("srot")
    onboard(engine, mine, "standard")
    onboard(engine, theirs, "standard")
    owner = f"{mine.replace('-', '_')}_app"
    their_schema = schema_of(engine, theirs)
    try:
        rotate(engine, mine, theirs)
        with sign_in(engine, pooled, f"{owner}_b", f"{mine}-database-password-b") as db:
            with pytest.raises(pg_errors.InsufficientPrivilege,
                               match=f"permission denied for schema {their_schema}"):
                db.execute(sql.SQL("SELECT * FROM {}").format(
                    sql.Identifier(their_schema, "tenantops_meta")))
            with pytest.raises(pg_errors.InsufficientPrivilege):
                db.execute(sql.SQL("CREATE TABLE {} (id int)").format(
                    sql.Identifier(their_schema, "planted")))
            # Their schema first on the search path finds nothing of theirs.
            db.execute(sql.SQL("SET search_path = {}").format(sql.Identifier(their_schema)))
            with pytest.raises(pg_errors.UndefinedTable):
                db.execute("SELECT * FROM tenantops_meta")
    finally:
        offboard(engine, mine, theirs)


def test_rotated_login_taking_another_tenants_role_is_refused(
        engine: Engine, pooled: str) -> None:
    mine, theirs = unique_slug("srot"), unique_slug("srot")
    onboard(engine, mine, "standard")
    onboard(engine, theirs, "standard")
    owner = f"{mine.replace('-', '_')}_app"
    their_owner = f"{theirs.replace('-', '_')}_app"
    try:
        rotate(engine, mine, theirs)
        with sign_in(engine, pooled, f"{owner}_b", f"{mine}-database-password-b") as db:
            for role in (their_owner, f"{their_owner}_b"):
                with pytest.raises(pg_errors.InsufficientPrivilege,
                                   match=f'permission denied to set role "{role}"'):
                    db.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
            # Its own owner, yes (that is what it signs in as).
            db.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(owner)))
            with pytest.raises(pg_errors.InsufficientPrivilege):
                db.execute(sql.SQL("SET SESSION AUTHORIZATION {}").format(
                    sql.Identifier(their_owner)))
    finally:
        offboard(engine, mine, theirs)


def test_a_rotated_database_tenant_moves_into_a_pooled_schema_with_its_login_in_use(
        engine: Engine, pooled: str) -> None:
    """A move after a rotation: the copy keeps the login the app uses (the second one),
    whose password signs in to the tenant's schema in the pooled database; the next rotation
    goes on from there."""
    slug = unique_slug("mrot")
    onboard(engine, slug, "premium")
    ident = slug.replace("-", "_")
    owner, database = f"{ident}_app", f"tenant_{ident}"
    try:
        rotate(engine, slug)
        assert engine.catalog.get_tenant(slug).database_login == f"{owner}_b"
        with sign_in(engine, database, f"{owner}_b", f"{slug}-database-password-b") as db:
            db.execute("CREATE TABLE orders (id bigserial PRIMARY KEY, item text)")
            db.execute("INSERT INTO orders (item) SELECT 'item ' || n "
                       "FROM generate_series(1, 50) n")
        update = engine.update(slug, TenantChange(plan="standard"), requested_by="ops")
        assert update is not None
        moved = engine.wait(update.id, timeout=300)
        assert moved.status == "succeeded", (moved.failed_step, moved.error)
        placement = engine.catalog.placement_of(slug)
        assert placement is not None
        assert (placement.mode, placement.database, placement.schema) == (
            "schema", pooled, database)
        tenant = engine.catalog.get_tenant(slug)
        assert (tenant.database_login, tenant.database_secret) == (
            f"{owner}_b", f"{slug}-database-password-b")
        assert (can_login(owner), can_login(f"{owner}_b")) == (False, True)
        with psycopg.connect(engine.providers.secrets.read(f"{slug}-database-url"),
                             autocommit=True) as db:
            assert db.execute("SELECT session_user, current_user, current_schema()"
                              ).fetchone() == (f"{owner}_b", owner, database)
            assert db.execute("SELECT count(*) FROM orders").fetchone() == (50,)
        rotate(engine, slug)
        assert engine.catalog.get_tenant(slug).database_login == owner
        assert (can_login(owner), can_login(f"{owner}_b")) == (True, False)
        with sign_in(engine, pooled, owner, f"{slug}-database-password") as db:
            assert db.execute("SELECT count(*) FROM orders").fetchone() == (50,)
    finally:
        offboard(engine, slug)
    assert (can_login(owner), can_login(f"{owner}_b")) == (None, None)


def squat(name: str, *, member_of: str | None = None, granted_to: str | None = None) -> None:
    """A role made behind tenantops' back with the name a rotation will give the second
    login, tied to another role."""
    with psycopg.connect(postgres_url(), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
        if member_of is not None:
            admin.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(member_of),
                                                           sql.Identifier(name)))
        if granted_to is not None:
            admin.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(granted_to)))
            admin.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(name),
                                                           sql.Identifier(granted_to)))


def drop_roles(*names: str) -> None:
    with psycopg.connect(postgres_url(), autocommit=True) as admin:
        for name in names:
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def test_a_role_squatting_the_second_login_with_another_tenants_rights_is_refused(
        engine: Engine, pooled: str) -> None:
    """A role named as the rotation's second login, but made beforehand a member of another
    tenant's owner: handing it to the tenant would give its app the other tenant's schema."""
    mine, theirs = unique_slug("srot"), unique_slug("srot")
    onboard(engine, mine, "standard")
    onboard(engine, theirs, "standard")
    owner = f"{mine.replace('-', '_')}_app"
    their_owner = f"{theirs.replace('-', '_')}_app"
    squat(f"{owner}_b", member_of=their_owner)
    try:
        error = rotation_error(engine, mine)
        assert (f"role '{owner}_b' already exists and is tied to other roles (member of "
                f"{their_owner}); tenantops will not hand such a role to a tenant") in error
        assert engine.catalog.get_tenant(mine).database_login == owner
        assert can_login(owner) is True
    finally:
        offboard(engine, mine, theirs)
        drop_roles(f"{owner}_b")


def test_a_role_squatting_the_second_login_with_a_member_of_its_own_is_refused(
        engine: Engine, pooled: str) -> None:
    """A role named as the second login, with a role of someone else's made a member of it:
    that role would get the tenant's schema once the second login is the owner's member."""
    slug = unique_slug("srot")
    onboard(engine, slug, "standard")
    owner = f"{slug.replace('-', '_')}_app"
    spy = f"spy_{random.token_hex(4)}"
    squat(f"{owner}_b", granted_to=spy)
    try:
        error = rotation_error(engine, slug)
        assert f"tied to other roles (granted to {spy})" in error
        assert engine.catalog.get_tenant(slug).database_login == owner
        with psycopg.connect(postgres_url(), autocommit=True) as admin:
            assert admin.execute("SELECT pg_has_role(%s, %s, 'MEMBER')",
                                 (spy, owner)).fetchone() == (False,)
    finally:
        offboard(engine, slug)
        drop_roles(spy, f"{owner}_b")
