"""The contract of every operation the providers call, taken from Azure's REST API
specifications: api-version, required query parameters, the request body's required fields
and their types, the read-only fields a request must not carry, and the success statuses and
fields of the response.

Every request a fake routes is checked against its operation's contract (`check_request`):
one the specification would refuse is answered 400 and kept in ``FakeTransport.violations``,
so a provider that sends it fails its test. Every answer a fake gives is checked too
(`check_response`): a status the specification does not list for the operation, or a success
body without the fields it promises, raises `ContractError` at once (a bug in the fake).

Sources, one line per service (path in ``Azure/azure-rest-api-specs`` and the commit read):

- App Service: ``specification/web/resource-manager/Microsoft.Web/AppService/stable/
  2025-05-01/`` (commit f40e3beaa1d71dd49bd35364a4fe6c474440162e, example
  ``AnalyzeCustomHostName.json``; ``DeleteSiteCertificate.json`` for 200/204 on delete). The
  success statuses and read-only fields are as generated from that specification into
  azure-mgmt-web 11.0.1 (``status_code not in [...]``, ``visibility=["read"]``), which
  `tests/azure/test_contract.py` re-derives and compares.
- Azure DNS: ``specification/dns/resource-manager/Microsoft.Network/stable/2018-05-01/dns.json``
  (commit 8c75aaec9fbfa51c30d0b7db6d73e52f4fe88778; examples ``CreateOrUpdateCNAMERecordset.json``
  200/201, ``DeleteCNAMERecordset.json`` 200/204, ``GetZone.json``).
- Azure SQL (``Microsoft.Sql``, api-version 2025-01-01): ``specification/sql/resource-manager/
  Microsoft.Sql/stable/2025-01-01/Databases.json`` (commit
  483d5703fae8df07583bc67c68d34007b79f35e3: database PUT 200/201/202, PATCH 200/202, both
  long-running) as generated into azure-mgmt-sql 4.0.0, which `tests/azure/test_contract.py`
  re-derives (DELETE 200/202/204 from the SDK only).
- PostgreSQL flexible server (``Microsoft.DBforPostgreSQL``, 2026-10-01): the specification
  file of this version was not found in the index searched, so the contract is the one
  generated from it into azure-mgmt-postgresqlflexibleservers 3.0.0 (database PUT **202
  only**, also for a database that exists, DELETE 202/204), re-derived by
  `tests/azure/test_contract.py`; the file path itself is unconfirmed.
- Key Vault secrets (data plane): ``specification/keyvault/data-plane/Microsoft.KeyVault/
  stable/2025-07-01/secrets.json`` (commit 4d75903ddcdd7b7f4d93bbdfc3a22eedc333a6f1) as
  generated into azure-keyvault-secrets 4.12.0, whose default api-version is 2026-04-01;
  statuses confirmed by the recording in ``recordings/keyvault_secrets_recover.json``.

One known divergence of the service from its specification is allowed, and cited:
``Certificates_CreateOrUpdate`` for a managed certificate answers 202 although the
specification lists only 200 (Azure/azure-sdk-for-python#34395, azure-cli PR #16124).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tenantops.provisioning.providers.azure.permissions import OPERATIONS

__all__ = ["CONTRACTS", "Contract", "ContractError"]

WEB, DNS, SQL, PG, KV = "2025-05-01", "2018-05-01", "2025-01-01", "2026-10-01", "2026-04-01"
_ARM_RESOURCE_READ_ONLY = ("id", "name", "type", "systemData")


class ContractError(AssertionError):
    """A fake answered something the specification does not allow: a bug in the fake."""


@dataclass(frozen=True)
class Contract:
    operation: str
    api_version: str
    statuses: tuple[int, ...]
    query: tuple[str, ...] = ()
    required: Mapping[str, type] = field(default_factory=dict)
    types: Mapping[str, type] = field(default_factory=dict)
    read_only: tuple[str, ...] = ()
    response_fields: tuple[str, ...] = ()
    divergent_statuses: tuple[int, ...] = ()
    """Statuses the service is recorded answering although the specification omits them."""

    def check_request(self, query: Mapping[str, str], body: Any) -> list[str]:
        problems: list[str] = []
        if query.get("api-version") != self.api_version:
            problems.append(f"api-version {query.get('api-version')!r} is not "
                            f"{self.api_version}")
        problems += [f"query parameter {q} is required" for q in self.query if not query.get(q)]
        if not self.required and not self.types and not self.read_only:
            return problems
        if not isinstance(body, dict):
            return [*problems, "the request body must be a JSON object"]
        for path, kind in self.required.items():
            found, value = _lookup(body, path)
            if not found or value is None:
                problems.append(f"{path} is required")
            elif not isinstance(value, kind):
                problems.append(f"{path} must be {kind.__name__}, got {type(value).__name__}")
        for path, kind in self.types.items():
            found, value = _lookup(body, path)
            if found and value is not None and not isinstance(value, kind):
                problems.append(f"{path} must be {kind.__name__}, got {type(value).__name__}")
        for path in self.read_only:
            found, value = _lookup(body, path)
            if found and value is not None:
                problems.append(f"{path} is read-only and must not be sent")
        return problems

    def check_response(self, status: int, body: Any) -> None:
        if status >= 400:
            if not (isinstance(body, dict) and (
                    isinstance(body.get("error"), dict) or "Code" in body)):
                raise ContractError(f"{self.operation}: error {status} without an error body")
            return
        if status not in self.statuses and status not in self.divergent_statuses:
            raise ContractError(f"{self.operation}: the specification lists {self.statuses} "
                                f"for success, the fake answered {status}")
        if status in (200, 201) and self.response_fields:
            missing = [f for f in self.response_fields if not _lookup(body, f)[0]]
            if missing:
                raise ContractError(f"{self.operation}: {status} body lacks {missing}")


def _lookup(body: Any, path: str) -> tuple[bool, Any]:
    value = body
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return False, None
        value = value[part]
    return True, value


def _props(*names: str) -> tuple[str, ...]:
    return tuple(f"properties.{n}" for n in names)


_CONTRACTS = (
    Contract("WebApps_Get", WEB, (200,), response_fields=(
        "id", "properties.defaultHostName", "properties.customDomainVerificationId",
        "properties.serverFarmId")),
    Contract("WebApps_AnalyzeCustomHostname", WEB, (200,), query=("hostName",),
             response_fields=("properties.customDomainVerificationTest",)),
    Contract("WebApps_GetHostNameBinding", WEB, (200,), response_fields=("id", "properties")),
    Contract("WebApps_CreateOrUpdateHostNameBinding", WEB, (200,),
             types={"properties.siteName": str, "properties.sslState": str,
                    "properties.thumbprint": str, "properties.hostNameType": str,
                    "properties.customHostNameDnsRecordType": str},
             read_only=(*_ARM_RESOURCE_READ_ONLY, *_props("virtualIP")),
             response_fields=("id", "properties")),
    Contract("WebApps_DeleteHostNameBinding", WEB, (200, 204)),
    Contract("Certificates_Get", WEB, (200,), response_fields=("id", "location", "properties")),
    Contract("Certificates_CreateOrUpdate", WEB, (200,), divergent_statuses=(202,),
             required={"location": str},
             types={"properties.serverFarmId": str, "properties.canonicalName": str,
                    "properties.password": str, "properties.keyVaultId": str,
                    "properties.keyVaultSecretName": str},
             read_only=(*_ARM_RESOURCE_READ_ONLY, *_props(
                 "cerBlob", "expirationDate", "friendlyName", "hostingEnvironmentProfile",
                 "issueDate", "issuer", "keyVaultSecretStatus", "publicKeyHash", "selfLink",
                 "siteName", "subjectName", "thumbprint", "valid")),
             response_fields=("id", "properties")),
    Contract("Certificates_Delete", WEB, (200, 204)),
    Contract("Zones_Get", DNS, (200,), response_fields=("etag", "properties.nameServers")),
    Contract("RecordSets_Get", DNS, (200,), response_fields=("etag", "properties.fqdn")),
    Contract("RecordSets_CreateOrUpdate", DNS, (200, 201),
             types={"properties.TTL": int, "properties.TXTRecords": list,
                    "properties.ARecords": list, "properties.CNAMERecord": dict},
             read_only=("id", "name", "type", "properties.fqdn",
                        "properties.provisioningState"),
             response_fields=("etag", "properties.fqdn")),
    Contract("RecordSets_Delete", DNS, (200, 204)),
    Contract("Servers_Get", SQL, (200,), response_fields=("location",)),
    Contract("ElasticPools_Get", SQL, (200,), response_fields=("id",)),
    Contract("Databases_Get", SQL, (200,), response_fields=("id", "properties.status")),
    Contract("Databases_CreateOrUpdate", SQL, (200, 201, 202), required={"location": str},
             types={"sku.name": str, "properties.elasticPoolId": str,
                    "properties.collation": str, "properties.maxSizeBytes": int,
                    "properties.createMode": str, "properties.sourceDatabaseId": str},
             read_only=("id", "name", "type", "kind", "managedBy", "systemData", *_props(
                 "creationDate", "currentBackupStorageRedundancy",
                 "currentServiceObjectiveName", "currentSku", "databaseId",
                 "defaultSecondaryLocation", "earliestRestoreDate", "failoverGroupId",
                 "isInfraEncryptionEnabled", "maxLogSizeBytes", "pausedDate",
                 "requestedServiceObjectiveName", "resumedDate", "status"))),
    Contract("Databases_Update", SQL, (200, 202),
             types={"sku.name": str, "properties.elasticPoolId": str,
                    "properties.maxSizeBytes": int},
             read_only=_props(
                 "creationDate", "currentBackupStorageRedundancy",
                 "currentServiceObjectiveName", "currentSku", "databaseId",
                 "defaultSecondaryLocation", "earliestRestoreDate", "failoverGroupId",
                 "isInfraEncryptionEnabled", "maxLogSizeBytes", "pausedDate",
                 "requestedServiceObjectiveName", "resumedDate", "status")),
    Contract("Databases_Delete", SQL, (200, 202, 204)),
    Contract("FlexibleServers_Get", PG, (200,), response_fields=("location",)),
    Contract("FlexibleServerDatabases_Get", PG, (200,), response_fields=("id", "properties")),
    Contract("FlexibleServerDatabases_Create", PG, (202,),
             types={"properties.charset": str, "properties.collation": str},
             read_only=_ARM_RESOURCE_READ_ONLY),
    Contract("FlexibleServerDatabases_Delete", PG, (202, 204)),
    Contract("GetSecrets", KV, (200,), response_fields=("value",)),
    Contract("GetSecret", KV, (200,), response_fields=("id", "value", "attributes")),
    Contract("SetSecret", KV, (200,), required={"value": str},
             types={"contentType": str, "tags": dict, "attributes": dict},
             read_only=("id", "kid", "managed", "attributes.created", "attributes.updated",
                        "attributes.recoveryLevel", "attributes.recoverableDays"),
             response_fields=("id", "value", "attributes")),
    Contract("DeleteSecret", KV, (200,), response_fields=("id", "recoveryId", "deletedDate")),
    Contract("GetDeletedSecret", KV, (200,), response_fields=("id", "recoveryId")),
    Contract("RecoverDeletedSecret", KV, (200,), response_fields=("id", "attributes")),
    Contract("PurgeDeletedSecret", KV, (204,)),
)

CONTRACTS: dict[str, Contract] = {c.operation: c for c in _CONTRACTS}

_missing = {o.name for o in OPERATIONS} ^ set(CONTRACTS)
if _missing:  # pragma: no cover - a table edit that forgot one side
    raise RuntimeError(f"operations and contracts differ: {sorted(_missing)}")
