"""``azure-sql`` and ``azure-postgres`` against their fakes: creation as a long-running
operation polled through GET, convergence, removal, and the requests as the SDK sends them."""

from __future__ import annotations

import dataclasses

import pytest

from tenantops.errors import PermanentProviderError
from tenantops.provisioning.providers.base import Pending, Ready
from tenantops.provisioning.providers.database import Database
from tests.azure.conftest import PG_SERVER, RESOURCE_GROUP, SQL_SERVER, AzureWorld, settle
from tests.azure_fake import SUBSCRIPTION

DB = Database("tenant_acme", "acme_app", "acme-database-password")
POOL_ID = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/"
           f"Microsoft.Sql/servers/{SQL_SERVER}/elasticPools/tenants")


def test_sql_database_is_pending_while_creating_then_online_in_the_pool(
    world: AzureWorld,
) -> None:
    first = world.sql.ensure(DB)
    ready, calls = settle(world.sql, "ensure", DB, world.fake)

    assert isinstance(first, Pending)
    assert "accepted the request to create database tenant_acme" in first.reason
    assert calls == 5  # created in 60 s: polls at 0, 15, 30, 45 s pending, 60 s online
    assert ready.outputs == {
        "database": "tenant_acme", "login": "acme_app", "secret": "acme-database-password",
        "server": f"{SQL_SERVER}.database.windows.net", "elastic_pool": "tenants",
        "location": f"mssql://{SQL_SERVER}.database.windows.net/tenant_acme"}
    (put,) = world.fake.calls("PUT", "/databases/")
    assert put.api_version == "2025-01-01"
    assert put.body == {"location": "westeurope", "properties": {
        "elasticPoolId": POOL_ID, "collation": "SQL_Latin1_General_CP1_CI_AS"}}


def test_sql_database_in_another_pool_is_moved(world: AzureWorld) -> None:
    world.fake.sql.servers[SQL_SERVER].pools.add("old")
    settle(world.sql, "ensure", DB, world.fake)
    stored = world.fake.sql.servers[SQL_SERVER].databases["tenant_acme"]
    stored.properties["elasticPoolId"] = POOL_ID.replace("/tenants", "/old")

    moving = world.sql.ensure(DB)
    ready, _ = settle(world.sql, "ensure", DB, world.fake)

    assert isinstance(moving, Pending)
    assert "move into pool tenants" in moving.reason
    assert stored.properties["elasticPoolId"] == POOL_ID
    assert ready.outputs["elastic_pool"] == "tenants"


def test_sql_database_removal_waits_until_it_is_gone(world: AzureWorld) -> None:
    settle(world.sql, "ensure", DB, world.fake)

    first = world.sql.remove(DB)
    _ready, _ = settle(world.sql, "remove", DB, world.fake)

    assert isinstance(first, Pending)
    assert "tenant_acme" not in world.fake.sql.servers[SQL_SERVER].databases
    assert world.sql.observe(DB) is None
    assert isinstance(world.sql.remove(DB), Ready)


def test_sql_sdk_poller_completes_against_the_fake(world: AzureWorld) -> None:
    from azure.mgmt.sql.models import Database as ArmDatabase
    from azure.mgmt.sql.models import DatabaseProperties

    poller = world.sql.client.databases.begin_create_or_update(
        RESOURCE_GROUP, SQL_SERVER, "tenant_poll", ArmDatabase(
            location="westeurope", properties=DatabaseProperties(elastic_pool_id=POOL_ID)))
    result = poller.result()

    assert result.status == "Online"
    assert sum(world.fake.clock.slept) >= 60


def test_postgres_database_appears_when_the_operation_completes(world: AzureWorld) -> None:
    first = world.postgres.ensure(DB)
    ready, calls = settle(world.postgres, "ensure", DB, world.fake)

    assert isinstance(first, Pending)
    assert calls == 4  # created in 30 s: polls at 0, 10, 20 s pending, 30 s there
    assert ready.outputs["location"] == \
        f"postgresql://acme_app@{PG_SERVER}.postgres.database.azure.com:5432/tenant_acme"
    puts = world.fake.calls("PUT", "/databases/")
    assert {p.api_version for p in puts} == {"2026-10-01"}
    assert puts[0].body == {"properties": {"charset": "UTF8", "collation": "en_US.utf8"}}
    assert len(world.fake.postgres.operations._operations) == 1  # repeated PUTs joined it


def test_postgres_database_with_another_collation_is_refused(world: AzureWorld) -> None:
    world.fake.postgres.servers[PG_SERVER].databases["tenant_acme"] = {
        "charset": "UTF8", "collation": "C"}

    with pytest.raises(PermanentProviderError, match="PostgreSQL cannot change them"):
        world.postgres.ensure(DB)


def test_postgres_database_removal_waits_until_it_is_gone(world: AzureWorld) -> None:
    settle(world.postgres, "ensure", DB, world.fake)

    first = world.postgres.remove(DB)
    settle(world.postgres, "remove", DB, world.fake)

    assert isinstance(first, Pending)
    assert world.postgres.observe(DB) is None
    assert world.postgres.read_metadata(DB) == {}


def test_sql_database_goes_into_its_plans_pool_and_a_plan_change_moves_it_in_place(
        world: AzureWorld) -> None:
    """plans.<name>.database.elastic_pool (issue 14 §3): the plan's pool, not the provider's;
    another plan's pool is the same PUT with the new elasticPoolId, no copy."""
    world.fake.sql.servers[SQL_SERVER].pools.add("premium")
    premium = dataclasses.replace(DB, elastic_pool="premium")
    ready, _ = settle(world.sql, "ensure", premium, world.fake)
    stored = world.fake.sql.servers[SQL_SERVER].databases["tenant_acme"]
    assert stored.properties["elasticPoolId"] == POOL_ID.replace("/tenants", "/premium")
    assert ready.outputs["elastic_pool"] == "premium"

    moving = world.sql.ensure(DB)  # the plan changed to one without a pool of its own
    assert isinstance(moving, Pending)
    assert "move into pool tenants" in moving.reason
    ready, _ = settle(world.sql, "ensure", DB, world.fake)
    assert stored.properties["elasticPoolId"] == POOL_ID
    assert ready.outputs["elastic_pool"] == "tenants"
    assert len(world.fake.calls("DELETE", "/databases/")) == 0, "moved in place, never dropped"


def test_sql_database_for_a_pool_the_server_lacks_fails_with_azures_answer(
        world: AzureWorld) -> None:
    with pytest.raises(PermanentProviderError, match="ElasticPoolNotFound"):
        settle(world.sql, "ensure", dataclasses.replace(DB, elastic_pool="gold"), world.fake)
