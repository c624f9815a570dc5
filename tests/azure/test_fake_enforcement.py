"""What Azure enforces on every call, as the fake enforces it and the providers report it:
the bearer token's audience, tenant and expiry (ARM and Key Vault), the caller's RBAC action
(the same table `tenantops azure check` reads), and long-running operations that fail, are
canceled, or collide with one in progress."""

from __future__ import annotations

import pytest

from tenantops.config import AzurePostgresDatabaseSettings, KeyVaultSecretsSettings
from tenantops.errors import PermanentProviderError, TransientProviderError
from tenantops.provisioning.providers.azure import AzureConnection
from tenantops.provisioning.providers.azure.preflight import run_preflight
from tenantops.provisioning.providers.database import Database
from tenantops.provisioning.providers.database.azure_postgres import AzurePostgresDatabases
from tenantops.provisioning.providers.dns import DnsRecord
from tenantops.provisioning.providers.secrets import Secret
from tenantops.provisioning.providers.secrets.azure_key_vault import KeyVaultSecrets
from tenantops.provisioning.providers.webhost import HostnameBinding
from tests.azure.conftest import (
    PG_SERVER,
    RESOURCE_GROUP,
    RG_SCOPE,
    SQL_SERVER,
    ZONE,
    AzureWorld,
    build_world,
    settle,
)
from tests.azure.test_check import settings_for
from tests.azure_fake import PRINCIPAL, SUBSCRIPTION, FakeAzure

DB = Database("tenant_acme", "acme_app", "acme-database-password")
RECORD = DnsRecord(f"acme.{ZONE}", "TXT", "x")


def connection(fake: FakeAzure, **token: object) -> AzureConnection:
    return AzureConnection(fake.credential(**token), SUBSCRIPTION, RESOURCE_GROUP,
                           transport=fake)


def dns_with(fake: FakeAzure, **token: object) -> AzureWorld:
    world = build_world(fake)
    world.dns.connection = connection(fake, **token)
    world.dns._client = None
    return world


@pytest.mark.parametrize(("token", "code", "said"), [
    ({"audience": "api://0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"},
     "InvalidAuthenticationTokenAudience",
     "obtained for wrong audience or resource 'api://0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0'"),
    ({"tenant": "22222222-2222-2222-2222-222222222222"}, "InvalidAuthenticationTokenTenant",
     "is from the wrong issuer 'https://sts.windows.net/22222222-2222-2222-2222-222222222222/'"),
    ({"lifetime": -60.0}, "ExpiredAuthenticationToken", "is earlier than current UTC time"),
])
def test_a_token_arm_would_refuse_is_refused_as_arm_does_and_is_permanent(
    token: dict[str, object], code: str, said: str,
) -> None:
    world = dns_with(FakeAzure(), **token)

    with pytest.raises(PermanentProviderError) as caught:
        world.dns.ensure(RECORD)

    assert f"Azure answered 401 ({code}: " in str(caught.value)
    assert said in str(caught.value)
    assert "Azure refused the token" in str(caught.value)


@pytest.mark.parametrize(("token", "said"), [
    ({"audience": "https://management.azure.com/"},
     "AKV10022: Invalid audience. Expected https://vault.azure.net, found: "
     "https://management.azure.com/."),
    ({"audience": "https://vault.azure.net/"},
     "AKV10022: Invalid audience. Expected https://vault.azure.net, found: "
     "https://vault.azure.net/."),
    ({"tenant": "22222222-2222-2222-2222-222222222222"}, "is not the vault's tenant"),
    ({"lifetime": -60.0}, "The token is expired"),
])
def test_a_token_key_vault_would_refuse_is_refused_with_401(
    token: dict[str, object], said: str,
) -> None:
    fake = FakeAzure()
    build_world(fake)
    secrets = KeyVaultSecrets(connection(fake, **token),
                              KeyVaultSecretsSettings(vault_url=fake.key_vault.url))

    with pytest.raises(PermanentProviderError) as caught:
        secrets.ensure(Secret("acme-database-password"))

    assert "Azure answered 401 (Unauthorized: " in str(caught.value)
    assert said in str(caught.value)


def test_an_identity_without_the_binding_write_action_gets_authorization_failed() -> None:
    fake = FakeAzure()
    world = build_world(fake, grant=False)
    fake.authorization.grant(RG_SCOPE, "Contributor",
                             not_actions=["Microsoft.Web/sites/hostNameBindings/write"])
    host = f"acme.{ZONE}"
    fake.dns.set_record(ZONE, "asuid.acme", "TXT",
                        {"TXTRecords": [{"value": [world.site.verification_id]}]})

    with pytest.raises(PermanentProviderError) as caught:
        world.webhost.ensure(HostnameBinding(host, "acme"))
    findings = {f.check: f for f in run_preflight(settings_for(), connection(fake))}

    assert (f"Azure answered 403 (AuthorizationFailed: The client '{PRINCIPAL}' with object id "
            f"'{PRINCIPAL}' does not have authorization to perform action "
            "'Microsoft.Web/sites/hostNameBindings/write' over scope") in str(caught.value)
    assert "run 'tenantops azure check' to see which role to assign" in str(caught.value)
    roles = findings["roles on web app tenantops-func"]
    assert not roles.ok
    assert "lacks Microsoft.Web/sites/hostNameBindings/write" in roles.detail


