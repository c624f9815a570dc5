"""``azure-sql`` and a plan's SKU (issue 14 §3) against the fake: a single database of the
plan's SKU on creation, and a plan change (pool to SKU, SKU to SKU, SKU to pool) applied to
the database in place by ``Databases_Update`` (PATCH), tracked as a long-running operation."""

from __future__ import annotations

import dataclasses

import pytest
from azure.core.rest import HttpRequest

from tenantops.config import AzureSqlDatabaseSettings
from tenantops.errors import PermanentProviderError
from tenantops.provisioning.providers.base import Pending, Ready
from tenantops.provisioning.providers.database import Database
from tenantops.provisioning.providers.database.azure_sql import AzureSqlDatabases
from tests.azure.conftest import RESOURCE_GROUP, SQL_SERVER, AzureWorld, settle
from tests.azure_fake import SUBSCRIPTION

DB = Database("tenant_acme", "acme_app", "acme-database-password")
SERVER_ID = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/"
             f"Microsoft.Sql/servers/{SQL_SERVER}")
POOL_ID = f"{SERVER_ID}/elasticPools/tenants"
DB_URL = f"https://management.azure.com{SERVER_ID}/databases/tenant_acme"


def arm_get(world: AzureWorld) -> dict[str, object]:
    """The database as ARM's GET answers it (raw JSON, as any client would read it)."""
    response = world.sql.client.send_request(
        HttpRequest("GET", DB_URL, params={"api-version": "2025-01-01"}))
    assert response.status_code == 200, response.text()
    body: dict[str, object] = response.json()
    return body


def with_sku(sku: str) -> Database:
    return dataclasses.replace(DB, sku=sku)


def test_a_plans_sku_makes_a_single_database_of_that_sku(world: AzureWorld) -> None:
    ready, _ = settle(world.sql, "ensure", with_sku("S0"), world.fake)

    (put,) = world.fake.calls("PUT", "/databases/")
    assert put.body == {"location": "westeurope", "sku": {"name": "S0"},
                        "properties": {"collation": "SQL_Latin1_General_CP1_CI_AS"}}
    got = arm_get(world)
    assert got["sku"] == {"name": "Standard", "tier": "Standard", "capacity": 10}
    properties = got["properties"]
    assert isinstance(properties, dict)
    assert (properties["currentServiceObjectiveName"],
            properties["requestedServiceObjectiveName"]) == ("S0", "S0")
    assert "elasticPoolId" not in properties
    assert ready.outputs["sku"] == "S0"
    assert "elastic_pool" not in ready.outputs
    assert world.sql.observe(with_sku("S0")) == {
        "name": "tenant_acme", "status": "Online", "elastic_pool": None, "sku": "S0"}


