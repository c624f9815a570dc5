"""Onboarding and offboarding through the engine (DBOS, SQLite) with every Azure provider
against the ARM fake: App Service hostname + managed certificate + SNI, Azure DNS, Azure SQL
or PostgreSQL flexible server, Key Vault. The fake's clock runs 1000 times faster than real
time, so the certificate's five minutes of issuance take a few of the engine's durable polls.

Shown here, as issue #7 asks: a certificate that takes several polls, a 429 storm ridden out
by the engine's retries, and a conflict that fails the run with ARM's message and succeeds on
retry once the conflict is removed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from tenantops.catalog import Catalog, Run
from tenantops.config import Settings
from tenantops.provisioning.drift import DriftChecker
from tenantops.provisioning.engine import Engine
from tenantops.provisioning.providers.azure import AzureConnection
from tenantops.provisioning.providers.catalog import CatalogProvider
from tenantops.provisioning.providers.database import DatabaseProvider
from tenantops.provisioning.providers.database.azure_postgres import AzurePostgresDatabases
from tenantops.provisioning.providers.database.azure_sql import AzureSqlDatabases
from tenantops.provisioning.providers.dns.azure_dns import AzureDns
from tenantops.provisioning.providers.organization.local import LocalOrganizations
from tenantops.provisioning.providers.registry import Providers
from tenantops.provisioning.providers.secrets.azure_key_vault import KeyVaultSecrets
from tenantops.provisioning.providers.webhost.azure_app_service import AzureAppService
from tenantops.provisioning.run_requests import TenantChange
from tenantops.provisioning.spec import TenantSpec
from tests.azure.conftest import (
    APP,
    PG_SERVER,
    RESOURCE_GROUP,
    RG_SCOPE,
    SQL_SERVER,
    ZONE,
    name_server_lookup,
)
from tests.azure_fake import SUBSCRIPTION, FakeAzure, FakeSite, Fault

DatabaseKind = Literal["azure-sql", "azure-postgres"]
RUN_TIMEOUT = 60.0
POLL = 0.05


def azure_settings(data_dir: Path, fake: FakeAzure, database: DatabaseKind) -> Settings:
    """Settings naming the Azure providers, as an operator's tenantops.toml would."""
    return Settings.model_validate({
        "data_dir": data_dir,
        "engine": {"executor_id": "azure-tests", "retry_initial_seconds": 0.02,
                   "retry_max_seconds": 0.1, "max_attempts": 12, "serve_embedded": False},
        "azure": {"subscription_id": SUBSCRIPTION, "resource_group": RESOURCE_GROUP},
        "providers": {
            "secrets": {"name": "key-vault", "key_vault": {"vault_url": fake.key_vault.url}},
            "database": {"name": database,
                         "azure_sql": {"server": SQL_SERVER, "elastic_pool": "tenants",
                                       "poll_seconds": POLL},
                         "azure_postgres": {"server": PG_SERVER, "poll_seconds": POLL}},
            "dns": {"name": "azure-dns", "zones": [ZONE], "propagation_poll_seconds": POLL},
            "webhost": {"name": "azure-app-service",
                        "azure_app_service": {"app_name": APP, "poll_seconds": POLL}},
        },
    })


def azure_providers(
    settings: Settings, catalog: Catalog, fake: FakeAzure, *,
    database: Callable[[AzureConnection, KeyVaultSecrets], DatabaseProvider] | None = None,
) -> Providers:
    """What the provider registry builds for these settings, with the fake as transport
    (``database``: builds the database provider instead)."""
    config = settings.providers
    connection = AzureConnection(fake.credential(), SUBSCRIPTION, RESOURCE_GROUP,
                                 transport=fake)
    secrets = KeyVaultSecrets(connection, config.secrets.key_vault)
    if database is not None:
        made = database(connection, secrets)
    elif config.database.name == "azure-sql":
        made = AzureSqlDatabases(connection, config.database.azure_sql)
    else:
        made = AzurePostgresDatabases(connection, config.database.azure_postgres)
    return Providers(
        catalog=CatalogProvider(catalog),
        secrets=secrets,
        database=made,
        dns=AzureDns(connection, config.dns, name_server_lookup=name_server_lookup(fake)),
        webhost=AzureAppService(connection, config.webhost.azure_app_service),
        organization=LocalOrganizations(catalog),
    )


