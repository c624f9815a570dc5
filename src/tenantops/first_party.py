"""Microsoft's own services as token audiences: the one list tenantops keeps of them.

A token for one of these is worth far more than a call to a tenant API: an Azure Resource
Manager token can change a subscription, a Microsoft Graph token can read a directory, a
``api://AzureADTokenExchange`` token from a managed identity can be exchanged for the tokens of
every app registration that trusts that identity. So a server never chooses one of them as the
audience of the caller's token (`tenantops.identity`), whatever form it names it in: a
resource URI of any cloud (with or without a trailing slash or ``/.default``), the service's
application (client) ID, or ``api://<that ID>``. The API (`tenantops.auth`) names them in its
refusals. This module imports nothing, so both sides can use it.

Sources, checked 2026-12: the resource URIs are the ones each service documents for Entra
authentication (Azure Government and China docs for the sovereign clouds; Germany's retired
cloud kept because tokens for it still parse); the application IDs are the service principals
Microsoft creates in every tenant, as listed in "Verify first-party Microsoft applications in
sign-in reports" (learn.microsoft.com/troubleshoot/entra/entra-id/governance/
verify-first-party-apps-sign-in) and in the Azure Government comparison page (Key Vault's US
Government ID). GUIDs of the shapes ``0000000x-0000-0000-c000-000000000000`` and
``0000000x-0000-0ff1-ce00-000000000000`` are Microsoft's reserved first-party IDs (Graph, AAD
Graph, Exchange, SharePoint, Power BI...) and are recognised by shape.

Add an entry here, and only here; docs/identity.md prints this table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["FIRST_PARTY_RESOURCES", "FirstPartyResource", "first_party_resource"]

_RESERVED_GUID = re.compile(
    r"^0000000[0-9a-f]-0000-0000-c000-000000000000$|^0000000[0-9a-f]-0000-0ff1-ce00-000000000000$")


@dataclass(frozen=True)
class FirstPartyResource:
    """One Microsoft service: its name, what its token gives, and every way to name it."""

    name: str
    grants: str
    resources: tuple[str, ...]
    app_ids: tuple[str, ...] = ()


FIRST_PARTY_RESOURCES: tuple[FirstPartyResource, ...] = (
    FirstPartyResource(
        "Azure Resource Manager",
        "manages every Azure resource the identity has a role on (create, change, delete, read "
        "keys)",
        ("https://management.azure.com/", "https://management.core.windows.net/",
         "https://management.usgovcloudapi.net/", "https://management.core.usgovcloudapi.net/",
         "https://management.chinacloudapi.cn/", "https://management.core.chinacloudapi.cn/",
         "https://management.microsoftazure.de/", "https://management.core.cloudapi.de/"),
        ("797f4846-ba00-4fd7-ba43-dac1f8f63013",)),
    FirstPartyResource(
        "Microsoft Graph",
        "reads and changes the directory, mail, files and more, within the identity's "
        "permissions",
        ("https://graph.microsoft.com/", "https://graph.microsoft.us/",
         "https://dod-graph.microsoft.us/", "https://microsoftgraph.chinacloudapi.cn/",
         "https://graph.microsoft.de/", "https://canary.graph.microsoft.com/"),
        ("00000003-0000-0000-c000-000000000000",)),
    FirstPartyResource(
        "Azure AD Graph",
        "reads and changes the directory (the retired predecessor of Microsoft Graph)",
        ("https://graph.windows.net/", "https://graph.chinacloudapi.cn/",
         "https://graph.cloudapi.de/"),
        ("00000002-0000-0000-c000-000000000000",)),
    FirstPartyResource(
        "Entra workload identity federation (token exchange)",
        "can be exchanged for the tokens of every app registration that trusts this identity "
        "as a federated credential",
        ("api://AzureADTokenExchange", "api://AzureADTokenExchangeUSGov",
         "api://AzureADTokenExchangeChina")),
    FirstPartyResource(
        "Azure Key Vault",
        "reads secrets, keys and certificates of every vault the identity may use",
        ("https://vault.azure.net/", "https://vault.usgovcloudapi.net/",
         "https://vault.azure.cn/", "https://vault.microsoftazure.de/",
         "https://managedhsm.azure.net/", "https://managedhsm.usgovcloudapi.net/",
         "https://managedhsm.azure.cn/"),
        ("cfa8b339-82a2-471a-a3c9-0fc0be7a4093", "7e7c393b-45d0-48b1-a35e-2905ddf8183c")),
    FirstPartyResource(
        "Azure Storage",
        "reads and writes blobs, queues, tables and files of every account the identity may "
        "use",
        ("https://storage.azure.com/",),
        ("e406a681-f3d4-42a8-90b6-c2b029497af1",)),
    FirstPartyResource(
        "Azure SQL Database",
        "signs in to every Azure SQL database that admits the identity",
        ("https://database.windows.net/", "https://database.usgovcloudapi.net/",
         "https://database.chinacloudapi.cn/", "https://database.cloudapi.de/"),
        ("022907d3-0f1b-48f7-badc-1ba6abab6d66",)),
    FirstPartyResource(
        "Azure Database for PostgreSQL and MySQL",
        "signs in to every flexible server that admits the identity",
        ("https://ossrdbms-aad.database.windows.net/",
         "https://ossrdbms-aad.database.usgovcloudapi.net/",
         "https://ossrdbms-aad.database.chinacloudapi.cn/"),
        ("123cd850-d9df-40bd-94d5-c9f07b7fa203",)),
    FirstPartyResource(
        "Azure Service Bus",
        "sends and receives messages on every namespace the identity may use",
        ("https://servicebus.azure.net/", "https://servicebus.usgovcloudapi.net/",
         "https://servicebus.chinacloudapi.cn/"),
        ("80a10ef9-8168-493d-abf9-3297c4ef6e3c",)),
    FirstPartyResource(
        "Azure Event Hubs",
        "sends and receives events on every namespace the identity may use",
        ("https://eventhubs.azure.net/",),
        ("80369ed6-5f11-4dd9-bef3-692475845e77",)),
    FirstPartyResource(
        "Azure Event Grid",
        "publishes events to every topic the identity may use",
        ("https://eventgrid.azure.net/",)),
    FirstPartyResource(
        "Azure Cosmos DB",
        "reads and writes every Cosmos DB account that admits the identity",
        ("https://cosmos.azure.com/",),
        ("a232010e-820c-4083-83bb-3ace5fc29d0b",)),
    FirstPartyResource(
        "Azure Monitor",
        "reads and ingests logs and metrics the identity may use",
        ("https://monitor.azure.com/", "https://monitor.azure.us/",
         "https://monitor.azure.cn/")),
    FirstPartyResource(
        "Log Analytics",
        "queries every Log Analytics workspace the identity may read",
        ("https://api.loganalytics.io/", "https://api.loganalytics.azure.com/",
         "https://api.loganalytics.us/"),
        ("ca7f3f0b-7d91-482c-8e09-c5d840d0eac5",)),
    FirstPartyResource(
        "Application Insights",
        "queries every Application Insights resource the identity may read",
        ("https://api.applicationinsights.io/",),
        ("f5c26e74-f226-4ae8-85f0-b4af0080ac9e",)),
    FirstPartyResource(
        "Azure Data Explorer",
        "queries every cluster that admits the identity",
        ("https://kusto.kusto.windows.net/", "https://help.kusto.windows.net/"),
        ("2746ea77-4702-4b45-80ca-3c97e680e8b7",)),
    FirstPartyResource(
        "Azure Data Lake",
        "reads and writes Data Lake storage the identity may use",
        ("https://datalake.azure.net/",),
        ("e9f49c6b-5ce5-44c8-925d-015017e9f7ad",)),
    FirstPartyResource(
        "Azure Batch",
        "runs jobs on every Batch account the identity may use",
        ("https://batch.core.windows.net/",),
        ("ddbf3205-c6bd-46ae-8127-60eb93363864",)),
    FirstPartyResource(
        "Azure App Configuration",
        "reads and writes every configuration store the identity may use",
        ("https://azconfig.io/", "https://appconfig.azure.com/")),
    FirstPartyResource(
        "Azure AI services (Cognitive Services)",
        "calls every AI services resource the identity may use, and is billed for it",
        ("https://cognitiveservices.azure.com/", "https://ai.azure.com/")),
    FirstPartyResource(
        "Azure DevOps",
        "reads and changes repositories, pipelines and boards the identity may use",
        ("https://app.vssps.visualstudio.com/",),
        ("499b84ac-1321-427f-aa17-267ca6975798",)),
    FirstPartyResource(
        "Power BI",
        "reads and changes reports and datasets the identity may use",
        ("https://analysis.windows.net/powerbi/api",),
        ("00000009-0000-0000-c000-000000000000",)),
    FirstPartyResource(
        "Exchange Online",
        "reads and sends mail as the identity's permissions allow",
        ("https://outlook.office365.com/", "https://outlook.office.com/"),
        ("00000002-0000-0ff1-ce00-000000000000",)),
    FirstPartyResource(
        "SharePoint Online",
        "reads and changes sites and files the identity may use",
        (),
        ("00000003-0000-0ff1-ce00-000000000000",)),
)

_RESERVED = FirstPartyResource(
    "a reserved Microsoft first-party application",
    "is a token for one of Microsoft's own services (its ID has the shape Microsoft reserves "
    "for them)",
    ())


def _key(value: str) -> str:
    """Lower-case, without one ``/.default`` and without trailing slashes."""
    text = value.strip().lower()
    if text.endswith("/.default"):
        text = text[: -len("/.default")]
    return text.rstrip("/")


_BY_KEY: dict[str, FirstPartyResource] = {}
for _resource in FIRST_PARTY_RESOURCES:
    for _name in (*_resource.resources, *_resource.app_ids,
                  *(f"api://{app_id}" for app_id in _resource.app_ids)):
        _BY_KEY[_key(_name)] = _resource


def first_party_resource(value: str) -> FirstPartyResource | None:
    """The Microsoft service ``value`` names as an audience, or ``None``.

    Matches a resource URI of any cloud, an application ID, or ``api://<application ID>``,
    case-insensitively, with or without trailing slashes or ``/.default``. A GUID of
    Microsoft's reserved first-party shapes is recognised even when it is not listed.
    """
    key = _key(value)
    found = _BY_KEY.get(key)
    if found is not None:
        return found
    guid = key.removeprefix("api://")
    return _RESERVED if _RESERVED_GUID.match(guid) else None
