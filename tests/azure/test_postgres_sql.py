"""``azure-postgres`` with ``admin_url``: ARM (the fake) makes and deletes each tenant's
database on the flexible server, and "the flexible server" is a real PostgreSQL (the fake's
data plane), reached over SQL as on Azure. Through the engine: the tenant's login owns its
database and signs in; suspension makes it NOLOGIN and resumption gives it back; a fleet
migrates the SaaS's schema and rotates the credentials while the application keeps
querying; a tenant with data moves to a second flexible server (a second real PostgreSQL);
offboarding leaves no database and no login."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import psycopg
import pytest
from psycopg import sql

from tenantops.catalog import Catalog
from tenantops.config import Settings
from tenantops.provisioning.drift import DriftChecker
from tenantops.provisioning.engine import Engine
from tenantops.provisioning.fleet import FleetRequest, FleetRuns, Selection, wait_for_fleet
from tenantops.provisioning.placement import database_of
from tenantops.provisioning.providers.database.azure_postgres import (
    AzurePostgresDatabases,
    AzurePostgresSqlDatabases,
    FlexibleServer,
)
from tenantops.provisioning.spec import TenantSpec
from tests.azure.conftest import APP, PG_SERVER, RESOURCE_GROUP, RG_SCOPE, ZONE
from tests.azure.test_onboarding import azure_providers, azure_settings
from tests.azure.test_suspension import PARKING
from tests.azure_fake import SUBSCRIPTION, FakeAzure, FakeSite
from tests.provisioning.faults import postgres_cluster
from tests.provisioning.providers.servers import postgres_url, unique_slug
from tests.provisioning.providers.test_drift_selfhosted import drop_login
from tests.provisioning.providers.test_rotation import App, can_login, rotate

pytestmark = pytest.mark.integration  # the flexible server's data plane is a real PostgreSQL

MIGRATIONS = {
    "0001_users.sql": "CREATE TABLE users (id integer PRIMARY KEY, email text NOT NULL);",
    "0002_orders.sql": "CREATE TABLE orders (id integer PRIMARY KEY, user_id integer);",
}


def sql_settings(tmp_path: Path, fake: FakeAzure,
                 servers: list[dict[str, Any]] | None = None,
                 admin_auth: str = "password") -> Settings:
    base = azure_settings(tmp_path / "data", fake, "azure-postgres").model_dump(
        exclude_unset=True)
    if servers is None:
        base["providers"]["database"]["azure_postgres"].update(
            admin_url=postgres_url(), connection_limit=5)
    else:
        del base["providers"]["database"]["azure_postgres"]["server"]
        base["providers"]["database"].update(servers=servers, move_grace_seconds=0)
    base["providers"]["database"]["azure_postgres"]["admin_auth"] = admin_auth
    base["providers"]["webhost"]["azure_app_service"]["suspended_app_name"] = PARKING
    folder = tmp_path / "migrations"
    folder.mkdir()
    for name, body in MIGRATIONS.items():
        (folder / name).write_text(body)
    base.update(migrations={"folder": folder},
                rotation={"min_grace_seconds": 0.3, "max_grace_seconds": 60,
                          "poll_seconds": 0.05},
                fleet={"poll_seconds": 0.05})
    return Settings.model_validate(base)


def start_engine(tmp_path: Path, servers: dict[str, str] | None = None, *,
                 admins: dict[str, str] | None = None,
                 admin_auth: str = "password") -> Iterator[Engine]:
    """The Azure stack with azure-postgres over SQL: the flexible server ``PG_SERVER`` on
    the test PostgreSQL, or ``servers`` (placement name: data plane URL), a flexible server
    ``pg-<name>`` each, its admin URL the data plane's (or ``admins``')."""
    fake = FakeAzure(speedup=1000.0, issuance_seconds=300.0)
    fake.postgres.data_plane = postgres_url()
    fake.app_service.add_site(FakeSite(APP, RESOURCE_GROUP, SUBSCRIPTION))
    fake.app_service.add_site(FakeSite(PARKING, RESOURCE_GROUP, SUBSCRIPTION))
    fake.dns.add_zone(ZONE, RESOURCE_GROUP)
    fake.postgres.add_server(PG_SERVER, RESOURCE_GROUP)
    for name, url in (servers or {}).items():
        fake.postgres.add_server(f"pg-{name}", RESOURCE_GROUP, data_plane=url)
    fake.authorization.grant(RG_SCOPE, "Contributor")
    fake.authorization.grant(fake.key_vault.resource_id, "Key Vault Secrets Officer")
    admin = {**(servers or {}), **(admins or {})}
    settings = sql_settings(tmp_path, fake, None if servers is None else [
        {"name": name, "server": f"pg-{name}", "admin_url": admin[name]}
        for name in servers], admin_auth)
    catalog = Catalog.from_settings(settings)
    flexible = None if servers is None else {
        name: FlexibleServer(f"pg-{name}", None, admin[name]) for name in servers}
    providers = azure_providers(settings, catalog, fake, database=lambda connection, secrets: (
        AzurePostgresSqlDatabases(connection, settings.providers.database.azure_postgres,
                                  secrets, servers=flexible)))
    started = Engine(settings, catalog=catalog, providers=providers)
    started.start()
    try:
        yield started
    finally:
        started.stop()
        catalog.close()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    yield from start_engine(tmp_path)


def onboard(engine: Engine, slug: str) -> None:
    spec = TenantSpec(slug=slug, display_name=f"Tenant {slug}", custom_domain=f"{slug}.{ZONE}",
                      admin_email=f"admin@{slug}.example")
    run = engine.wait(engine.onboard(spec, requested_by="tests").id, timeout=120)
    assert (run.status, run.error) == ("succeeded", None)


def signs_in(engine: Engine, slug: str) -> str:
    """Sign in as the tenant's login in use; the error's first line when refused."""
    tenant = engine.catalog.get_tenant(slug)
    assert tenant.database_login
    assert tenant.database_secret
    assert tenant.database_name
    conninfo = psycopg.conninfo.make_conninfo(
        postgres_url(), dbname=tenant.database_name, user=tenant.database_login,
        password=engine.providers.secrets.read(tenant.database_secret))
    try:
        with psycopg.connect(conninfo, autocommit=True) as db:
            row = db.execute("SELECT current_user, (SELECT value FROM tenantops_meta "
                             "WHERE key = 'database')").fetchone()
    except psycopg.OperationalError as exc:
        return str(exc).strip().splitlines()[-1]
    return f"signed in: {row}"


def test_the_tenants_login_is_made_disabled_while_suspended_and_dropped_at_offboarding(
        engine: Engine) -> None:
    slug = unique_slug("azpg")
    login, database = f"{slug}_app", f"tenant_{slug}"
    onboard(engine, slug)
    try:
        assert signs_in(engine, slug) == f"signed in: ('{login}', '{database}')"
        with psycopg.connect(postgres_url(), autocommit=True) as admin:
            owner = admin.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE "
                                  "datname = %s", (database,)).fetchone()
        assert owner == (login,)  # ARM made it as the administrator's; now the tenant's
        assert DriftChecker.of(engine).check(slug).state == "in_sync"
        # Someone drops the login by hand: the drift check sees it, a reconcile makes it.
        drop_login(database, login)
        drifted = DriftChecker.of(engine).check(slug)
        assert drifted.state == "drifted", drifted
        assert [r.resource for r in drifted.off_track] == [f"database:{database}"]
        reconciled = engine.wait(engine.reconcile_tenant(slug, requested_by="t").id,
                                 timeout=120)
        assert (reconciled.status, reconciled.error) == ("succeeded", None)
        assert signs_in(engine, slug) == f"signed in: ('{login}', '{database}')"
        assert DriftChecker.of(engine).check(slug).state == "in_sync"

        suspended = engine.wait(engine.suspend(slug, reason="unpaid", requested_by="t").id,
                                timeout=120)
        assert (suspended.status, suspended.error) == ("succeeded", None)
        assert can_login(login) is False
        assert "not permitted to log in" in signs_in(engine, slug)

        resumed = engine.wait(engine.resume(slug, requested_by="t").id, timeout=120)
        assert (resumed.status, resumed.error) == ("succeeded", None)
        assert signs_in(engine, slug) == f"signed in: ('{login}', '{database}')"
    finally:
        offboarded = engine.wait(engine.offboard(slug, requested_by="t").id, timeout=120)
    assert (offboarded.status, offboarded.error) == ("succeeded", None)
    assert (can_login(login), can_login(f"{login}_b")) == (None, None)
    with psycopg.connect(postgres_url(), autocommit=True) as admin:
        assert admin.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                             (database,)).fetchone() is None


def test_a_fleet_migrates_and_rotates_tenants_on_the_flexible_server(engine: Engine) -> None:
    first, second = unique_slug("azpg"), unique_slug("azpg")
    for slug in (first, second):
        onboard(engine, slug)
    try:
        for slug in (first, second):  # onboarding migrated each to head
            assert engine.catalog.get_tenant(slug).schema_revision == "0002_orders"
        (engine.settings.migrations.folder / "0003_email_index.sql").write_text(  # type: ignore[operator]
            "CREATE INDEX users_email ON users (email);")
        runs = FleetRuns(engine)
        fleet = runs.create(FleetRequest("migrate", Selection(tenants=(first, second)),
                                         canary=1), requested_by="tests")
        done = wait_for_fleet(runs, fleet.id, timeout=180)
        assert done.status == "succeeded", done.stop_reason
        assert {engine.catalog.get_tenant(s).schema_revision for s in (first, second)} == {
            "0003_email_index"}

        owner = f"{first}_app"
        with App(engine, first) as app:
            rotate(engine, first, second)
            assert app.reconnected.wait(30)
        assert app.errors == []
        assert app.logins == [owner, f"{owner}_b"]
        assert (can_login(owner), can_login(f"{owner}_b")) == (False, True)
        assert signs_in(engine, first).startswith(f"signed in: ('{owner}', ")
    finally:
        for slug in (first, second):
            engine.wait(engine.offboard(slug, requested_by="t").id, timeout=120)
    assert (can_login(f"{first}_app"), can_login(f"{first}_app_b")) == (None, None)


def test_a_tenant_with_data_moves_to_another_flexible_server(tmp_path: Path) -> None:
    with postgres_cluster() as second:
        for engine in start_engine(tmp_path, {"one": postgres_url(), "two": second.url()}):
            slug = unique_slug("azmv")
            login, database = f"{slug}_app", f"tenant_{slug}"
            onboard(engine, slug)
            placement = engine.catalog.placement_of(slug)
            assert placement is not None
            assert placement.server == "one"
            with engine.providers.database.connect(database_of(slug, placement)) as db:
                db.execute("INSERT INTO users (id, email) SELECT n, 'u' || n || '@x.test' "
                           "FROM generate_series(1, 500) n")

            moved = engine.wait(engine.move(slug, server="two", requested_by="t").id,
                                timeout=300)

            assert (moved.status, moved.error) == ("succeeded", None)
            placement = engine.catalog.placement_of(slug)
            assert placement is not None
            assert placement.server == "two"
            with psycopg.connect(second.url(database), autocommit=True) as db:
                assert db.execute("SELECT count(*) FROM users").fetchone() == (500,)
                assert db.execute("SELECT tableowner FROM pg_tables WHERE tablename = "
                                  "'users'").fetchone() == (login,)
            with engine.providers.database.connect(database_of(slug, placement)) as db:
                assert db.execute("SELECT current_user").fetchone() == (login,)
            # The old copy was deleted through ARM, which dropped it on its server.
            with psycopg.connect(postgres_url(), autocommit=True) as admin:
                assert admin.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                     (database,)).fetchone() is None
            offboarded = engine.wait(engine.offboard(slug, requested_by="t").id, timeout=300)
            assert (offboarded.status, offboarded.error) == ("succeeded", None)
            with psycopg.connect(second.url(), autocommit=True) as admin:
                assert admin.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                     (database,)).fetchone() is None


def test_the_admin_signs_in_with_an_entra_token_for_azure_database_for_postgresql(
        tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logging.getLogger("tenantops"), "propagate", True)
    caplog.set_level(logging.DEBUG, logger="tenantops")
    with postgres_cluster() as server:
        # The server checks every role's password but postgres's (SCRAM); the fake's data
        # plane comes in as postgres, as ARM does as the server's own.
        admin_url = f"postgresql://tenantops-mi@127.0.0.1:{server.port}/postgres"
        for engine in start_engine(tmp_path, {"one": server.url()}, admins={"one": admin_url},
                                   admin_auth="entra"):
            database = engine.providers.database
            assert isinstance(database, AzurePostgresSqlDatabases)
            source = database.sql.servers["one"].password_source
            assert source is not None
            token = source()
            claims = jwt.decode(token, options={"verify_signature": False})
            assert claims["aud"] == "https://ossrdbms-aad.database.windows.net"
            # What "pgaadauth_create_principal" does on Azure: the managed identity's role;
            # here its password is that token, so only a token for that audience signs in.
            with psycopg.connect(server.url(), autocommit=True) as admin:
                admin.execute(sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(
                    sql.Identifier("tenantops-mi"), sql.Literal(token)))
            with pytest.raises(psycopg.OperationalError, match="password authentication"):
                psycopg.connect(admin_url, password="an admin password", autocommit=True)

            slug = unique_slug("azen")
            onboard(engine, slug)

            placement = engine.catalog.placement_of(slug)
            assert placement is not None
            with database.connect(database_of(slug, placement)) as db:  # a real scram sign-in
                assert db.execute("SELECT current_user").fetchone() == (f"{slug}_app",)
            run = engine.catalog.latest_run(slug)
            assert run is not None
            assert token not in repr(run)
            assert token not in caplog.text


def test_without_admin_url_the_provider_makes_databases_only() -> None:
    settings = Settings.model_validate({
        "azure": {"subscription_id": SUBSCRIPTION, "resource_group": RESOURCE_GROUP},
        "providers": {"database": {"name": "azure-postgres",
                                   "azure_postgres": {"server": PG_SERVER}}}})
    provider = AzurePostgresDatabases.from_settings(settings)
    assert type(provider) is AzurePostgresDatabases


def test_azure_check_says_whether_the_admin_role_can_do_tenantops_work() -> None:
    from tenantops.provisioning.providers.azure.preflight import run_preflight
    from tests.azure.test_check import connection

    fake = FakeAzure()
    fake.postgres.add_server(PG_SERVER, RESOURCE_GROUP)
    fake.authorization.grant(RG_SCOPE, "Contributor")
    weak = unique_slug("weak")

    def findings(admin_url: str, password: str | None = None) -> dict[str, Any]:
        settings = Settings.model_validate({
            "azure": {"subscription_id": SUBSCRIPTION, "resource_group": RESOURCE_GROUP},
            "providers": {"database": {"name": "azure-postgres", "azure_postgres": {
                "server": PG_SERVER, "admin_url": admin_url, "admin_password": password}}}})
        return {f.check: f for f in run_preflight(settings, connection(fake))}

    check = f"SQL on flexible server {PG_SERVER}"
    assert findings(postgres_url())[check].ok
    with psycopg.connect(postgres_url(), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'weak-but-right'").format(
            sql.Identifier(weak)))
    try:
        url = psycopg.conninfo.make_conninfo(postgres_url(), user=weak)
        refused = findings(url, "not-the-password")[check]
        assert not refused.ok
        assert f'password authentication failed for user "{weak}"' in refused.detail
        assert "not-the-password" not in refused.detail + refused.fix
        unable = findings(url, "weak-but-right")[check]
        assert not unable.ok
        assert unable.detail == (f"the admin role '{weak}' signs in but may not create roles "
                                 "and databases (it needs CREATEROLE and CREATEDB)")
        assert "ALTER ROLE <role> CREATEROLE CREATEDB" in unable.fix
    finally:
        with psycopg.connect(postgres_url(), autocommit=True) as admin:
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(weak)))
