"""The Azure world the tests run in: one `FakeAzure` holding a Function App, a DNS zone, a SQL
server with an elastic pool, a PostgreSQL flexible server and a Key Vault; and the Azure
providers connected to it through the SDKs' transport seam."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import pytest

from tenantops.config import (
    AppServiceWebHostSettings,
    AzureDnsSettings,
    AzurePostgresDatabaseSettings,
    AzureSqlDatabaseSettings,
    DnsProviderSettings,
    KeyVaultSecretsSettings,
)
from tenantops.errors import TransientProviderError
from tenantops.provisioning.providers.azure import AzureConnection
from tenantops.provisioning.providers.base import Outcome, Pending, Provider, Ready, Resource
from tenantops.provisioning.providers.database.azure_postgres import AzurePostgresDatabases
from tenantops.provisioning.providers.database.azure_sql import AzureSqlDatabases
from tenantops.provisioning.providers.dns import RecordType
from tenantops.provisioning.providers.dns.azure_dns import AzureDns
from tenantops.provisioning.providers.secrets.azure_key_vault import KeyVaultSecrets
from tenantops.provisioning.providers.webhost.azure_app_service import AzureAppService
from tests.azure_fake import SUBSCRIPTION, EntraCredential, FakeAzure, FakeSite

RESOURCE_GROUP = "rg-tenantops"
APP = "tenantops-func"
ZONE = "contoso-saas.com"
SQL_SERVER = "tenantops-sql"
PG_SERVER = "tenantops-pg"


RG_SCOPE = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}"


@dataclass
class AzureWorld:
    fake: FakeAzure
    connection: AzureConnection
    credential: EntraCredential
    webhost: AzureAppService
    dns: AzureDns
    sql: AzureSqlDatabases
    postgres: AzurePostgresDatabases
    secrets: KeyVaultSecrets
    site: FakeSite


def name_server_lookup(fake: FakeAzure) -> Callable[[str, RecordType, Sequence[str]], list[str]]:
    def lookup(name: str, type: RecordType, servers: Sequence[str]) -> list[str]:
        assert servers, "the zone's name servers were not read"
        return fake.dns.answers(name, type)
    return lookup


def build_world(fake: FakeAzure, *,
                certificate_source: Literal["managed", "key-vault"] = "managed",
                grant: bool = True) -> AzureWorld:
    """The resources, and (with ``grant``) the roles the deployment assigns the identity:
    Contributor on the resource group and Key Vault Secrets Officer on the vault."""
    site = fake.app_service.add_site(FakeSite(APP, RESOURCE_GROUP, SUBSCRIPTION))
    fake.dns.add_zone(ZONE, RESOURCE_GROUP)
    fake.sql.add_server(SQL_SERVER, RESOURCE_GROUP)
    fake.postgres.add_server(PG_SERVER, RESOURCE_GROUP)
    if grant:
        fake.authorization.grant(RG_SCOPE, "Contributor")
        fake.authorization.grant(fake.key_vault.resource_id, "Key Vault Secrets Officer")
    credential = fake.credential()
    connection = AzureConnection(credential, SUBSCRIPTION, RESOURCE_GROUP, transport=fake)
    key_vault_id = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/"
                    "Microsoft.KeyVault/vaults/tenantops-kv")
    webhost = AzureAppService(connection, AppServiceWebHostSettings(
        app_name=APP, certificate_source=certificate_source,
        key_vault_id=key_vault_id if certificate_source == "key-vault" else None,
        poll_seconds=60))
    dns = AzureDns(connection, DnsProviderSettings(name="azure-dns", zones=[ZONE],
                                                   azure=AzureDnsSettings()),
                   name_server_lookup=name_server_lookup(fake))
    sql = AzureSqlDatabases(connection, AzureSqlDatabaseSettings(
        server=SQL_SERVER, elastic_pool="tenants", poll_seconds=15))
    postgres = AzurePostgresDatabases(connection, AzurePostgresDatabaseSettings(
        server=PG_SERVER, poll_seconds=10))
    secrets = KeyVaultSecrets(connection, KeyVaultSecretsSettings(
        vault_url=fake.key_vault.url))
    return AzureWorld(fake, connection, credential, webhost, dns, sql, postgres, secrets, site)


@pytest.fixture
def fake() -> FakeAzure:
    return FakeAzure()


@pytest.fixture
def world(fake: FakeAzure) -> AzureWorld:
    return build_world(fake)


def settle(provider: Provider, verb: str, resource: Resource, fake: FakeAzure, *,
           max_calls: int = 50) -> tuple[Ready, int]:
    """Call ``verb`` until `Ready`, advancing the fake clock by each `Pending`'s retry_after
    (and by ``retry_after`` of transient errors), as the engine's durable sleep would; returns
    the outcome and the number of calls."""
    for calls in range(1, max_calls + 1):
        try:
            outcome: Outcome = getattr(provider, verb)(resource)
        except TransientProviderError as exc:
            fake.clock.advance(exc.retry_after or 1.0)
            continue
        if isinstance(outcome, Pending):
            fake.clock.advance(outcome.retry_after)
            continue
        return outcome, calls
    raise AssertionError(f"{provider.label} {verb} {resource.key} not ready in {max_calls} calls")