@dataclass
class Stack:
    engine: Engine
    fake: FakeAzure
    site: FakeSite

    def onboard(self, slug: str) -> Run:
        spec = TenantSpec(slug=slug, display_name=f"Tenant {slug}",
                          custom_domain=f"{slug}.{ZONE}", admin_email=f"admin@{slug}.example")
        return self.engine.onboard(spec, requested_by="tests")

    def wait(self, run: Run) -> Run:
        return self.engine.wait(run.id, timeout=RUN_TIMEOUT)


def start_stack(tmp_path: Path, database: DatabaseKind) -> Iterator[Stack]:
    fake = FakeAzure(speedup=1000.0, issuance_seconds=300.0)
    site = fake.app_service.add_site(FakeSite(APP, RESOURCE_GROUP, SUBSCRIPTION))
    fake.dns.add_zone(ZONE, RESOURCE_GROUP)
    fake.sql.add_server(SQL_SERVER, RESOURCE_GROUP)
    fake.postgres.add_server(PG_SERVER, RESOURCE_GROUP)
    fake.authorization.grant(RG_SCOPE, "Contributor")
    fake.authorization.grant(fake.key_vault.resource_id, "Key Vault Secrets Officer")
    settings = azure_settings(tmp_path, fake, database)
    catalog = Catalog.from_settings(settings)
    engine = Engine(settings, catalog=catalog,
                    providers=azure_providers(settings, catalog, fake))
    engine.start()
    try:
        yield Stack(engine, fake, site)
    finally:
        engine.stop()
        catalog.close()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    yield from start_stack(tmp_path, "azure-sql")


@pytest.mark.parametrize("database", ["azure-sql", "azure-postgres"])
def test_onboarding_and_offboarding_through_every_azure_provider(
    tmp_path: Path, database: DatabaseKind
) -> None:
    for stack in start_stack(tmp_path, database):
        host = f"acme.{ZONE}"

        onboarded = stack.wait(stack.onboard("acme"))

        assert (onboarded.status, onboarded.error) == ("succeeded", None)
        tenant = stack.engine.catalog.get_tenant("acme")
        assert tenant.status == "active"
        binding = stack.site.bindings[host]
        assert binding["sslState"] == "SniEnabled"
        assert binding["thumbprint"] == tenant.certificate_thumbprint
        assert stack.fake.dns.answers(host, "CNAME") == [f"{APP}.azurewebsites.net"]
        assert stack.fake.dns.answers(f"asuid.{host}", "TXT") == [stack.site.verification_id]
        assert "acme-database-password" in stack.fake.key_vault.secrets
        if database == "azure-sql":
            assert stack.fake.sql.servers[SQL_SERVER].databases["tenant_acme"].properties[
                "status"] == "Online"
        else:
            assert "tenant_acme" in stack.fake.postgres.servers[PG_SERVER].databases
        certificate = onboarded.step("issue_certificate")
        assert certificate.attempts >= 3, "the certificate should take several polls"
        assert certificate.outputs["thumbprint"] == tenant.certificate_thumbprint

        offboarded = stack.wait(stack.engine.offboard("acme", requested_by="tests"))

        assert (offboarded.status, offboarded.error) == ("succeeded", None)
        assert stack.site.bindings == {}
        assert stack.fake.app_service.certificates == {}
        assert stack.fake.dns.answers(host, "CNAME") == []
        assert stack.fake.dns.answers(f"asuid.{host}", "TXT") == []
        assert stack.fake.key_vault.secrets["acme-database-password"].deleted_at is not None
        assert stack.fake.sql.servers[SQL_SERVER].databases == {}
        assert stack.fake.postgres.servers[PG_SERVER].databases == {}


def test_a_429_storm_is_ridden_out_by_the_engine(stack: Stack) -> None:
    storm = stack.fake.inject(Fault(429, count=10, retry_after=1, path_contains="/dnsZones/"))

    run = stack.wait(stack.onboard("storm"))

    assert (run.status, run.error) == ("succeeded", None)
    assert storm.count == 0
    dns_attempts = sum(s.attempts for s in run.steps if s.provider == "dns:azure-dns")
    assert dns_attempts >= 3 + 10


def test_a_conflict_fails_the_run_with_arms_message_and_retry_succeeds_once_fixed(
    stack: Stack,
) -> None:
    other = stack.fake.app_service.add_site(FakeSite("legacy-app", RESOURCE_GROUP, SUBSCRIPTION))
    other.bindings[f"clash.{ZONE}"] = {"sslState": "Disabled"}

    failed = stack.wait(stack.onboard("clash"))

    assert failed.status == "failed"
    assert failed.failed_step == "bind_hostname"
    assert failed.error is not None
    assert f"already bound to another app ({other.id})" in failed.error

    other.bindings.clear()
    retried = stack.wait(stack.engine.retry(failed.id))

    assert (retried.status, retried.error) == ("succeeded", None)
    assert stack.site.bindings[f"clash.{ZONE}"]["sslState"] == "SniEnabled"


