"""Schema migrations of schema-mode tenants on a real PostgreSQL (issue 15 §2, "schema and
database modes"): each tenant's migrations run in its own schema of the pooled database, as
its login, with their version table there; a later fleet migration applies the new
revision to every tenant's schema, and nothing lands in the pooled database's public schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tenantops.provisioning import Engine
from tenantops.provisioning.fleet import FleetRequest, FleetRuns, Selection, wait_for_fleet

from ..conftest import fast_settings, spec_for
from .servers import postgres_url, unique_slug

pytestmark = pytest.mark.integration

USERS = "CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL);\n"
NAMES = "ALTER TABLE users ADD COLUMN name text;\n"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0001_users.sql").write_text(USERS, encoding="utf-8")
    return folder


@pytest.fixture
def engine(tmp_path: Path, pooled: str, folder: Path) -> Iterator[Engine]:
    settings = fast_settings(
        tmp_path / "data",
        providers={"database": {"name": "postgres", "postgres": {"admin_url": postgres_url()}}},
        plans={"standard": {"database": {"mode": "schema", "shared_database": pooled}}},
        migrations={"folder": folder, "kind": "sql", "on_onboarding": True},
        fleet={"poll_seconds": 0.02})
    engine = Engine(settings)
    engine.start()
    yield engine
    engine.stop()


def tables(pooled: str) -> set[tuple[str, str, str]]:
    """(schema, table, owner) of every table in the pooled database outside the catalogs."""
    url = psycopg.conninfo.make_conninfo(postgres_url(), dbname=pooled)
    with psycopg.connect(url, autocommit=True) as db:
        rows = db.execute(
            "SELECT schemaname, tablename, tableowner FROM pg_tables "
            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema')").fetchall()
    return {(str(s), str(t), str(o)) for s, t, o in rows}


def columns(pooled: str, schema: str) -> list[str]:
    url = psycopg.conninfo.make_conninfo(postgres_url(), dbname=pooled)
    with psycopg.connect(url, autocommit=True) as db:
        rows = db.execute("SELECT column_name FROM information_schema.columns WHERE "
                          "table_schema = %s AND table_name = 'users' ORDER BY ordinal_position",
                          (schema,)).fetchall()
    return [str(r[0]) for r in rows]


def test_schema_mode_tenants_are_migrated_in_their_own_schema_at_onboarding_and_by_a_fleet(
        engine: Engine, pooled: str, folder: Path) -> None:
    slugs = [unique_slug("sma"), unique_slug("smb")]
    for slug in slugs:
        run = engine.wait(engine.onboard(spec_for(slug),
                                         requested_by="test").id, timeout=300)
        assert run.status == "succeeded", (run.failed_step, run.error)
        assert run.step("migrate_schema").outputs["applied"] == ["0001_users"]
    schemas = {slug: engine.catalog.placement_of(slug) for slug in slugs}
    found = tables(pooled)
    for slug, placement in schemas.items():
        assert placement is not None
        assert placement.schema is not None
        login = f"{slug}_app"
        assert (placement.schema, "users", login) in found, found
        assert (placement.schema, "tenantops_schema_version", login) in found, found
    assert not {t for t in found if t[0] == "public"}, "nothing in the pooled public schema"

    (folder / "0002_names.sql").write_text(NAMES, encoding="utf-8")
    runs = FleetRuns(engine)
    fleet = runs.create(FleetRequest("migrate", Selection(tenants=tuple(slugs)),
                                     options={"revision": None}), requested_by="test")
    fleet = wait_for_fleet(runs, fleet.id, timeout=300)
    assert fleet.status == "succeeded", fleet.stop_reason
    assert fleet.counts.succeeded == 2
    for slug, placement in schemas.items():
        assert placement is not None
        assert placement.schema is not None
        assert columns(pooled, placement.schema) == ["id", "email", "name"]
        assert engine.catalog.get_tenant(slug).schema_revision == "0002_names"
