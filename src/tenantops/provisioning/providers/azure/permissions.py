"""Every Azure operation the providers perform, and the RBAC action Azure requires for it.

One table serves two readers, so they cannot disagree:

- ``tenantops azure check`` (`preflight`) asks ARM which actions the identity holds at each
  scope and reports the ones a provider will need and lacks;
- the ARM fake in the tests (``tests/azure_fake``) refuses an operation whose action the
  caller's role assignments do not grant, with ARM's 403 ``AuthorizationFailed`` (or Key
  Vault's 403 ``ForbiddenByRbac`` for data actions).

The actions are those of the resource providers' operation lists (``Microsoft.Web``,
``Microsoft.Network``, ``Microsoft.Sql``, ``Microsoft.DBforPostgreSQL``) as ARM names them in
its ``AuthorizationFailed`` messages (e.g. "does not have authorization to perform action
'Microsoft.Web/sites/read'", sjkp/letsencrypt-siteextension#248; "'Microsoft.Web/certificates/
read'", CyberDrain/CIPP#314). Key Vault's data actions are under
``Microsoft.KeyVault/vaults/secrets/``: ``getSecret/action`` as Key Vault names it in its
``ForbiddenByRbac`` message (piyushsachdeva/Terraform_AKS#2) and ``readMetadata/action``
(vcsjones/AzureSignTool#296); the names of the set, delete, recover and purge data actions
are **unconfirmed** by a recorded message, and all of them fall under ``secrets/*``, which
the "Key Vault Secrets Officer" role grants.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["OPERATIONS", "AzureOperation", "actions_for", "operation_for"]

_RG = r"/subscriptions/[^/]+/resourceGroups/[^/]+/providers/"
_SITE = _RG + r"Microsoft\.Web/sites/[^/]+"
_CERT = _RG + r"Microsoft\.Web/certificates/[^/]+"
_ZONE = _RG + r"Microsoft\.Network/dnsZones/[^/]+"
_SQL = _RG + r"Microsoft\.Sql/servers/[^/]+"
_PG = _RG + r"Microsoft\.DBforPostgreSQL/flexibleServers/[^/]+"


@dataclass(frozen=True)
class AzureOperation:
    """One REST operation: its ``operationId`` in the specification, the provider that sends
    it, the method and path (a regular expression over the request path), and the RBAC
    action (``data`` for a data-plane action, which ARM lists under ``dataActions``).

    ``scope`` says where the preflight checks the action: ``"resource"`` (the resource the
    provider is configured with: the web app, zone, server, vault) or ``"resource-group"``
    (App Service certificates live beside the app, not inside it)."""

    name: str
    provider: str
    method: str
    path: str
    action: str
    data: bool = False
    scope: str = "resource"

    def matches(self, method: str, path: str) -> bool:
        return method == self.method and re.fullmatch(self.path, path, re.IGNORECASE) is not None

    def action_for(self, path: str) -> str:
        """The action with ``{recordType}`` filled in from the path (DNS record sets)."""
        if "{recordType}" not in self.action:
            return self.action
        record_type = path.rstrip("/").split("/")[-2].upper()
        return self.action.replace("{recordType}", record_type)


OPERATIONS: tuple[AzureOperation, ...] = (
    # App Service (Microsoft.Web), webhost provider "azure-app-service"
    AzureOperation("WebApps_Get", "azure-app-service", "GET", _SITE,
                   "Microsoft.Web/sites/read"),
    AzureOperation("WebApps_AnalyzeCustomHostname", "azure-app-service", "GET",
                   _SITE + "/analyzeCustomHostname",
                   "Microsoft.Web/sites/analyzeCustomHostname/read"),
    AzureOperation("WebApps_GetHostNameBinding", "azure-app-service", "GET",
                   _SITE + "/hostNameBindings/[^/]+", "Microsoft.Web/sites/hostNameBindings/read"),
    AzureOperation("WebApps_CreateOrUpdateHostNameBinding", "azure-app-service", "PUT",
                   _SITE + "/hostNameBindings/[^/]+",
                   "Microsoft.Web/sites/hostNameBindings/write"),
    AzureOperation("WebApps_DeleteHostNameBinding", "azure-app-service", "DELETE",
                   _SITE + "/hostNameBindings/[^/]+",
                   "Microsoft.Web/sites/hostNameBindings/delete"),
    AzureOperation("Certificates_Get", "azure-app-service", "GET", _CERT,
                   "Microsoft.Web/certificates/read", scope="resource-group"),
    AzureOperation("Certificates_CreateOrUpdate", "azure-app-service", "PUT", _CERT,
                   "Microsoft.Web/certificates/write", scope="resource-group"),
    AzureOperation("Certificates_Delete", "azure-app-service", "DELETE", _CERT,
                   "Microsoft.Web/certificates/delete", scope="resource-group"),
    # Azure DNS (Microsoft.Network), dns provider "azure-dns"
    AzureOperation("Zones_Get", "azure-dns", "GET", _ZONE, "Microsoft.Network/dnsZones/read"),
    AzureOperation("RecordSets_Get", "azure-dns", "GET", _ZONE + "/[A-Za-z]+/[^/]+",
                   "Microsoft.Network/dnsZones/{recordType}/read"),
    AzureOperation("RecordSets_CreateOrUpdate", "azure-dns", "PUT", _ZONE + "/[A-Za-z]+/[^/]+",
                   "Microsoft.Network/dnsZones/{recordType}/write"),
    AzureOperation("RecordSets_Delete", "azure-dns", "DELETE", _ZONE + "/[A-Za-z]+/[^/]+",
                   "Microsoft.Network/dnsZones/{recordType}/delete"),
    # Azure SQL (Microsoft.Sql), database provider "azure-sql"
    AzureOperation("Servers_Get", "azure-sql", "GET", _SQL, "Microsoft.Sql/servers/read"),
    AzureOperation("ElasticPools_Get", "azure-sql", "GET", _SQL + "/elasticPools/[^/]+",
                   "Microsoft.Sql/servers/elasticPools/read"),
    AzureOperation("Databases_Get", "azure-sql", "GET", _SQL + "/databases/[^/]+",
                   "Microsoft.Sql/servers/databases/read"),
    AzureOperation("Databases_CreateOrUpdate", "azure-sql", "PUT", _SQL + "/databases/[^/]+",
                   "Microsoft.Sql/servers/databases/write"),
    AzureOperation("Databases_Update", "azure-sql", "PATCH", _SQL + "/databases/[^/]+",
                   "Microsoft.Sql/servers/databases/write"),
    AzureOperation("Databases_Delete", "azure-sql", "DELETE", _SQL + "/databases/[^/]+",
                   "Microsoft.Sql/servers/databases/delete"),
    # PostgreSQL flexible server, database provider "azure-postgres"
    AzureOperation("FlexibleServers_Get", "azure-postgres", "GET", _PG,
                   "Microsoft.DBforPostgreSQL/flexibleServers/read"),
    AzureOperation("FlexibleServerDatabases_Get", "azure-postgres", "GET",
                   _PG + "/databases/[^/]+",
                   "Microsoft.DBforPostgreSQL/flexibleServers/databases/read"),
    AzureOperation("FlexibleServerDatabases_Create", "azure-postgres", "PUT",
                   _PG + "/databases/[^/]+",
                   "Microsoft.DBforPostgreSQL/flexibleServers/databases/write"),
    AzureOperation("FlexibleServerDatabases_Delete", "azure-postgres", "DELETE",
                   _PG + "/databases/[^/]+",
                   "Microsoft.DBforPostgreSQL/flexibleServers/databases/delete"),
    # Key Vault secrets (data plane), secrets provider "key-vault"
    AzureOperation("GetSecrets", "key-vault", "GET", r"/secrets",
                   "Microsoft.KeyVault/vaults/secrets/readMetadata/action", data=True),
    AzureOperation("GetSecret", "key-vault", "GET", r"/secrets/[^/]+(/[^/]*)?",
                   "Microsoft.KeyVault/vaults/secrets/getSecret/action", data=True),
    AzureOperation("SetSecret", "key-vault", "PUT", r"/secrets/[^/]+",
                   "Microsoft.KeyVault/vaults/secrets/setSecret/action", data=True),
    AzureOperation("DeleteSecret", "key-vault", "DELETE", r"/secrets/[^/]+",
                   "Microsoft.KeyVault/vaults/secrets/delete", data=True),
    AzureOperation("GetDeletedSecret", "key-vault", "GET", r"/deletedsecrets/[^/]+",
                   "Microsoft.KeyVault/vaults/secrets/readMetadata/action", data=True),
    AzureOperation("RecoverDeletedSecret", "key-vault", "POST", r"/deletedsecrets/[^/]+/recover",
                   "Microsoft.KeyVault/vaults/secrets/recover/action", data=True),
    AzureOperation("PurgeDeletedSecret", "key-vault", "DELETE", r"/deletedsecrets/[^/]+",
                   "Microsoft.KeyVault/vaults/secrets/purge/action", data=True),
)


def operation_for(method: str, path: str) -> AzureOperation | None:
    """The operation a request is (``path`` without query, ARM paths compared
    case-insensitively)."""
    for operation in OPERATIONS:
        if operation.matches(method, path):
            return operation
    return None


def actions_for(provider: str, scope: str = "resource", *,
                record_types: tuple[str, ...] = ("CNAME", "TXT", "A"),
                writes_only: bool = False) -> tuple[str, ...]:
    """The actions ``provider`` needs at ``scope``, in table order; DNS record-set actions are
    spelled out for ``record_types``. ``writes_only`` leaves out reads (which the preflight
    proves by reading)."""
    actions: list[str] = []
    for operation in OPERATIONS:
        if operation.provider != provider or operation.scope != scope:
            continue
        if writes_only and operation.method == "GET":
            continue
        names = ([operation.action.replace("{recordType}", t) for t in record_types]
                 if "{recordType}" in operation.action else [operation.action])
        actions.extend(n for n in names if n not in actions)
    return tuple(actions)
