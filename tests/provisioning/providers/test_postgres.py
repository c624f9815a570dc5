"""The ``postgres`` database provider against the PostgreSQL 15 started by
scripts/services/postgres.sh: least privilege, idempotency, convergence, removal."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tenantops.errors import (
    PermanentProviderError,
    SpecError,
    TransientProviderError,
)
from tenantops.provisioning.providers.base import Ready
from tenantops.provisioning.providers.database import Database
from tenantops.provisioning.providers.database.postgres import PostgresDatabases
from tenantops.provisioning.providers.secrets import Secret
from tenantops.provisioning.providers.secrets.local import LocalSecrets
from tenantops.provisioning.spec import TenantSpec

from .servers import postgres_url, unique_slug

pytestmark = pytest.mark.integration


@pytest.fixture
def admin() -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
    """A superuser connection for looking at what the provider made."""
    with psycopg.connect(postgres_url(), autocommit=True) as connection:
        yield connection


@pytest.fixture
def secrets_store(tmp_path: Path) -> LocalSecrets:
    return LocalSecrets(tmp_path / "secrets")


@pytest.fixture
def provider(secrets_store: LocalSecrets) -> PostgresDatabases:
    return PostgresDatabases(postgres_url(), secrets_store, connection_limit=5)


@pytest.fixture
def database(
    secrets_store: LocalSecrets, admin: psycopg.Connection[tuple[Any, ...]]
) -> Iterator[Database]:
    slug = unique_slug("pg")
    resource = Database(name=f"tenant_{slug}", login=f"tenant_{slug}_app",
                        secret=f"db-{slug}")
    secrets_store.ensure(Secret(resource.secret))
    yield resource
    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                  .format(sql.Identifier(resource.name)))
    admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(resource.login)))


def _role(admin: psycopg.Connection[tuple[Any, ...]], name: str) -> dict[str, Any] | None:
    cursor = admin.execute(
        "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolinherit, "
        "rolreplication, rolbypassrls, rolconnlimit FROM pg_roles WHERE rolname = %s", (name,))
    row = cursor.fetchone()
    if row is None:
        return None
    assert cursor.description is not None
    return {c.name: v for c, v in zip(cursor.description, row, strict=True)}


def _owner(admin: psycopg.Connection[tuple[Any, ...]], name: str) -> str | None:
    row = admin.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
                        (name,)).fetchone()
    return None if row is None else str(row[0])


def _scram_matches(verifier: str, password: str) -> bool:
    """Check a SCRAM-SHA-256 verifier (RFC 5802) against a password."""
    method, _, rest = verifier.partition("$")
    iterations_salt, _, keys = rest.partition("$")
    iterations, _, salt = iterations_salt.partition(":")
    stored_key, _, _ = keys.partition(":")
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt),
                                 int(iterations))
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    return method == "SCRAM-SHA-256" and hmac.compare_digest(
        hashlib.sha256(client_key).digest(), base64.b64decode(stored_key))


def test_ensure_creates_a_database_owned_by_a_least_privilege_login(
    provider: PostgresDatabases, database: Database, secrets_store: LocalSecrets,
    admin: psycopg.Connection[tuple[Any, ...]],
) -> None:
    outcome = provider.ensure(database)

    assert isinstance(outcome, Ready)
    assert outcome.changed
    assert outcome.outputs["database"] == database.name
    assert outcome.outputs["login"] == database.login
    assert outcome.outputs["location"].startswith(f"postgresql://{database.login}@")
    assert _owner(admin, database.name) == database.login
    assert _role(admin, database.login) == {
        "rolcanlogin": True, "rolsuper": False, "rolcreatedb": False, "rolcreaterole": False,
        "rolinherit": True, "rolreplication": False, "rolbypassrls": False, "rolconnlimit": 5,
    }
    public_connect = admin.execute(
        "SELECT has_database_privilege('public', %s, 'CONNECT')", (database.name,)
    ).fetchone()
    assert public_connect == (False,)
    verifier = admin.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s",
                             (database.login,)).fetchone()
    assert verifier is not None
    assert _scram_matches(verifier[0], secrets_store.read(database.secret))
    assert provider.read_metadata(database)["database"] == database.name


def test_password_never_appears_in_outputs_observation_or_logs(
    provider: PostgresDatabases, database: Database, secrets_store: LocalSecrets,
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Another test may have run configure_logging(), which stops propagation to root.
    monkeypatch.setattr(logging.getLogger("tenantops"), "propagate", True)
    caplog.set_level(logging.DEBUG, logger="tenantops")
    password = secrets_store.read(database.secret)
    outcome = provider.ensure(database)
    observed = provider.observe(database)
    provider.remove(database)

    assert isinstance(outcome, Ready)
    assert password not in repr(outcome.outputs)
    assert password not in repr(observed)
    assert caplog.records
    assert password not in caplog.text


def test_other_logins_cannot_connect_to_the_tenant_database(
    provider: PostgresDatabases, database: Database,
    admin: psycopg.Connection[tuple[Any, ...]],
) -> None:
    other = unique_slug("other")
    admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'another-tenant'").format(
        sql.Identifier(other)))
    try:
        provider.ensure(database)
        conninfo = psycopg.conninfo.make_conninfo(postgres_url(), user=other,
                                                  dbname=database.name,
                                                  password="another-tenant")
        with pytest.raises(psycopg.OperationalError, match="CONNECT privilege"):
            psycopg.connect(conninfo).close()
    finally:
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(other)))


def test_ensure_twice_changes_nothing(
    provider: PostgresDatabases, database: Database,
    admin: psycopg.Connection[tuple[Any, ...]],
) -> None:
    provider.ensure(database)
    again = provider.ensure(database)

    assert isinstance(again, Ready)
    assert not again.changed
    count = admin.execute("SELECT count(*) FROM pg_database WHERE datname = %s",
                          (database.name,)).fetchone()
    assert count == (1,)
    assert provider.observe(database) == {
        "name": database.name, "owner": database.login, "login": database.login,
        "secret": database.secret, "server": "default", "login_enabled": True,
    }


def test_an_existing_database_and_role_are_converged_not_refused(
    provider: PostgresDatabases, database: Database,
    admin: psycopg.Connection[tuple[Any, ...]],
) -> None:
    login, name = sql.Identifier(database.login), sql.Identifier(database.name)
    admin.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEDB NOINHERIT").format(login))
    admin.execute(sql.SQL("CREATE DATABASE {}").format(name))  # owned by the admin

    outcome = provider.ensure(database)

    assert isinstance(outcome, Ready)
    assert outcome.changed
    assert _owner(admin, database.name) == database.login
    role = _role(admin, database.login)
    assert role is not None
    assert (role["rolcreatedb"], role["rolinherit"]) == (False, True)


def test_a_superuser_role_with_the_login_name_is_refused(
    provider: PostgresDatabases, database: Database,
    admin: psycopg.Connection[tuple[Any, ...]],
) -> None:
    admin.execute(sql.SQL("CREATE ROLE {} LOGIN SUPERUSER")
                  .format(sql.Identifier(database.login)))

    with pytest.raises(PermanentProviderError, match="superuser") as caught:
        provider.ensure(database)

    assert caught.value.provider == "database:postgres"
    assert _owner(admin, database.name) is None


def test_remove_terminates_connections_and_drops_database_and_login(
    provider: PostgresDatabases, database: Database,
    admin: psycopg.Connection[tuple[Any, ...]], secrets_store: LocalSecrets,
) -> None:
    provider.ensure(database)
    conninfo = psycopg.conninfo.make_conninfo(postgres_url(), user=database.login,
                                              dbname=database.name,
                                              password=secrets_store.read(database.secret))
    tenant_session = psycopg.connect(conninfo, autocommit=True)
    try:
        outcome = provider.remove(database)
        assert isinstance(outcome, Ready)
        assert outcome.changed
        with pytest.raises(psycopg.OperationalError):
            tenant_session.execute("SELECT 1")
    finally:
        tenant_session.close()

    assert _owner(admin, database.name) is None
    assert _role(admin, database.login) is None
    assert provider.observe(database) is None
    again = provider.remove(database)
    assert isinstance(again, Ready)
    assert not again.changed


def test_a_non_superuser_admin_with_createdb_and_createrole_is_enough(
    secrets_store: LocalSecrets, database: Database,
    admin: psycopg.Connection[tuple[Any, ...]],
) -> None:
    operator = unique_slug("ops")
    admin.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEDB CREATEROLE PASSWORD 'operator-pw'")
                  .format(sql.Identifier(operator)))
    try:
        url = psycopg.conninfo.make_conninfo(postgres_url(), user=operator)
        provider = PostgresDatabases(url, secrets_store, admin_password="operator-pw")

        assert isinstance(provider.ensure(database), Ready)
        assert _owner(admin, database.name) == database.login
        assert provider.read_metadata(database)["database"] == database.name
        assert isinstance(provider.remove(database), Ready)
        assert _owner(admin, database.name) is None
        assert _role(admin, database.login) is None
    finally:
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(operator)))


@pytest.mark.parametrize(
    "slug",
    [
        "acme'; DROP DATABASE postgres; --",
        'acme"; DROP ROLE postgres; --',
        "acme_x",
        "ACME",
        "acme\x00",
        "a$1",
    ],
)
def test_injection_in_the_slug_is_refused_by_the_spec(slug: str) -> None:
    with pytest.raises(SpecError, match="slug"):
        TenantSpec(slug=slug, display_name="Acme", custom_domain="portal.acme.example.test",
                   admin_email="admin@acme.example.test")


@pytest.mark.parametrize(
    ("name", "login"),
    [
        ('tenant_acme"; DROP DATABASE postgres; --', "tenant_acme_app"),
        ("tenant_acme", "x' OR '1'='1"),
        ("Tenant_Acme", "tenant_acme_app"),
        ("tenant-acme", "tenant_acme_app"),
        ("t" * 64, "tenant_acme_app"),
    ],
)
def test_injection_in_database_names_is_refused_before_connecting(
    name: str, login: str, secrets_store: LocalSecrets,
) -> None:
    # A listening socket that nobody should ever connect to.
    with socket.create_server(("127.0.0.1", 0)) as trap:
        trap.settimeout(0.2)
        port = trap.getsockname()[1]
        provider = PostgresDatabases(f"postgresql://postgres@127.0.0.1:{port}/postgres",
                                     secrets_store)
        with pytest.raises(PermanentProviderError, match="must be 1 to 63"):
            provider.ensure(Database(name=name, login=login, secret="db-x"))
        with pytest.raises(TimeoutError):
            trap.accept()


def test_unreachable_server_is_transient(secrets_store: LocalSecrets, database: Database) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, not listening: connections are refused
        provider = PostgresDatabases(f"postgresql://postgres@127.0.0.1:{port}/postgres",
                                     secrets_store, connect_timeout=2)
        with pytest.raises(TransientProviderError, match="could not connect to PostgreSQL"):
            provider.ensure(database)


def test_unknown_admin_role_is_permanent_and_says_what_to_check(
    secrets_store: LocalSecrets, database: Database,
) -> None:
    url = psycopg.conninfo.make_conninfo(postgres_url(), user="no_such_admin")
    provider = PostgresDatabases(url, secrets_store, admin_password="a guess")

    with pytest.raises(PermanentProviderError) as caught:
        provider.ensure(database)

    # With SCRAM the server does not say whether the role exists: the password is wrong.
    assert 'password authentication failed for user "no_such_admin"' in str(caught.value)
    assert "[providers.database.postgres]" in str(caught.value)
    assert "a guess" not in str(caught.value)


def test_an_admin_without_the_password_the_server_asks_for_is_permanent(
    secrets_store: LocalSecrets, database: Database,
) -> None:
    url = psycopg.conninfo.make_conninfo(postgres_url(), user="no_such_admin")
    provider = PostgresDatabases(url, secrets_store)

    with pytest.raises(PermanentProviderError) as caught:
        provider.ensure(database)

    assert str(caught.value).startswith(
        "PostgreSQL (server 'default') asks for the admin role's password and none was "
        "given; set admin_password in [providers.database.postgres] (or its "
        "providers.database.servers entry), or PGPASSWORD or ~/.pgpass")


def test_a_suspended_login_cannot_sign_in_and_signs_in_again_after_resume(
    provider: PostgresDatabases, database: Database, secrets_store: LocalSecrets,
    admin: psycopg.Connection[tuple[Any, ...]],
) -> None:
    """Suspension: NOLOGIN and the sessions already open are ended; nothing is dropped.
    Resume: LOGIN again, with the same password and the same data."""
    provider.ensure(database)
    password = secrets_store.read(database.secret)
    conninfo = psycopg.conninfo.make_conninfo(postgres_url(), user=database.login,
                                              dbname=database.name, password=password)
    with psycopg.connect(conninfo, autocommit=True) as tenant:
        tenant.execute("CREATE TABLE orders (id int)")
        tenant.execute("INSERT INTO orders VALUES (1), (2)")
    open_session = psycopg.connect(conninfo, autocommit=True)
    try:
        suspended = provider.ensure(dataclasses.replace(database, login_enabled=False))
        assert isinstance(suspended, Ready)
        assert suspended.changed
        with pytest.raises(psycopg.OperationalError):
            open_session.execute("SELECT 1")
    finally:
        open_session.close()
    with pytest.raises(psycopg.OperationalError, match="is not permitted to log in"):
        psycopg.connect(conninfo).close()
    with pytest.raises(PermanentProviderError, match="is not permitted to log in"):
        provider.read_metadata(database)
    role = _role(admin, database.login)
    assert role is not None
    assert role["rolcanlogin"] is False
    assert _owner(admin, database.name) == database.login
    observed = provider.observe(database)
    assert observed is not None
    assert observed["login_enabled"] is False
    again = provider.ensure(dataclasses.replace(database, login_enabled=False))
    assert isinstance(again, Ready)
    assert not again.changed

    resumed = provider.ensure(database)
    assert isinstance(resumed, Ready)
    assert resumed.changed
    with psycopg.connect(conninfo, autocommit=True) as tenant:
        assert tenant.execute("SELECT count(*) FROM orders").fetchone() == (2,)
    assert provider.read_metadata(database)["database"] == database.name