def details_of(catalog: Catalog, slug: str) -> dict[str, object]:
    placement = catalog.placement_of(slug)
    assert placement is not None, f"{slug} has no recorded placement"
    return dict(placement.details)


def sql_stack(tmp_path: Path, plans: dict[str, object]) -> tuple[Stack, Catalog]:
    """A started engine on the Azure fake with azure-sql (pools ``tenants`` and ``gold``) and
    ``plans``; the caller stops it (``stack.engine.stop()``, ``catalog.close()``)."""
    fake = FakeAzure(speedup=1000.0, issuance_seconds=300.0)
    site = fake.app_service.add_site(FakeSite(APP, RESOURCE_GROUP, SUBSCRIPTION))
    fake.dns.add_zone(ZONE, RESOURCE_GROUP)
    fake.sql.add_server(SQL_SERVER, RESOURCE_GROUP, pools=("tenants", "gold"))
    fake.authorization.grant(RG_SCOPE, "Contributor")
    fake.authorization.grant(fake.key_vault.resource_id, "Key Vault Secrets Officer")
    values = azure_settings(tmp_path, fake, "azure-sql").model_dump(exclude_unset=True)
    values["plans"] = plans
    settings = Settings.model_validate(values)
    catalog = Catalog.from_settings(settings)
    engine = Engine(settings, catalog=catalog, providers=azure_providers(settings, catalog, fake))
    engine.start()
    return Stack(engine, fake, site), catalog


def test_a_plans_elastic_pool_is_where_its_tenants_database_goes_and_follows_a_plan_change(
        tmp_path: Path) -> None:
    """Issue 14 §3 on Azure SQL: plans.<name>.database.elastic_pool decides the pool at
    onboarding; a plan change moves the database into the new plan's pool in place (no copy)
    and the placement's record follows."""
    stack, catalog = sql_stack(tmp_path, {
        "standard": {}, "premium": {"database": {"elastic_pool": "gold"}},
        "single": {"database": {"sku": "S0"}}})
    engine, fake = stack.engine, stack.fake
    try:
        spec = TenantSpec(slug="acme", display_name="Acme", custom_domain=f"acme.{ZONE}",
                          admin_email="admin@acme.example", plan="premium")
        onboarded = stack.wait(engine.onboard(spec, requested_by="tests"))
        assert (onboarded.status, onboarded.error) == ("succeeded", None)
        stored = fake.sql.servers[SQL_SERVER].databases["tenant_acme"]
        assert str(stored.properties["elasticPoolId"]).endswith("/elasticPools/gold")
        assert details_of(catalog, "acme") == {"elastic_pool": "gold"}

        changed = engine.update("acme", TenantChange(plan="standard"), requested_by="tests")
        assert changed is not None
        updated = stack.wait(changed)
        assert (updated.status, updated.error) == ("succeeded", None)
        assert str(stored.properties["elasticPoolId"]).endswith("/elasticPools/tenants")
        assert fake.sql.servers[SQL_SERVER].databases["tenant_acme"] is stored, "moved in place"
        assert len(fake.calls("DELETE", "/databases/")) == 0
        assert details_of(catalog, "acme") == {}, "the record follows the database"
        assert updated.step("record_database_profile").status == "succeeded"

    finally:
        engine.stop()
        catalog.close()


def database_drift(engine: Engine) -> str:
    """The drift state of acme's database, as `tenantops tenants check` reports it."""
    report = DriftChecker.of(engine).check("acme")
    return next(r.state for r in report.resources if r.step == "create_database")