def test_every_action_the_fake_enforces_is_one_the_preflight_checks() -> None:
    from tenantops.provisioning.providers.azure.permissions import OPERATIONS, actions_for

    checked = {a for p in ("azure-app-service", "azure-dns", "azure-sql", "azure-postgres")
               for scope in ("resource", "resource-group") for a in actions_for(p, scope)}
    enforced = {o.action.replace("{recordType}", t) for o in OPERATIONS if not o.data
                for t in ("CNAME", "TXT", "A")}

    assert enforced == checked


def test_key_vault_without_a_data_role_answers_forbidden_by_rbac() -> None:
    fake = FakeAzure()
    build_world(fake, grant=False)
    fake.authorization.grant(fake.key_vault.resource_id, "Key Vault Secrets User")
    secrets = KeyVaultSecrets(connection(fake),
                              KeyVaultSecretsSettings(vault_url=fake.key_vault.url))

    with pytest.raises(PermanentProviderError) as caught:
        secrets.ensure(Secret("acme-database-password"))

    assert "Azure answered 403 (Forbidden/ForbiddenByRbac: Caller is not authorized to " \
           "perform action on resource." in str(caught.value)
    assert "Action: 'Microsoft.KeyVault/vaults/secrets/setSecret/action'" in str(caught.value)


@pytest.mark.parametrize("kind", ["sql", "postgres"])
def test_an_operation_that_ends_failed_fails_the_step_with_azures_error(
    world: AzureWorld, kind: str,
) -> None:
    provider = world.sql if kind == "sql" else world.postgres
    fake_service = world.fake.sql if kind == "sql" else world.fake.postgres
    fake_service.fail_next("ElasticPoolSkuCombinationInvalid" if kind == "sql"
                           else "InvalidParameterValue", "The requested capacity is invalid.")

    with pytest.raises(PermanentProviderError) as caught:
        settle(provider, "ensure", DB, world.fake)

    assert "operation to create" in str(caught.value)
    assert "ended Failed (" in str(caught.value)
    assert "The requested capacity is invalid.); fix what Azure names, then retry the run" in \
        str(caught.value)


@pytest.mark.parametrize("kind", ["sql", "postgres"])
def test_a_canceled_operation_fails_the_step_and_says_so(world: AzureWorld, kind: str) -> None:
    provider = world.sql if kind == "sql" else world.postgres
    server = SQL_SERVER if kind == "sql" else PG_SERVER
    provider.ensure(DB)
    (world.fake.sql if kind == "sql" else world.fake.postgres).cancel(server, DB.name)

    with pytest.raises(PermanentProviderError, match="was canceled \\(by someone or something "
                       "other than tenantops"):
        provider.ensure(DB)


def test_a_postgres_put_while_the_server_is_busy_is_transient(world: AzureWorld) -> None:
    world.postgres.ensure(DB)
    other = AzurePostgresDatabases(world.connection, AzurePostgresDatabaseSettings(
        server=PG_SERVER, poll_seconds=10))

    with pytest.raises(TransientProviderError) as caught:
        other.ensure(Database("tenant_other", "other_app", "other-password"))

    assert "ServerIsBusy: Cannot complete operation while server 'tenantops-pg' is busy " \
           "processing another operation. Try again later." in str(caught.value)
    assert "another operation on the resource is still running, will retry" in \
        str(caught.value)


def test_a_sql_put_while_the_database_is_being_created_is_transient(world: AzureWorld) -> None:
    from tenantops.config import AzureSqlDatabaseSettings
    from tenantops.provisioning.providers.database.azure_sql import AzureSqlDatabases

    world.sql.ensure(DB)
    other = AzureSqlDatabases(world.connection, AzureSqlDatabaseSettings(
        server=SQL_SERVER, elastic_pool="other", poll_seconds=10))
    world.fake.sql.servers[SQL_SERVER].pools.add("other")

    with pytest.raises(TransientProviderError, match="ConflictingDatabaseOperation"):
        other.ensure(DB)


def test_a_put_of_an_existing_postgres_database_answers_202_as_the_specification_says(
    world: AzureWorld,
) -> None:
    from azure.mgmt.postgresqlflexibleservers.models import Database as ArmDatabase
    from azure.mgmt.postgresqlflexibleservers.models import DatabaseProperties

    settle(world.postgres, "ensure", DB, world.fake)
    wanted = ArmDatabase(properties=DatabaseProperties(charset="UTF8", collation="en_US.utf8"))

    poller = world.postgres.client.databases.begin_create(
        RESOURCE_GROUP, PG_SERVER, DB.name, wanted)
    result = poller.result()

    (last_put,) = world.fake.calls("PUT", "/databases/")[-1:]
    assert last_put.method == "PUT"
    assert result.name == DB.name
