"""Migrating tenant databases on the real PostgreSQL server (database per tenant), SQL files
and Alembic scripts: every pending revision in one transaction, a migration that fails on one
tenant's data leaves that tenant whole at its previous revision, the objects belong to the
tenant's login, the catalog records each tenant's revision."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tenantops.provisioning import Engine
from tenantops.provisioning.fleet import FleetRequest, FleetRuns, Selection, wait_for_fleet
from tests.provisioning.conftest import fast_settings, spec_for

from .servers import postgres_url, unique_slug

pytestmark = pytest.mark.integration

ALEMBIC_0001 = '''"""users"""
from alembic import op
import sqlalchemy as sa

revision = "a0001"
down_revision = None


def upgrade() -> None:
    op.create_table("users", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("email", sa.Text, nullable=False))
'''

ALEMBIC_0002 = '''"""unique e-mail, and an audit table made before it"""
from alembic import op
import sqlalchemy as sa

revision = "a0002"
down_revision = "a0001"


def upgrade() -> None:
    op.create_table("audit", sa.Column("id", sa.Integer, primary_key=True))
    op.create_index("users_email", "users", ["email"], unique=True)
'''


@pytest.fixture
def make(tmp_path: Path) -> Iterator[object]:
    engines: list[Engine] = []
    slugs: list[str] = []

    def start(folder: Path) -> Engine:
        settings = fast_settings(
            tmp_path / f"data{len(engines)}", migrations={"folder": folder},
            providers={"database": {"name": "postgres",
                                    "postgres": {"admin_url": postgres_url(),
                                                 "connection_limit": 5}}},
            fleet={"poll_seconds": 0.02})
        engine = Engine(settings)
        engine.start()
        engines.append(engine)
        return engine

    start.slugs = slugs  # type: ignore[attr-defined]
    yield start
    for engine in engines:
        for slug in slugs:
            if engine.catalog.find_tenant(slug) is not None:
                engine.wait(engine.offboard(slug, requested_by="t").id, timeout=120)
        engine.stop()


def query(database: str, statement: str) -> list[tuple[object, ...]]:
    base = postgres_url().rsplit("/", 1)[0]
    with psycopg.connect(f"{base}/{database}", autocommit=True) as db:
        cursor = db.execute(statement.encode())
        return cursor.fetchall() if cursor.description else []


def run_migration(make: object, folder: Path, second: dict[str, str]) -> tuple[
        Engine, list[str], str]:
    engine = make(folder)  # type: ignore[operator]
    slugs = [unique_slug("mig") for _ in range(3)]
    make.slugs.extend(slugs)  # type: ignore[attr-defined]
    for run_id in [engine.onboard(spec_for(s), requested_by="t").id for s in slugs]:
        assert engine.wait(run_id, timeout=120).status == "succeeded"
    broken = slugs[1]
    database = engine.catalog.get_tenant(broken).database_name
    assert database
    query(database, "INSERT INTO users (email) VALUES ('a@x.test'), ('a@x.test')")
    for name, body in second.items():
        (folder / name).write_text(body)
    runs = FleetRuns(engine)
    fleet = runs.create(FleetRequest("migrate", Selection(tenants=tuple(slugs)), canary=0,
                                     concurrency=3, max_failures=1), requested_by="test")
    done = wait_for_fleet(runs, fleet.id, timeout=180)
    assert done.status == "failed", done.stop_reason
    assert (done.counts.succeeded, done.counts.failed) == (2, 1)
    (failed,) = engine.catalog.fleets.targets(fleet.id, status="failed")
    assert failed.tenant_slug == broken
    assert failed.error is not None
    return engine, slugs, failed.error


def test_sql_migrations_on_postgres_one_transaction_per_tenant(make: object,
                                                                tmp_path: Path) -> None:
    folder = tmp_path / "sql"
    folder.mkdir()
    (folder / "0001_users.sql").write_text(
        "CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL);")
    engine, slugs, error = run_migration(make, folder, {"0002_unique.sql": (
        "CREATE TABLE audit (id int);\nCREATE UNIQUE INDEX users_email ON users (email);")})
    assert "0002_unique" in error
    assert "could not create unique index" in error
    for slug in slugs:
        tenant = engine.catalog.get_tenant(slug)
        assert tenant.database_name
        tables = {r[0]: r[1] for r in query(
            tenant.database_name,
            "SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'public'")}
        version = query(tenant.database_name, "SELECT revision FROM tenantops_schema_version")
        if slug == slugs[1]:
            assert tenant.schema_revision == "0001_users"
            assert "audit" not in tables  # made before the failing statement: rolled back
            assert version == [("0001_users",)]
        else:
            assert tenant.schema_revision == "0002_unique"
            assert tables["audit"] == f"{slug}_app"  # the tenant's login owns what it made
            assert version == [("0002_unique",)]


def test_alembic_migrations_on_postgres_keep_alembic_s_version_table(
        make: object, tmp_path: Path) -> None:
    folder = tmp_path / "alembic"
    (folder / "versions").mkdir(parents=True)
    (folder / "versions" / "a0001_users.py").write_text(ALEMBIC_0001)
    (folder / "script.py.mako").write_text("")
    engine, slugs, error = run_migration(make, folder, {
        "versions/a0002_unique.py": ALEMBIC_0002})
    assert "a0002" in error
    for slug in slugs:
        tenant = engine.catalog.get_tenant(slug)
        assert tenant.database_name
        version = query(tenant.database_name, "SELECT version_num FROM alembic_version")
        audit = query(tenant.database_name, "SELECT to_regclass('audit') IS NOT NULL")
        if slug == slugs[1]:
            assert (tenant.schema_revision, version, audit) == ("a0001", [("a0001",)],
                                                                [(False,)])
        else:
            assert (tenant.schema_revision, version, audit) == ("a0002", [("a0002",)],
                                                                [(True,)])