def test_pool_to_sku_to_sku_to_pool_are_changes_in_place(world: AzureWorld) -> None:
    """Each plan change is one PATCH of the same database (never a PUT, never a DELETE);
    the step is Pending while the operation runs and Ready once GET shows the new home."""
    settle(world.sql, "ensure", DB, world.fake)
    stored = world.fake.sql.servers[SQL_SERVER].databases["tenant_acme"]

    moving = world.sql.ensure(with_sku("S1"))
    assert isinstance(moving, Pending)
    assert "accepted the request to change to SKU 'S1'" in moving.reason
    during = arm_get(world)["properties"]
    assert isinstance(during, dict)
    assert (during["currentServiceObjectiveName"], during["requestedServiceObjectiveName"],
            during["status"]) == ("ElasticPool", "S1", "Scaling")
    assert isinstance(world.sql.ensure(with_sku("S1")), Pending)  # joins, sends nothing
    ready, _ = settle(world.sql, "ensure", with_sku("S1"), world.fake)
    assert ready.outputs["sku"] == "S1"
    after = arm_get(world)
    assert "elasticPoolId" not in after["properties"]  # type: ignore[operator]
    assert after["sku"] == {"name": "Standard", "tier": "Standard", "capacity": 20}
    assert after["kind"] == "v12.0,user"

    settle(world.sql, "ensure", with_sku("GP_Gen5_2"), world.fake)
    assert arm_get(world)["sku"] == {"name": "GP_Gen5", "tier": "GeneralPurpose",
                                     "family": "Gen5", "capacity": 2}

    ready, _ = settle(world.sql, "ensure", DB, world.fake)
    assert ready.outputs["elastic_pool"] == "tenants"
    back = arm_get(world)
    assert back["properties"]["elasticPoolId"] == POOL_ID  # type: ignore[index]
    assert back["sku"] == {"name": "ElasticPool", "tier": "Standard", "capacity": 0}

    patches = [p.body for p in world.fake.calls("PATCH", "/databases/")]
    assert patches == [{"sku": {"name": "S1"}}, {"sku": {"name": "GP_Gen5_2"}},
                       {"sku": {"name": "ElasticPool"},
                        "properties": {"elasticPoolId": POOL_ID}}]
    assert len(world.fake.calls("PUT", "/databases/")) == 1, "created once"
    assert world.fake.calls("DELETE", "/databases/") == []
    assert world.fake.sql.servers[SQL_SERVER].databases["tenant_acme"] is stored


def test_a_rerun_once_applied_is_unchanged_and_sends_nothing(world: AzureWorld) -> None:
    settle(world.sql, "ensure", with_sku("S0"), world.fake)
    settle(world.sql, "ensure", with_sku("S1"), world.fake)
    sent = len(world.fake.requests)

    again = world.sql.ensure(with_sku("S1"))

    assert isinstance(again, Ready)
    assert again.changed is False
    assert [r.method for r in world.fake.requests[sent:]] == ["GET"]


def test_a_change_under_way_is_waited_for_after_a_restart(world: AzureWorld) -> None:
    """A new process has lost the operation's status URL: GET's
    requestedServiceObjectiveName shows the change is asked for, so it waits, not PATCH."""
    settle(world.sql, "ensure", with_sku("S0"), world.fake)
    assert isinstance(world.sql.ensure(with_sku("S1")), Pending)
    restarted = AzureSqlDatabases(world.connection, AzureSqlDatabaseSettings(
        server=SQL_SERVER, elastic_pool="tenants", poll_seconds=15))

    waiting = restarted.ensure(with_sku("S1"))
    ready, _ = settle(restarted, "ensure", with_sku("S1"), world.fake)

    assert isinstance(waiting, Pending)
    assert "being scaled to SKU 'S1'" in waiting.reason
    assert len(world.fake.calls("PATCH", "/databases/")) == 1
    assert ready.outputs["sku"] == "S1"


def test_a_failed_sku_change_fails_the_step_with_azures_message(world: AzureWorld) -> None:
    settle(world.sql, "ensure", with_sku("S0"), world.fake)
    world.fake.sql.fail_next("TierChangeUnsupportedDueToCDCEnabledDatabase",
                             "The database cannot update its sku because it is enabled for CDC.")

    with pytest.raises(PermanentProviderError) as failed:
        settle(world.sql, "ensure", with_sku("P1"), world.fake)

    assert str(failed.value) == (
        "Azure's operation to create or update database tenant_acme on SQL server "
        f"{SQL_SERVER} ended Failed (TierChangeUnsupportedDueToCDCEnabledDatabase: The "
        "database cannot update its sku because it is enabled for CDC.); fix what Azure "
        "names, then retry the run (the step starts the operation again)")
    properties = arm_get(world)["properties"]
    assert isinstance(properties, dict)
    assert (properties["currentServiceObjectiveName"],
            properties["requestedServiceObjectiveName"], properties["status"]) == (
        "S0", "S0", "Online"), "a failed change leaves the database as it was"


