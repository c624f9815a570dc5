"""Moving an Azure SQL tenant to another logical server (issue 14 §4) through the engine
against the ARM fake: Azure SQL's database copy (``createMode: Copy``) on the target server,
then the move's switch and the old copy's removal after the grace period. tenantops holds no
SQL login there, so a move needs the tenant suspended."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tenantops.catalog import Catalog, Run
from tenantops.config import Settings
from tenantops.errors import PlacementError
from tenantops.provisioning.engine import Engine
from tenantops.provisioning.providers.azure import AzureConnection
from tenantops.provisioning.providers.catalog import CatalogProvider
from tenantops.provisioning.providers.database.azure_sql import AzureSqlDatabases
from tenantops.provisioning.providers.dns.azure_dns import AzureDns
from tenantops.provisioning.providers.organization.local import LocalOrganizations
from tenantops.provisioning.providers.registry import Providers
from tenantops.provisioning.providers.secrets.azure_key_vault import KeyVaultSecrets
from tenantops.provisioning.providers.webhost.azure_app_service import AzureAppService
from tenantops.provisioning.spec import TenantSpec
from tests.azure.conftest import (
    APP,
    RESOURCE_GROUP,
    RG_SCOPE,
    ZONE,
    name_server_lookup,
)
from tests.azure.test_onboarding import RUN_TIMEOUT, azure_settings
from tests.azure_fake import SUBSCRIPTION, FakeAzure, FakeSite

PARKING = "func-tenantops-suspended"
SERVER_A, SERVER_B = "tenantops-sql-a", "tenantops-sql-b"


@dataclass
class MoveStack:
    engine: Engine
    fake: FakeAzure
    catalog: Catalog

    def wait(self, run: Run) -> Run:
        return self.engine.wait(run.id, timeout=RUN_TIMEOUT)

    def database(self, server: str) -> dict[str, int] | None:
        found = self.fake.sql.database(server, "tenant_acme")
        return None if found is None else found.tables

    def placed_on(self) -> str:
        current = self.catalog.placements.current("acme")
        assert current is not None
        return current.server


def move_settings(tmp_path: Path, fake: FakeAzure) -> Settings:
    """Two logical servers in one pool, and the suspended-page app suspension needs."""
    values = azure_settings(tmp_path, fake, "azure-sql").model_dump(exclude_unset=True)
    database = values["providers"]["database"]
    database["azure_sql"] = {"elastic_pool": "tenants", "poll_seconds": 0.05}
    database["servers"] = [{"name": "a", "server": SERVER_A}, {"name": "b", "server": SERVER_B}]
    database["move_grace_seconds"] = 0.0
    values["providers"]["webhost"]["azure_app_service"]["suspended_app_name"] = PARKING
    return Settings.model_validate(values)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[MoveStack]:
    fake = FakeAzure(speedup=1000.0, issuance_seconds=300.0)
    fake.app_service.add_site(FakeSite(APP, RESOURCE_GROUP, SUBSCRIPTION))
    fake.app_service.add_site(FakeSite(PARKING, RESOURCE_GROUP, SUBSCRIPTION))
    fake.dns.add_zone(ZONE, RESOURCE_GROUP)
    fake.sql.add_server(SERVER_A, RESOURCE_GROUP)
    fake.sql.add_server(SERVER_B, RESOURCE_GROUP)
    fake.authorization.grant(RG_SCOPE, "Contributor")
    fake.authorization.grant(fake.key_vault.resource_id, "Key Vault Secrets Officer")
    settings = move_settings(tmp_path, fake)
    catalog = Catalog.from_settings(settings)
    connection = AzureConnection(fake.credential(), SUBSCRIPTION, RESOURCE_GROUP, transport=fake)
    config = settings.providers
    providers = Providers(
        catalog=CatalogProvider(catalog),
        secrets=KeyVaultSecrets(connection, config.secrets.key_vault),
        database=AzureSqlDatabases(connection, config.database.azure_sql,
                                   {"a": (SERVER_A, None), "b": (SERVER_B, None)}),
        dns=AzureDns(connection, config.dns, name_server_lookup=name_server_lookup(fake)),
        webhost=AzureAppService(connection, config.webhost.azure_app_service),
        organization=LocalOrganizations(catalog),
    )
    engine = Engine(settings, catalog=catalog, providers=providers)
    engine.start()
    try:
        yield MoveStack(engine, fake, catalog)
    finally:
        engine.stop()
        catalog.close()


def onboard_and_suspend(stack: MoveStack) -> None:
    spec = TenantSpec(slug="acme", display_name="Acme", custom_domain=f"acme.{ZONE}",
                      admin_email="admin@acme.example")
    onboarded = stack.wait(stack.engine.onboard(spec, requested_by="tests"))
    assert (onboarded.status, onboarded.error) == ("succeeded", None)
    assert stack.placed_on() == "a"
    stack.fake.sql.servers[SERVER_A].databases["tenant_acme"].tables = {"orders": 3, "users": 2}

    with pytest.raises(PlacementError) as refused:
        stack.engine.move("acme", server="b", requested_by="tests")
    assert str(refused.value).startswith(
        "tenant 'acme' is not suspended: moving its data on azure-sql needs it suspended "
        "(tenantops holds no SQL login on Azure SQL, so it cannot freeze writes while the "
        "database is copied, and writes after the copy would be lost); run tenantops tenants "
        "suspend acme, move it, then resume it")
    assert stack.fake.calls("PUT", f"/servers/{SERVER_B}/databases/") == []

    suspended = stack.wait(stack.engine.suspend("acme", reason="move to server b",
                                                requested_by="tests"))
    assert (suspended.status, suspended.error) == ("succeeded", None)


def test_a_suspended_tenant_moves_to_another_server_by_azure_sqls_database_copy(
        stack: MoveStack) -> None:
    onboard_and_suspend(stack)

    moved = stack.wait(stack.engine.move("acme", server="b", requested_by="tests"))

    assert (moved.status, moved.error) == ("succeeded", None)
    (copy,) = stack.fake.calls("PUT", f"/servers/{SERVER_B}/databases/")
    assert copy.body is not None
    assert copy.body["properties"]["createMode"] == "Copy"
    assert copy.body["properties"]["sourceDatabaseId"] == (
        f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/"
        f"Microsoft.Sql/servers/{SERVER_A}/databases/tenant_acme")
    assert copy.body["properties"]["elasticPoolId"].endswith(
        f"/servers/{SERVER_B}/elasticPools/tenants")
    assert stack.database(SERVER_B) == {"orders": 3, "users": 2}, "the data came along"
    assert stack.database(SERVER_A) is None, "the old copy went after the grace period"
    assert stack.placed_on() == "b"
    assert moved.step("open_target").outputs["location"] == \
        f"mssql://{SERVER_B}.database.windows.net/tenant_acme"
    assert moved.step("check_copy").status == "succeeded"
    assert "the copy makes the target database" in str(moved.step("create_target").message)

    resumed = stack.wait(stack.engine.resume("acme", requested_by="tests"))
    assert (resumed.status, resumed.error) == ("succeeded", None)


def test_a_copy_azure_fails_leaves_the_tenant_on_its_server_and_can_be_abandoned(
        stack: MoveStack) -> None:
    onboard_and_suspend(stack)
    stack.fake.sql.fail_next("DatabaseCopyLimitPerReplicaReached",
                             "User reached the limit of concurrent database copies.")

    failed = stack.wait(stack.engine.move("acme", server="b", requested_by="tests"))

    assert (failed.status, failed.failed_step) == ("failed", "copy_data")
    assert failed.error is not None
    assert ("DatabaseCopyLimitPerReplicaReached: User reached the limit of concurrent "
            "database copies.") in failed.error
    assert stack.placed_on() == "a", "served from the old copy"
    assert stack.database(SERVER_A) == {"orders": 3, "users": 2}
    assert stack.database(SERVER_B) is None

    abandoned = stack.wait(stack.engine.move("acme", abandon=True, requested_by="tests"))
    assert (abandoned.status, abandoned.error) == ("succeeded", None)
    assert [p.state for p in stack.catalog.placements_of("acme")] == ["current"]
    assert stack.database(SERVER_A) == {"orders": 3, "users": 2}

    retried = stack.wait(stack.engine.move("acme", server="b", requested_by="tests"))
    assert (retried.status, retried.error) == ("succeeded", None)
    assert stack.database(SERVER_B) == {"orders": 3, "users": 2}
