"""Where fleet operations meet placement: a rotation and a schema migration act on the
tenant's database on the server its placement records; a schema-mode tenant's migrations and
rotations act in its schema of the pooled database, and a provider that does not rotate a
tenant's mode refuses it, naming the tenant, the provider, the mode and why."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from tenantops.catalog import Catalog, Placement, Tenant
from tenantops.config import Settings
from tenantops.provisioning.plans import StepInputs
from tenantops.provisioning.providers.database import DatabaseLogin, DatabaseSchema, RetiredLogin
from tenantops.provisioning.providers.registry import build_providers
from tenantops.provisioning.providers.secrets import ConnectionSecret
from tenantops.provisioning.run_requests import (
    prepare_migration,
    prepare_onboarding,
    prepare_renewal,
    prepare_rotation,
)
from tenantops.provisioning.schema_migrations import MigrationSource
from tenantops.provisioning.spec import TenantSpec

from .conftest import fast_settings, spec_for


def tenant(slug: str = "acme") -> Tenant:
    now = dt.datetime.now(dt.timezone.utc)
    return Tenant(
        id="t1", slug=slug, display_name="Acme", custom_domain=f"{slug}.example.test",
        plan="standard", admin_email="admin@example.test", tags={}, status="active",
        created_at=now, updated_at=now, registered_at=now, database_name=f"tenant_{slug}",
        database_login=f"{slug}_app", database_secret=f"{slug}-database-password",
        dns_records={}, hostname=None, certificate_thumbprint=None,
        certificate_expires_at=None, organization_id=None)


ON_TWO = Placement(state="current", server="two", mode="database", database="tenant_acme")
POOLED = Placement(state="current", server="two", mode="schema", database="pool_free",
                   schema="tenant_acme")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return fast_settings(tmp_path / "data")


@pytest.fixture
def source(tmp_path: Path) -> MigrationSource:
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0001_users.sql").write_text("CREATE TABLE users (id INTEGER PRIMARY KEY);")
    return MigrationSource.load(folder, "sql")


def inputs(settings: Settings, previewing: bool = True,
           outputs: dict[str, dict[str, Any]] | None = None) -> StepInputs:
    spec = TenantSpec.stored(tenant().spec_fields())
    return StepInputs(spec, None, settings, outputs or {},  # type: ignore[arg-type]
                      previewing=previewing)


def test_a_rotation_acts_on_the_server_the_placement_records(settings: Settings) -> None:
    prepared = prepare_rotation(tenant(), settings, request="fleet:f1/1",
                                placements=[ON_TWO])
    rotation = prepared.options["rotation"]
    assert rotation["server"] == "two"
    assert rotation["connection_secret"] == "acme-database-url"
    steps = {s.name: s for s in prepared.plan.steps}
    login = steps["switch_database_login"].build(inputs(settings))
    retired = steps["retire_previous_login"].build(inputs(settings))
    assert isinstance(login, DatabaseLogin)
    assert login.server == "two"
    assert login.key == "login:two/acme_app_b"
    assert isinstance(retired, RetiredLogin)
    assert retired.server == "two"
    assert list(steps).index("switch_connection_secret") == (
        list(steps).index("switch_database_login") + 1)


def test_a_rotation_switches_the_connection_secret_to_the_new_login(
        settings: Settings) -> None:
    prepared = prepare_rotation(tenant(), settings, request="fleet:f1/1",
                                placements=[ON_TWO])
    step = next(s for s in prepared.plan.steps if s.name == "switch_connection_secret")
    secret = step.build(inputs(settings, previewing=False, outputs={"switch_database_login": {
        "login": "acme_app_b", "location": "postgresql://acme_app_b@db2:5432/tenant_acme"}}))
    assert secret == ConnectionSecret("acme-database-url",
                                      "postgresql://acme_app_b@db2:5432/tenant_acme",
                                      "acme_app_b", "acme-database-password-b")


def test_a_tenant_placed_before_placements_were_recorded_rotates_on_the_default_server(
        settings: Settings) -> None:
    prepared = prepare_rotation(tenant(), settings, request="fleet:f1/1")
    assert prepared.options["rotation"]["server"] == "default"
    assert "switch_connection_secret" not in [s.name for s in prepared.plan.steps]


def test_a_schema_migration_opens_the_database_where_the_placement_says(
        settings: Settings, source: MigrationSource) -> None:
    prepared = prepare_migration(tenant(), settings, revision=None, request="fleet:f1/1",
                                 source=source, placements=[ON_TWO])
    built = prepared.plan.steps[0].build(inputs(settings))
    assert isinstance(built, DatabaseSchema)
    assert (built.server, built.database, built.owner) == ("two", "tenant_acme", "acme_app")
    assert built.key == "schema:two/tenant_acme"


def test_a_rotation_of_a_schema_mode_tenant_switches_logins_in_its_schema(
        settings: Settings) -> None:
    """The pooled database and the tenant's schema in it (the real run:
    tests/provisioning/providers/test_postgres_schema_rotation.py)."""
    prepared = prepare_rotation(tenant(), settings, request="fleet:f1/1", placements=[POOLED])
    assert prepared.options["rotation"]["schema"] == "tenant_acme"
    steps = {s.name: s for s in prepared.plan.steps}
    login = steps["switch_database_login"].build(inputs(settings))
    retired = steps["retire_previous_login"].build(inputs(settings))
    assert isinstance(login, DatabaseLogin)
    assert (login.database, login.schema, login.owner, login.login, login.server) == (
        "pool_free", "tenant_acme", "acme_app", "acme_app_b", "two")
    assert isinstance(retired, RetiredLogin)
    assert (retired.database, retired.schema, retired.login) == (
        "pool_free", "tenant_acme", "acme_app")


def test_a_rotation_opened_before_schemas_were_recorded_switches_in_the_database(
        settings: Settings) -> None:
    prepared = prepare_rotation(tenant(), settings, request="fleet:f1/1", placements=[ON_TWO])
    options = dict(prepared.options)
    options["rotation"] = {k: v for k, v in options["rotation"].items() if k != "schema"}
    from tenantops.provisioning.plans.upkeep import rotation_plan

    step = next(s for s in rotation_plan(options).steps if s.name == "switch_database_login")
    built = step.build(inputs(settings))
    assert isinstance(built, DatabaseLogin)
    assert (built.database, built.schema) == ("tenant_acme", None)


def test_a_schema_migration_of_a_schema_mode_tenant_runs_in_its_schema(
        settings: Settings, source: MigrationSource) -> None:
    """The pooled database, the tenant's login, its schema first on the search path (the
    real run: tests/provisioning/providers/test_postgres_schema_migrations.py)."""
    prepared = prepare_migration(tenant(), settings, revision=None, request="fleet:f1/1",
                                 source=source, placements=[POOLED])
    built = prepared.plan.steps[0].build(inputs(settings))
    assert isinstance(built, DatabaseSchema)
    assert (built.server, built.database, built.schema, built.owner) == (
        "two", "pool_free", "tenant_acme", "acme_app")
    assert built.key == "schema:two/pool_free.tenant_acme"


def test_onboarding_a_schema_mode_tenant_with_migrations_on_onboarding_migrates_it(
        tmp_path: Path, source: MigrationSource) -> None:
    settings = fast_settings(
        tmp_path / "data",
        providers={"database": {"name": "postgres",
                                "postgres": {"admin_url": "postgresql://admin@localhost/x"}}},
        plans={"free": {"database": {"mode": "schema"}}},
        migrations={"folder": source.folder, "on_onboarding": True})
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    catalog.migrate()
    try:
        providers = build_providers(settings, catalog, serve=False)
        prepared = prepare_onboarding(spec_for("acme", plan="free"), settings, providers)
        assert prepared.options["schema"]["revision"] == source.resolve(None)
        assert "migrate_schema" in [s.name for s in prepared.plan.steps]
    finally:
        catalog.close()


def test_a_fleet_skips_a_tenant_whose_mode_the_provider_does_not_rotate() -> None:
    """A provider that rotates database-mode tenants only (none does today but the seam is
    there: `DatabaseProvider.rotation_modes`) skips a schema-mode tenant, naming the tenant,
    the provider, the mode and why; postgres rotates both modes."""
    from types import SimpleNamespace

    from tenantops.provisioning.fleet import _unrotatable

    def engine(placements: list[Placement], modes: tuple[str, ...]) -> Any:
        return SimpleNamespace(
            catalog=SimpleNamespace(placements_of=lambda _slug: placements),
            providers=SimpleNamespace(database=SimpleNamespace(
                label="database:example", rotation_modes=modes)))

    reason = _unrotatable(engine([POOLED], ("database",)), tenant())
    assert reason is not None
    assert ("tenant = 'acme': is placed in schema mode (schema tenant_acme in the pooled "
            "database pool_free on server two); the database provider database:example "
            "cannot rotate credentials of schema-mode tenants (it rotates: database; "
            "tenantops needs SQL access to the tenant's logins") in reason
    assert _unrotatable(engine([ON_TWO], ("database",)), tenant()) is None
    assert _unrotatable(engine([], ("database",)), tenant()) is None
    assert _unrotatable(engine([POOLED], ("database", "schema")), tenant()) is None


def test_a_fleet_run_opens_for_a_tenant_whose_plan_is_not_one_of_the_defaults(
        tmp_path: Path, source: MigrationSource) -> None:
    """The tenant's plan was checked when it was stored; a rotation, migration or renewal
    opened by a fleet (on a worker, with no request's plans at hand) takes it as stored
    (a plan ``pooled`` was refused as "must be one of free, standard, premium")."""
    settings = fast_settings(tmp_path / "data", plans={"pooled": {}})
    pooled = dataclasses.replace(tenant(), plan="pooled",
                                 certificate_thumbprint="AB" * 20)
    assert prepare_rotation(pooled, settings, request="fleet:f1/1").spec.plan == "pooled"
    assert prepare_migration(pooled, settings, revision=None, request="fleet:f1/1",
                             source=source).spec.plan == "pooled"
    assert prepare_renewal(pooled, request="fleet:f1/1").spec.plan == "pooled"


@pytest.mark.parametrize(("name", "modes"), [("postgres", ("database", "schema")),
                                              ("sqlite", ())])
def test_a_database_provider_rotates_the_modes_it_has_when_it_manages_two_logins(
        tmp_path: Path, name: str, modes: tuple[str, ...]) -> None:
    """postgres rotates both of its modes; sqlite (no logins to switch) none, so a fleet
    rotation asked of it is refused (azure-postgres with admin_url, database mode:
    tests/azure/test_postgres_sql.py)."""
    settings = fast_settings(
        tmp_path / "data",
        providers={"database": {"name": name,
                                "postgres": {"admin_url": "postgresql://admin@localhost/x"}}})
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    catalog.migrate()
    try:
        providers = build_providers(settings, catalog, serve=False)
        assert providers.database.rotation_modes == modes
    finally:
        catalog.close()
