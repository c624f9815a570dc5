"""Contract tests, one per operation in the table the providers and the fake share
(``permissions.OPERATIONS``): every provider drives its whole lifecycle through the fake, and
each operation's requests must be what its specification accepts (api-version, query,
required and read-only body fields) with answers the specification allows.

A second test per operation with body rules shows the check can fail: the provider's own
request, broken the way the specification forbids (a required field dropped, a read-only one
added), is refused with 400. A third compares the contract table with what the Azure SDKs
generated from the same specifications accept, so an SDK upgrade that changes a status or a
read-only field is noticed."""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from azure.core.rest import HttpRequest

from tenantops.config import KeyVaultSecretsSettings
from tenantops.provisioning.providers.azure.permissions import OPERATIONS, operation_for
from tenantops.provisioning.providers.azure.preflight import run_preflight
from tenantops.provisioning.providers.database import Database
from tenantops.provisioning.providers.dns import DnsRecord
from tenantops.provisioning.providers.secrets import Secret
from tenantops.provisioning.providers.secrets.azure_key_vault import KeyVaultSecrets
from tenantops.provisioning.providers.webhost import Certificate, HostnameBinding, SniBinding
from tests.azure.conftest import APP, ZONE, AzureWorld, build_world, settle
from tests.azure.test_check import settings_for
from tests.azure_fake import CONTRACTS, FakeAzure, RecordedRequest

HOST = f"acme.{ZONE}"
DB = Database("tenant_acme", "acme_app", "acme-database-password")
SECRET = Secret("acme-database-password")


def lifecycle(world: AzureWorld) -> None:
    """Onboard and offboard one tenant through every Azure provider (and run the preflight),
    so every operation in the table is sent at least once."""
    fake = world.fake
    relative = HOST.removesuffix(f".{ZONE}")
    settle(world.dns, "ensure", DnsRecord(HOST, "CNAME", f"{APP}.azurewebsites.net"), fake)
    settle(world.dns, "ensure", DnsRecord(f"asuid.{HOST}", "TXT",
                                          world.site.verification_id), fake)
    world.dns.lookup(HOST, "CNAME")
    settle(world.webhost, "ensure", HostnameBinding(HOST, "acme"), fake)
    issued, _ = settle(world.webhost, "ensure", Certificate(HOST), fake)
    settle(world.webhost, "ensure", SniBinding(HOST, issued.outputs["thumbprint"]), fake)
    for provider in (world.sql, world.postgres):
        settle(provider, "ensure", DB, fake)
    settle(world.sql, "ensure", dataclasses.replace(DB, sku="S1"), fake)  # a plan's SKU
    secrets = KeyVaultSecrets(world.connection, KeyVaultSecretsSettings(
        vault_url=fake.key_vault.url, purge_on_delete=True))
    settle(secrets, "ensure", SECRET, fake)
    world.secrets.remove(SECRET)
    settle(world.secrets, "ensure", SECRET, fake)  # recovers the soft-deleted secret
    run_preflight(settings_for(), world.connection)
    _list_secrets(secrets)  # what the preflight's Key Vault probe sends
    settle(world.webhost, "remove", SniBinding(HOST, issued.outputs["thumbprint"]), fake)
    settle(world.webhost, "remove", Certificate(HOST), fake)
    settle(world.webhost, "remove", HostnameBinding(HOST, "acme"), fake)
    for provider in (world.sql, world.postgres):
        settle(provider, "remove", DB, fake)
    settle(secrets, "remove", SECRET, fake)
    settle(world.dns, "remove", DnsRecord(f"{relative}.{ZONE}", "CNAME", ""), fake)


def _list_secrets(secrets: KeyVaultSecrets) -> None:
    next(iter(secrets.client.list_properties_of_secrets(max_page_size=1)), None)


@pytest.fixture(scope="module")
def driven() -> FakeAzure:
    fake = FakeAzure()
    lifecycle(build_world(fake))
    return fake


def sent(fake: FakeAzure, name: str) -> list[RecordedRequest]:
    return [r for r in fake.requests
            if (op := operation_for(r.method, r.path)) is not None and op.name == name]


@pytest.mark.parametrize("name", [o.name for o in OPERATIONS])
def test_every_request_of_the_operation_matches_its_specification(
    driven: FakeAzure, name: str,
) -> None:
    requests = sent(driven, name)
    contract = CONTRACTS[name]

    assert requests, f"the lifecycle never sent {name}"
    assert driven.violations == []
    for request in requests:
        assert contract.check_request(request.query, request.body) == [], request


BODY_OPERATIONS = [n for n, c in CONTRACTS.items() if c.required or c.read_only]


def broken(name: str, body: Any) -> tuple[Any, str]:
    """The body with one thing the specification forbids, and the problem it must cause."""
    contract = CONTRACTS[name]
    body = copy.deepcopy(body) if isinstance(body, dict) else {}
    if contract.required:
        field = next(iter(contract.required))  # every required field is top-level
        body.pop(field, None)
        return body, f"{field} is required"
    field = contract.read_only[0]
    *parents, last = field.split(".")
    where = body
    for part in parents:
        where = where.setdefault(part, {})
    where[last] = "set by the client"
    return body, f"{field} is read-only and must not be sent"


