"""Moves between two real PostgreSQL servers: the one scripts/services/postgres.sh started
(``main``) and a second cluster this module starts in its own temporary folder (``second``).
A tenant with data is moved to the other server (pg_dump | pg_restore), then by a plan
change into a schema of a pooled database, then offboarded; each time the data is checked on
the server it landed on, the tenant's login signs in there, and the old copy is gone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tenantops.provisioning import Engine
from tenantops.provisioning.placement import database_of
from tenantops.provisioning.providers.database.postgres import PostgresDatabases
from tenantops.provisioning.run_requests import TenantChange

from ..conftest import fast_settings, spec_for
from ..faults import PostgresCluster, postgres_cluster
from .servers import postgres_url, unique_slug

pytestmark = pytest.mark.integration

Connection = psycopg.Connection[tuple[Any, ...]]


@pytest.fixture(scope="module")
def second() -> Iterator[PostgresCluster]:
    with postgres_cluster() as cluster:
        yield cluster


@pytest.fixture
def engine(tmp_path: Path, second: PostgresCluster, pooled: str) -> Iterator[Engine]:
    settings = fast_settings(
        tmp_path / "data",
        providers={"database": {"name": "postgres", "move_grace_seconds": 0, "servers": [
            {"name": "main", "admin_url": postgres_url()},
            {"name": "second", "admin_url": second.url()}]}},
        plans={"standard": {},
               "pooled": {"database": {"mode": "schema", "shared_database": pooled}}},
        rotation={"min_grace_seconds": 0.2, "max_grace_seconds": 60, "poll_seconds": 0.05},
        fleet={"poll_seconds": 0.02})
    engine = Engine(settings)
    engine.start()
    yield engine
    engine.stop()


def connect(url: str, database: str) -> Connection:
    return psycopg.connect(psycopg.conninfo.make_conninfo(url, dbname=database),
                           autocommit=True)


def provider_of(engine: Engine) -> PostgresDatabases:
    provider = engine.providers.database
    assert isinstance(provider, PostgresDatabases)
    return provider


def write_orders(engine: Engine, slug: str, count: int) -> None:
    """What the tenant's app writes, as its own login: a table with rows, and a sequence."""
    placement = engine.catalog.placement_of(slug)
    with provider_of(engine).connect(database_of(slug, placement)) as db:
        db.execute("CREATE TABLE orders (id bigserial PRIMARY KEY, item text NOT NULL, "
                   "placed_at timestamptz NOT NULL DEFAULT now())")
        db.execute("INSERT INTO orders (item) SELECT 'item ' || n FROM generate_series(1, %s) n",
                   (count,))


def exists(url: str, query: str, *args: object) -> bool:
    with connect(url, "postgres") as admin:
        return admin.execute(query, args).fetchone() is not None


def succeeded(engine: Engine, run_id: str) -> list[str]:
    run = engine.wait(run_id, timeout=300)
    assert run.status == "succeeded", (run.failed_step, run.error)
    return [s.name for s in run.steps]