def test_a_plans_sku_is_applied_on_onboarding_and_on_each_plan_change(
        tmp_path: Path) -> None:
    """Issue 14 §3 on Azure SQL: plans.<name>.database.sku makes a single database of that
    SKU; a plan change pool -> SKU -> SKU -> pool is applied to the same database in place
    (one PATCH each, no copy), previewed first, and recorded with the placement. A change
    Azure fails leaves the record as it was and fails the run with Azure's message; the
    retry applies it. An unknown SKU fails the run naming the setting and the value."""
    stack, catalog = sql_stack(tmp_path, {
        "standard": {}, "premium": {"database": {"sku": "S0"}},
        "bigger": {"database": {"sku": "S1"}}, "biggest": {"database": {"sku": "P1"}},
        "typo": {"database": {"sku": "S99"}}})
    engine, fake = stack.engine, stack.fake

    def change_to(plan: str) -> Run:
        changed = engine.update("acme", TenantChange(plan=plan), requested_by="tests")
        assert changed is not None
        return stack.wait(changed)

    try:
        spec = TenantSpec(slug="acme", display_name="Acme", custom_domain=f"acme.{ZONE}",
                          admin_email="admin@acme.example", plan="premium")
        onboarded = stack.wait(engine.onboard(spec, requested_by="tests"))
        assert (onboarded.status, onboarded.error) == ("succeeded", None)
        stored = fake.sql.servers[SQL_SERVER].databases["tenant_acme"]
        assert stored.properties["currentServiceObjectiveName"] == "S0"
        assert stored.properties.get("elasticPoolId") is None
        (put,) = fake.calls("PUT", "/databases/")
        assert put.body is not None
        assert put.body["sku"] == {"name": "S0"}
        assert details_of(catalog, "acme") == {"sku": "S0"}

        preview = engine.preview_update("acme", TenantChange(plan="bigger"))
        actions = {c.step: (c.action, c.differences) for c in preview.changes}
        assert preview.diff["plan"] == {"from": "premium", "to": "bigger"}
        assert actions["create_database"] == ("update", ("sku",))
        assert actions["record_database_profile"] == ("update", ("sku",))
        assert fake.calls("PATCH", "/databases/") == [], "a preview changes nothing"

        updated = change_to("bigger")
        assert (updated.status, updated.error) == ("succeeded", None)
        assert stored.properties["currentServiceObjectiveName"] == "S1"
        assert details_of(catalog, "acme") == {"sku": "S1"}
        assert updated.step("record_database_profile").status == "succeeded"
        assert database_drift(engine) == "in_sync", "the check compares with the new SKU"

        fake.sql.fail_next("TierChangeUnsupportedDueToCDCEnabledDatabase",
                           "The database cannot update its sku because it is enabled for CDC.")
        failed = change_to("biggest")
        assert (failed.status, failed.failed_step) == ("failed", "create_database")
        assert failed.error is not None
        assert (
            "TierChangeUnsupportedDueToCDCEnabledDatabase: The database cannot update its "
            "sku because it is enabled for CDC.") in failed.error
        assert failed.step("record_database_profile").status != "succeeded"
        assert details_of(catalog, "acme") == {"sku": "S1"}, "the record stays as it was"
        assert stored.properties["currentServiceObjectiveName"] == "S1"
        retried = stack.wait(engine.retry(failed.id, requested_by="tests"))
        assert (retried.status, retried.error) == ("succeeded", None)
        assert stored.properties["currentServiceObjectiveName"] == "P1"
        assert details_of(catalog, "acme") == {"sku": "P1"}

        typo = change_to("typo")
        assert (typo.status, typo.failed_step) == ("failed", "create_database")
        assert typo.error is not None
        assert "[plans.<name>.database] sku = 'S99'" in typo.error
        assert "InvalidSku: The sku 'S99' specified is invalid." in typo.error
        assert details_of(catalog, "acme") == {"sku": "P1"}

        back = change_to("standard")
        assert (back.status, back.error) == ("succeeded", None)
        assert str(stored.properties["elasticPoolId"]).endswith("/elasticPools/tenants")
        assert details_of(catalog, "acme") == {}
        assert database_drift(engine) == "in_sync", "back in the provider's pool"
        pool_id = stored.properties["elasticPoolId"]
        stored.properties.update(elasticPoolId=None, currentServiceObjectiveName="S0")
        assert database_drift(engine) == "drifted", "moved out of the pool by hand"
        stored.properties.update(elasticPoolId=pool_id, currentServiceObjectiveName="ElasticPool")
        assert [str((p.body or {}).get("sku")) for p in fake.calls("PATCH", "/databases/")] == [
            "{'name': 'S1'}", "{'name': 'P1'}", "{'name': 'P1'}", "{'name': 'S99'}",
            "{'name': 'ElasticPool'}"], "S1; P1 failed, then retried; S99 refused; the pool"
        assert len(fake.calls("PUT", "/databases/")) == 1
        assert fake.calls("DELETE", "/databases/") == []
        assert fake.sql.servers[SQL_SERVER].databases["tenant_acme"] is stored, "in place"
    finally:
        engine.stop()
        catalog.close()