@pytest.mark.parametrize("name", BODY_OPERATIONS)
def test_a_request_the_specification_forbids_is_refused_with_400(
    driven: FakeAzure, name: str,
) -> None:
    request = sent(driven, name)[0]
    body, problem = broken(name, request.body)
    fake = driven
    target = next(f for f in fake.fakes if f.handles(request.method, request.path))
    url = f"https://{target.host}{request.path}"
    token = fake.credential().get_token(
        "https://vault.azure.net/.default" if "vault" in target.host
        else "https://management.azure.com/.default").token
    before = len(target.violations)

    response = fake.send(HttpRequest(request.method, url, params=dict(request.query), json=body,
                                     headers={"Authorization": f"Bearer {token}"}))

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "InvalidRequestContent"
    assert problem in response.json()["error"]["message"]
    assert len(target.violations) == before + 1
    target.violations.clear()


SDK = Path(str(__import__("azure.mgmt.web", fromlist=["x"]).__file__)).parent.parent


def _statuses(module: str, cls: str, method: str) -> tuple[int, ...]:
    """The success statuses the SDK's generated ``cls.method`` accepts."""
    source = (SDK / module / "operations" / "_operations.py").read_text()
    body = source[source.index(f"class {cls}"):]
    body = body[body.index(f"    def {method}("):]
    body = body[:body.index("\n    def ", 10)]
    found = re.search(r"status_code not in \[([^\]]*)\]", body)
    assert found is not None, (module, cls, method)
    return tuple(int(s) for s in found.group(1).split(","))


STATUS_SOURCES: dict[str, tuple[str, str, str]] = {
    "WebApps_Get": ("web", "WebAppsOperations", "get"),
    "WebApps_AnalyzeCustomHostname": ("web", "WebAppsOperations", "analyze_custom_hostname"),
    "WebApps_GetHostNameBinding": ("web", "WebAppsOperations", "get_host_name_binding"),
    "WebApps_DeleteHostNameBinding": ("web", "WebAppsOperations", "delete_host_name_binding"),
    "Certificates_Get": ("web", "CertificatesOperations", "get"),
    "Certificates_Delete": ("web", "CertificatesOperations", "delete"),
    "Servers_Get": ("sql", "ServersOperations", "get"),
    "ElasticPools_Get": ("sql", "ElasticPoolsOperations", "get"),
    "Databases_Get": ("sql", "DatabasesOperations", "get"),
    "Databases_CreateOrUpdate": ("sql", "DatabasesOperations", "_create_or_update_initial"),
    "Databases_Update": ("sql", "DatabasesOperations", "_update_initial"),
    "Databases_Delete": ("sql", "DatabasesOperations", "_delete_initial"),
    "FlexibleServerDatabases_Get": ("postgresqlflexibleservers", "DatabasesOperations", "get"),
    "FlexibleServerDatabases_Create": ("postgresqlflexibleservers", "DatabasesOperations",
                                       "_create_initial"),
    "FlexibleServerDatabases_Delete": ("postgresqlflexibleservers", "DatabasesOperations",
                                       "_delete_initial"),
}


@pytest.mark.parametrize("name", sorted(STATUS_SOURCES))
def test_the_contract_statuses_are_those_generated_from_the_specification(name: str) -> None:
    assert CONTRACTS[name].statuses == _statuses(*STATUS_SOURCES[name])


def _read_only(model: type) -> set[str]:
    model()  # the generated model builds its field table on first use
    fields: dict[str, Any] = model._attr_to_rest_field  # type: ignore[attr-defined]
    return {f._rest_name for f in fields.values() if f._visibility == ["read"]}


READ_ONLY_SOURCES: dict[str, Callable[[], list[tuple[str, type]]]] = {
    "WebApps_CreateOrUpdateHostNameBinding": lambda: [
        ("", __import__("azure.mgmt.web.models", fromlist=["x"]).HostNameBinding),
        ("properties.", __import__("azure.mgmt.web.models",
                                   fromlist=["x"]).HostNameBindingProperties)],
    "Certificates_CreateOrUpdate": lambda: [
        ("", __import__("azure.mgmt.web.models", fromlist=["x"]).Certificate),
        ("properties.", __import__("azure.mgmt.web.models", fromlist=["x"]).CertificateProperties)],
    "Databases_CreateOrUpdate": lambda: [
        ("", __import__("azure.mgmt.sql.models", fromlist=["x"]).Database),
        ("properties.", __import__("azure.mgmt.sql.models", fromlist=["x"]).DatabaseProperties)],
    "Databases_Update": lambda: [
        ("", __import__("azure.mgmt.sql.models", fromlist=["x"]).DatabaseUpdate),
        ("properties.", __import__("azure.mgmt.sql.models",
                                   fromlist=["x"]).DatabaseUpdateProperties)],
    "FlexibleServerDatabases_Create": lambda: [
        ("", __import__("azure.mgmt.postgresqlflexibleservers.models", fromlist=["x"]).Database),
        ("properties.", __import__("azure.mgmt.postgresqlflexibleservers.models",
                                   fromlist=["x"]).DatabaseProperties)],
}


@pytest.mark.parametrize("name", sorted(READ_ONLY_SOURCES))
def test_the_contract_read_only_fields_are_those_of_the_specification(name: str) -> None:
    expected = {prefix + field for prefix, model in READ_ONLY_SOURCES[name]()
                for field in _read_only(model)}
    assert set(CONTRACTS[name].read_only) == expected