def test_an_unknown_sku_is_answered_as_azure_does_and_named_with_the_plan_setting(
        world: AzureWorld) -> None:
    raw = world.sql.client.send_request(HttpRequest(
        "PUT", DB_URL, params={"api-version": "2025-01-01"},
        json={"location": "westeurope", "sku": {"name": "Standard"}}))
    assert raw.status_code == 400
    assert raw.json()["error"] == {"code": "InvalidSku",
                                   "message": "The sku 'Standard' specified is invalid."}

    with pytest.raises(PermanentProviderError) as refused:
        world.sql.ensure(with_sku("S99"))

    assert str(refused.value) == (
        f"Azure SQL does not offer SKU 'S99' for database tenant_acme on SQL server "
        f"{SQL_SERVER} (Azure answered 400 InvalidSku: The sku 'S99' specified is invalid.); "
        "it is the tenant's plan's [plans.<name>.database] sku = 'S99': set it to a service "
        "objective name the region offers (az sql db list-editions -l <region>: S0, P1, "
        "GP_Gen5_2, ...), or change the tenant's plan, then retry the run")
    assert "tenant_acme" not in world.fake.sql.servers[SQL_SERVER].databases


def test_an_unknown_sku_on_a_plan_change_leaves_the_database_as_it_was(
        world: AzureWorld) -> None:
    settle(world.sql, "ensure", DB, world.fake)

    with pytest.raises(PermanentProviderError, match=r"sku = 'X9'.*InvalidSku|InvalidSku.*"
                                                     r"sku = 'X9'"):
        world.sql.ensure(with_sku("X9"))

    properties = arm_get(world)["properties"]
    assert properties["elasticPoolId"] == POOL_ID  # type: ignore[index]


def test_the_fake_refuses_a_pool_with_another_sku_as_azure_does(world: AzureWorld) -> None:
    settle(world.sql, "ensure", DB, world.fake)

    mixed = world.sql.client.send_request(HttpRequest(
        "PATCH", DB_URL, params={"api-version": "2025-01-01"},
        json={"sku": {"name": "S0"}, "properties": {"elasticPoolId": POOL_ID}}))
    pool_sku_alone = world.sql.client.send_request(HttpRequest(
        "PUT", DB_URL.replace("tenant_acme", "tenant_other"),
        params={"api-version": "2025-01-01"},
        json={"location": "westeurope", "sku": {"name": "ElasticPool"}}))
    absent = world.sql.client.send_request(HttpRequest(
        "PATCH", DB_URL.replace("tenant_acme", "tenant_none"),
        params={"api-version": "2025-01-01"}, json={"sku": {"name": "S0"}}))

    assert (mixed.status_code, mixed.json()["error"]["code"]) == (
        400, "ElasticPoolSkuCombinationInvalid")
    assert (pool_sku_alone.status_code, pool_sku_alone.json()["error"]["code"]) == (
        400, "ElasticPoolNameRequired")
    assert (absent.status_code, absent.json()["error"]["code"]) == (404, "ResourceNotFound")


def test_the_update_answers_202_with_both_status_urls(world: AzureWorld) -> None:
    settle(world.sql, "ensure", DB, world.fake)

    accepted = world.sql.client.send_request(HttpRequest(
        "PATCH", DB_URL, params={"api-version": "2025-01-01"}, json={"sku": {"name": "S0"}}))

    assert accepted.status_code == 202
    assert "/status/" in accepted.headers["Azure-AsyncOperation"]
    assert "/result/" in accepted.headers["Location"]


def test_the_sdk_poller_of_an_update_completes_against_the_fake(world: AzureWorld) -> None:
    from azure.mgmt.sql.models import DatabaseUpdate, Sku

    settle(world.sql, "ensure", DB, world.fake)
    poller = world.sql.client.databases.begin_update(
        RESOURCE_GROUP, SQL_SERVER, "tenant_acme", DatabaseUpdate(sku=Sku(name="S2")))
    result = poller.result()

    assert result.current_service_objective_name == "S2"
    assert result.elastic_pool_id is None