def test_a_tenant_with_data_moves_between_servers_and_into_a_pooled_schema(
        engine: Engine, second: PostgresCluster) -> None:
    slug = unique_slug("mv")
    ident = slug.replace("-", "_")
    login, database = f"{ident}_app", f"tenant_{ident}"
    run = engine.onboard(spec_for(slug), requested_by="ops")
    assert "place_database" in succeeded(engine, run.id)
    first = engine.catalog.placement_of(slug)
    assert first is not None
    assert first.server == "main"  # both empty: the name breaks the tie
    write_orders(engine, slug, 5000)

    # 1. To the second server, by name.
    move = engine.move(slug, server="second", grace_seconds=0, requested_by="ops")
    steps = succeeded(engine, move.id)
    assert steps[:6] == ["place_target", "create_target", "freeze_writes", "copy_data",
                         "check_copy", "open_target"]
    check = engine.catalog.get_run(move.id).steps[steps.index("check_copy")]
    assert check.outputs == {"tables": 2, "rows": 5002}  # orders + tenantops_meta (2)
    placed = engine.catalog.placement_of(slug)
    assert placed is not None
    assert (placed.server, placed.database, placed.schema) == ("second", database, None)
    assert [p.state for p in engine.catalog.placements_of(slug)] == ["current"]
    with connect(second.url(), database) as db:
        assert db.execute("SELECT count(*), max(id) FROM orders").fetchone() == (5000, 5000)
        assert db.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'orders'"
                          ).fetchone() == (login,)
        # The sequence came along: the next order gets the next number.
        assert db.execute("SELECT nextval('orders_id_seq')").fetchone() == (5001,)
    assert provider_of(engine).read_metadata(database_of(slug, placed))["database"] == database
    assert not exists(postgres_url(), "SELECT 1 FROM pg_database WHERE datname = %s", database)
    assert not exists(postgres_url(), "SELECT 1 FROM pg_roles WHERE rolname = %s", login)
    url = engine.providers.secrets.read(f"{slug}-database-url")
    assert url.startswith(f"postgresql://{login}:")
    assert url.endswith(
        f"@127.0.0.1:{second.port}/{database}")

    # 2. A plan whose mode is schema: the update moves the data into the pooled database of
    # the least-loaded server (main holds nothing now).
    update = engine.update(slug, TenantChange(plan="pooled"), requested_by="ops")
    assert update is not None
    steps = succeeded(engine, update.id)
    assert "copy_data" in steps
    assert "wait_for_copy_grace_period" in steps
    pooled = engine.catalog.placement_of(slug)
    assert pooled is not None
    assert (pooled.server, pooled.mode, pooled.schema) == ("main", "schema", database)
    with connect(postgres_url(), pooled.database) as db:
        assert db.execute(sql.SQL("SELECT count(*) FROM {}").format(
            sql.Identifier(database, "orders"))).fetchone() == (5000,)
        assert db.execute("SELECT nspowner::regrole::text FROM pg_namespace "
                          "WHERE nspname = %s", (database,)).fetchone() == (login,)
    # The login reads its own schema (its search_path there): the metadata came along.
    assert provider_of(engine).read_metadata(database_of(slug, pooled))["database"] == database
    assert [(p.state, p.server) for p in engine.catalog.placements_of(slug)] == [
        ("current", "main")]
    assert not exists(second.url(), "SELECT 1 FROM pg_database WHERE datname = %s", database)
    assert not exists(second.url(), "SELECT 1 FROM pg_roles WHERE rolname = %s", login)

    # 3. Offboarding drops the schema and the login, and forgets the placement.
    offboard = engine.offboard(slug, requested_by="ops")
    assert "forget_placement" in succeeded(engine, offboard.id)
    assert engine.catalog.placements_of(slug) == []
    with connect(postgres_url(), pooled.database) as db:
        assert db.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s",
                          (database,)).fetchone() is None
    assert not exists(postgres_url(), "SELECT 1 FROM pg_roles WHERE rolname = %s", login)


def test_a_move_that_fails_during_its_freeze_leaves_the_tenant_served_from_the_old_copy(
        tmp_path: Path, second: PostgresCluster) -> None:
    from tests.provisioning.test_lifecycle import FailStep

    failing = FailStep("copy_data")
    settings = fast_settings(
        tmp_path / "data",
        providers={"database": {"name": "postgres", "move_grace_seconds": 0, "servers": [
            {"name": "main", "admin_url": postgres_url()},
            {"name": "second", "admin_url": second.url()}]}})
    engine = Engine(settings, middleware=[failing])
    engine.start()
    slug = unique_slug("mvf")
    login = f"{slug.replace('-', '_')}_app"
    try:
        succeeded(engine, engine.onboard(spec_for(slug), requested_by="ops").id)
        write_orders(engine, slug, 100)
        run = engine.wait(engine.move(slug, server="second", requested_by="ops").id,
                          timeout=300)
        assert (run.status, run.failed_step) == ("failed", "copy_data")
        # The freeze ended: the login signs in to the old copy, which the app goes on using.
        assert exists(postgres_url(), "SELECT 1 FROM pg_roles WHERE rolname = %s AND "
                      "rolcanlogin", login)
        placement = engine.catalog.placement_of(slug)
        assert placement is not None
        with provider_of(engine).connect(database_of(slug, placement)) as db:
            db.execute("INSERT INTO orders (item) VALUES ('after the failure')")

        failing.fix()
        engine.wait(engine.retry(run.id).id, timeout=300)
        moved = engine.catalog.placement_of(slug)
        assert moved is not None
        assert moved.server == "second"
        with connect(second.url(), f"tenant_{slug.replace('-', '_')}") as db:
            assert db.execute("SELECT count(*) FROM orders").fetchone() == (101,)
    finally:
        engine.wait(engine.offboard(slug, requested_by="ops").id, timeout=300)
        engine.stop()


def can_login(url: str, login: str) -> bool | None:
    with connect(url, "postgres") as admin:
        row = admin.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s",
                            (login,)).fetchone()
    return None if row is None else bool(row[0])


