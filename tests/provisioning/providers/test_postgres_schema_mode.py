"""Schema mode of the ``postgres`` provider against the real server: two tenants in one
pooled database, each signing in with its own password; what one tenant's login (or a login
of no tenant) tries against the other's data is refused by PostgreSQL itself."""

from __future__ import annotations

import secrets as random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import errors as pg_errors
from psycopg import sql

from tenantops.provisioning.providers.base import Ready
from tenantops.provisioning.providers.database import Database
from tenantops.provisioning.providers.database.postgres import PostgresDatabases
from tenantops.provisioning.providers.secrets import Secret
from tenantops.provisioning.providers.secrets.local import LocalSecrets

from .servers import postgres_url, unique_slug

pytestmark = pytest.mark.integration

Connection = psycopg.Connection[tuple[Any, ...]]


@pytest.fixture
def secrets_store(tmp_path: Path) -> LocalSecrets:
    return LocalSecrets(tmp_path / "secrets")


@pytest.fixture
def provider(secrets_store: LocalSecrets) -> PostgresDatabases:
    return PostgresDatabases(postgres_url(), secrets_store, connection_limit=5)


@pytest.fixture
def tenants(provider: PostgresDatabases, secrets_store: LocalSecrets, pooled: str
            ) -> Iterator[tuple[Database, Database]]:
    made = []
    for _ in range(2):
        slug = unique_slug("sm").replace("-", "_")
        tenant = Database(pooled, f"{slug}_app", f"db-{slug.replace('_', '-')}",
                          schema=f"tenant_{slug}")
        secrets_store.ensure(Secret(tenant.secret))
        assert isinstance(provider.ensure(tenant), Ready)
        made.append(tenant)
    yield made[0], made[1]
    for tenant in made:
        provider.remove(tenant)


def sign_in(tenant: Database, secrets_store: LocalSecrets) -> Connection:
    return psycopg.connect(psycopg.conninfo.make_conninfo(
        postgres_url(), dbname=tenant.name, user=tenant.login,
        password=secrets_store.read(tenant.secret)), autocommit=True)


def test_each_tenant_works_in_its_own_schema_of_the_pooled_database(
        tenants: tuple[Database, Database], secrets_store: LocalSecrets) -> None:
    first, _ = tenants
    with sign_in(first, secrets_store) as db:
        assert db.execute("SHOW search_path").fetchone() == (first.schema,)
        db.execute("CREATE TABLE orders (id int PRIMARY KEY)")  # lands in its schema
        db.execute("INSERT INTO orders VALUES (1)")
        assert db.execute("SELECT schemaname, tableowner FROM pg_tables "
                          "WHERE tablename = 'orders'").fetchone() == (first.schema,
                                                                       first.login)


def test_another_tenants_login_reading_a_pooled_schema_is_refused(
        tenants: tuple[Database, Database], secrets_store: LocalSecrets) -> None:
    first, second = tenants
    assert first.schema is not None
    with sign_in(first, secrets_store) as db:
        db.execute("CREATE TABLE secrets_of_first (v text)")
        db.execute("INSERT INTO secrets_of_first VALUES ('mine')")
    with sign_in(second, secrets_store) as db, pytest.raises(pg_errors.InsufficientPrivilege,
                                                             match="permission denied for "
                                                             "schema"):
        db.execute(sql.SQL("SELECT * FROM {}").format(
            sql.Identifier(first.schema, "secrets_of_first")))


def test_a_tenant_creating_objects_in_another_tenants_schema_is_refused(
        tenants: tuple[Database, Database], secrets_store: LocalSecrets) -> None:
    first, second = tenants
    assert first.schema is not None
    with sign_in(second, secrets_store) as db, pytest.raises(pg_errors.InsufficientPrivilege):
        db.execute(sql.SQL("CREATE TABLE {} (v text)").format(
            sql.Identifier(first.schema, "planted")))


def test_a_tenant_writing_into_the_pooled_databases_public_schema_is_refused(
        tenants: tuple[Database, Database], secrets_store: LocalSecrets) -> None:
    _, second = tenants
    with sign_in(second, secrets_store) as db, pytest.raises(pg_errors.InsufficientPrivilege):
        db.execute("CREATE TABLE public.shared_trap (v text)")


def test_a_login_of_no_tenant_connecting_to_the_pooled_database_is_refused(
        tenants: tuple[Database, Database], pooled: str) -> None:
    role, password = f"stranger_{random.token_hex(4)}", random.token_urlsafe(16)
    with psycopg.connect(postgres_url(), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(role), sql.Literal(password)))
    try:
        with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
            psycopg.connect(psycopg.conninfo.make_conninfo(
                postgres_url(), dbname=pooled, user=role, password=password)).close()
    finally:
        with psycopg.connect(postgres_url(), autocommit=True) as admin:
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_removing_one_tenant_keeps_the_other_and_the_pooled_database(
        provider: PostgresDatabases, tenants: tuple[Database, Database],
        secrets_store: LocalSecrets) -> None:
    first, second = tenants
    provider.remove(first)
    assert provider.observe(first) is None
    with sign_in(second, secrets_store) as db:
        assert db.execute("SELECT value FROM tenantops_meta WHERE key = 'database'"
                          ).fetchone() == (second.name,)