def test_a_rotated_tenant_moves_between_servers_and_modes_with_its_login_in_use(
        engine: Engine, second: PostgresCluster) -> None:
    """After a credential rotation the app signs in as the second login: each move carries it
    along (the copy's tenantops_meta names it, so the target makes it, acting as the owner),
    the URL secret names it, the old server keeps neither login, and a rotation on the
    target goes on from there."""
    from .test_rotation import rotate

    slug = unique_slug("mvr")
    ident = slug.replace("-", "_")
    owner, second_login, database = f"{ident}_app", f"{ident}_app_b", f"tenant_{ident}"
    succeeded(engine, engine.onboard(spec_for(slug), requested_by="ops").id)
    placement = engine.catalog.placement_of(slug)
    assert placement is not None
    assert placement.server == "main"
    write_orders(engine, slug, 100)
    rotate(engine, slug)
    assert engine.catalog.get_tenant(slug).database_login == second_login

    # 1. To the second server: the second login is made there, signs in, acts as the owner.
    succeeded(engine, engine.move(slug, server="second", grace_seconds=0,
                                  requested_by="ops").id)
    tenant = engine.catalog.get_tenant(slug)
    assert (tenant.database_login, tenant.database_secret) == (
        second_login, f"{slug}-database-password-b")
    assert (can_login(second.url(), owner), can_login(second.url(), second_login)) == (
        False, True)
    assert (can_login(postgres_url(), owner), can_login(postgres_url(), second_login)) == (
        None, None)
    url = engine.providers.secrets.read(f"{slug}-database-url")
    assert url.startswith(f"postgresql://{second_login}:")
    with psycopg.connect(url, autocommit=True) as db:
        assert db.execute("SELECT session_user, current_user, count(*) FROM orders GROUP BY 1, 2"
                          ).fetchone() == (second_login, owner, 100)

    # 2. A plan in schema mode: into the pooled database on main, the second login with it.
    update = engine.update(slug, TenantChange(plan="pooled"), requested_by="ops")
    assert update is not None
    succeeded(engine, update.id)
    pooled = engine.catalog.placement_of(slug)
    assert pooled is not None
    assert (pooled.server, pooled.mode, pooled.schema) == ("main", "schema", database)
    assert engine.catalog.get_tenant(slug).database_login == second_login
    assert (can_login(postgres_url(), owner), can_login(postgres_url(), second_login)) == (
        False, True)
    assert (can_login(second.url(), owner), can_login(second.url(), second_login)) == (
        None, None)
    url = engine.providers.secrets.read(f"{slug}-database-url")
    with psycopg.connect(url, autocommit=True) as db:
        assert db.execute("SELECT session_user, current_user, current_schema()").fetchone() == (
            second_login, owner, database)
        assert db.execute("SELECT count(*) FROM orders").fetchone() == (100,)

    # 3. A rotation in the pooled schema goes back to the owner, the next to the second.
    rotate(engine, slug)
    assert engine.catalog.get_tenant(slug).database_login == owner
    assert (can_login(postgres_url(), owner), can_login(postgres_url(), second_login)) == (
        True, False)
    rotate(engine, slug)
    assert engine.catalog.get_tenant(slug).database_login == second_login

    # 4. Back to a database of its own (out of the pooled schema), the second login with it.
    update = engine.update(slug, TenantChange(plan="standard"), requested_by="ops")
    assert update is not None
    succeeded(engine, update.id)
    own = engine.catalog.placement_of(slug)
    assert own is not None
    assert (own.mode, own.database, own.schema) == ("database", database, None)
    assert engine.catalog.get_tenant(slug).database_login == second_login
    url = engine.providers.secrets.read(f"{slug}-database-url")
    with psycopg.connect(url, autocommit=True) as db:
        assert db.execute("SELECT session_user, current_user, current_schema()").fetchone() == (
            second_login, owner, "public")
        assert db.execute("SELECT count(*) FROM orders").fetchone() == (100,)
    with connect(postgres_url(), pooled.database) as db:
        assert db.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s",
                          (database,)).fetchone() is None
    with connect(postgres_url(), "postgres") as admin:
        # The pooled database keeps no right nor setting for either login.
        acl = admin.execute("SELECT coalesce(datacl::text, '') FROM pg_database "
                            "WHERE datname = %s", (pooled.database,)).fetchone()
        assert acl is not None
        assert owner not in acl[0]
        assert admin.execute(
            "SELECT count(*) FROM pg_db_role_setting s JOIN pg_database d ON d.oid = "
            "s.setdatabase WHERE d.datname = %s", (pooled.database,)).fetchone() == (0,)

    # 5. Offboarding drops both logins; no server keeps either.
    succeeded(engine, engine.offboard(slug, requested_by="ops").id)
    for url in (postgres_url(), second.url()):
        assert (can_login(url, owner), can_login(url, second_login)) == (None, None)
