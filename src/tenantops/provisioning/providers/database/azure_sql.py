"""``azure-sql``: one Azure SQL database per tenant, in an elastic pool or a single database of
its own SKU, through azure-mgmt-sql (api-version 2025-01-01).

Where a database goes is its plan's (`Database.elastic_pool` / `Database.sku`, from
``[plans.<name>.database]``), else the provider's ``elastic_pool``:

- **Creation** is ``databases.begin_create_or_update`` (``Databases_CreateOrUpdate``, PUT):
  ``properties.elasticPoolId`` for a pool, or ``sku: {name: <service objective>}`` and no
  pool for a single database (the SKU name alone names the service objective: ``S0``,
  ``GP_Gen5_2``; Azure fills in tier and capacity; examples ``CreateDatabaseMin.json`` and
  ``PatchVCoreDatabase.json`` of the Azure REST API specification).
- **A change** of an existing database (another pool, pool to SKU, SKU to SKU, SKU to pool,
  as after a plan change) is ``databases.begin_update`` (``Databases_Update``, PATCH) of
  that database in place, no copy: ``sku: {name: S1}`` alone (leaving any pool: Azure
  refuses an ``elasticPoolId`` with any SKU but ``ElasticPool``,
  ``ElasticPoolSkuCombinationInvalid``), or ``sku: {name: ElasticPool}`` with the pool's
  ``elasticPoolId``.
- Whether a database is where it should be is read from ``GET``: in the pool
  (``elasticPoolId``), or out of any pool with ``currentServiceObjectiveName`` the plan's
  SKU. ``sku.name`` is no use for that: Azure answers ``Standard`` for ``S0`` (and refuses
  ``Standard`` as a request's SKU name, azure-sdk-for-java#44242).

Both are long-running operations (shared reference provisioning-apis.md §4); tenantops sends
the request and does not wait on the poller. The step is `Pending` while the database is
``Creating`` or ``Scaling``, and `Ready` once ``GET`` shows it ``Online`` where it should be.
A repeated step never creates a second database nor sends a second change: a database whose
``requestedServiceObjectiveName`` already is the plan's SKU is waited for.

Removal sends the DELETE (also long-running) and is `Pending` until ``GET`` answers 404.

Each operation's ``Azure-AsyncOperation`` status is read on the next call (`TrackedOperations`):
one that ends ``Failed`` or ``Canceled`` fails the step with Azure's code and message instead
of waiting for a database that will never come (a failed change leaves the database as it
was). A request while another operation on the database runs answers 409
``ConflictingDatabaseOperation``, which is transient. A SKU Azure does not offer answers 400
``InvalidSku``; the step fails naming the plan setting and the value.

Logins: Azure SQL users are not ARM resources. The database's login named in the plan is
created inside the database by T-SQL (``CREATE USER ... WITH PASSWORD``, or an Entra ID
identity ``FROM EXTERNAL PROVIDER``), typically by the tenant app's migrations with the
password from the secrets provider; see docs/azure.md. The outputs name the login and the
secret so that step can find them.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from azure.core.exceptions import HttpResponseError
from azure.mgmt.sql import SqlManagementClient
from azure.mgmt.sql.models import Database as ArmDatabase
from azure.mgmt.sql.models import (
    DatabaseProperties,
    DatabaseUpdate,
    DatabaseUpdateProperties,
    Sku,
)

from tenantops.config import AzureSqlDatabaseSettings, Settings
from tenantops.errors import ConfigError, PermanentProviderError
from tenantops.provisioning.providers.azure.calls import azure_call, azure_get, start_operation
from tenantops.provisioning.providers.azure.connection import AzureConnection
from tenantops.provisioning.providers.azure.errors import arm_error_parts
from tenantops.provisioning.providers.azure.operations import TrackedOperations
from tenantops.provisioning.providers.azure.resource_ids import resource_id
from tenantops.provisioning.providers.base import Outcome, Pending, Ready, Resource
from tenantops.provisioning.providers.database import (
    UNMANAGED_LOGINS,
    Database,
    DatabaseProvider,
)

__all__ = ["AzureSqlDatabases"]

_SETTLED = ("Online",)
_POOL_SKU = "ElasticPool"
"""The SKU name of a database in an elastic pool (its service objective is the pool's)."""
_UNKNOWN_SKU_CODES = ("invalidsku", "invalidskuname")


class AzureSqlDatabases(DatabaseProvider):
    """Databases on logical server ``settings.server``: a single database of the SKU the
    tenant's plan names (``plans.<name>.database.sku``, `Database.sku`), else in the elastic
    pool it names (``plans.<name>.database.elastic_pool``, `Database.elastic_pool`), else in
    ``settings.elastic_pool``. A plan change is applied to the database in place (PATCH):
    no data copy."""

    name = "azure-sql"
    # Tenant schemas are the app's deployment's on Azure (docs/fleet.md): no DatabaseSchema.
    resource_types = (Database,)

    def __init__(self, connection: AzureConnection, settings: AzureSqlDatabaseSettings) -> None:
        super().__init__()
        if not settings.server or not settings.elastic_pool:
            raise ConfigError(
                "providers.database.azure_sql needs server and elastic_pool: the logical "
                "server and the elastic pool the tenant databases go into")
        self.connection = connection
        self.settings = settings
        self.server = settings.server
        self.resource_group = connection.group(settings.resource_group,
                                               "providers.database.azure_sql.resource_group")
        self._client: SqlManagementClient | None = None
        self._server_info: tuple[str, str] | None = None
        self._operations = TrackedOperations()

    @classmethod
    def from_settings(cls, settings: Settings) -> AzureSqlDatabases:
        return cls(AzureConnection.from_settings(settings.azure),
                   settings.providers.database.azure_sql)

    @property
    def client(self) -> SqlManagementClient:
        if self._client is None:
            self._client = SqlManagementClient(
                self.connection.credential, self.connection.subscription_id,
                **self.connection.arm_options())
        return self._client

    def _pool_id(self, pool: str) -> str:
        return resource_id(self.connection.subscription_id, self.resource_group,
                           "Microsoft.Sql", "servers", self.server, "elasticPools", pool)

    def _pool_of(self, resource: Database) -> str:
        """The elastic pool ``resource`` goes into: its plan's, else the provider's."""
        return resource.elastic_pool or str(self.settings.elastic_pool)

    def _server(self) -> tuple[str, str]:
        """(region, fully qualified domain name) of the server, read once."""
        if self._server_info is None:
            server = azure_call(
                f"read SQL server {self.server} in resource group {self.resource_group}",
                lambda: self.client.servers.get(self.resource_group, self.server))
            self._server_info = (str(server.location),
                                 str(server.fully_qualified_domain_name or
                                     f"{self.server}.database.windows.net"))
        return self._server_info

    def _get(self, name: str) -> ArmDatabase | None:
        return azure_get(f"read database {name} on SQL server {self.server}",
                         lambda: self.client.databases.get(self.resource_group, self.server, name))

    def _outputs(self, resource: Database) -> dict[str, Any]:
        _, fqdn = self._server()
        home: dict[str, Any] = ({"sku": resource.sku} if resource.sku
                                else {"elastic_pool": self._pool_of(resource)})
        return {"database": resource.name, "login": resource.login, "secret": resource.secret,
                "server": fqdn, **home, "location": f"mssql://{fqdn}/{resource.name}"}

    def _where(self, resource: Database) -> str:
        """Where ``resource`` goes, for messages: "SKU 'S0'" or "pool tenants"."""
        return f"SKU {resource.sku!r}" if resource.sku else f"pool {self._pool_of(resource)}"

    def _is_home(self, current: ArmDatabase, resource: Database) -> bool:
        """Whether ``current`` is where ``resource`` goes (its SKU, or its pool)."""
        pool_id = str(current.elastic_pool_id or "")
        if resource.sku:
            return not pool_id and _same(current.current_service_objective_name, resource.sku)
        return pool_id.lower() == self._pool_id(self._pool_of(resource)).lower()

    def _ensure(self, resource: Resource) -> Outcome:
        assert isinstance(resource, Database)
        location, _ = self._server()
        what = f"create or update database {resource.name} on SQL server {self.server}"
        if self._operations.running(f"ensure:{resource.name}", self.client, what):
            return Pending(f"Azure SQL is still working on database {resource.name}",
                           self.settings.poll_seconds)
        current = self._get(resource.name)
        if current is not None and self._is_home(current, resource):
            status = _text(current.status)
            if status in _SETTLED:
                return Ready(self._outputs(resource), changed=False,
                             message=None if resource.login_enabled else UNMANAGED_LOGINS)
            return Pending(f"database {resource.name} is {status or 'being created'}",
                           self.settings.poll_seconds)
        if current is not None and resource.sku and \
                _same(current.requested_service_objective_name, resource.sku):
            # Asked for already (by a request whose status URL a restart lost): wait for it.
            return Pending(f"database {resource.name} is being scaled to SKU {resource.sku!r}",
                           self.settings.poll_seconds)
        if current is None:
            verb = "create"
            call = self._create_call(resource, location)
        else:
            verb = ("move into pool " + self._pool_of(resource) if not resource.sku
                    else f"change to SKU {resource.sku!r}")
            call = self._update_call(resource)
        try:
            url = start_operation(f"{verb} database {resource.name} on SQL server {self.server}",
                                  call)
        except PermanentProviderError as exc:
            unknown = self._unknown_sku(exc, resource)
            if unknown is None:
                raise
            raise unknown from exc
        self._operations.started(f"ensure:{resource.name}", url)
        return Pending(f"Azure SQL accepted the request to {verb} database {resource.name}",
                       self.settings.poll_seconds)

    def _create_call(self, resource: Database, location: str) -> Any:
        """``Databases_CreateOrUpdate`` of a new database where ``resource`` goes."""
        properties = DatabaseProperties(collation=self.settings.collation)
        if not resource.sku:
            properties.elastic_pool_id = self._pool_id(self._pool_of(resource))
        if self.settings.max_size_gb:
            properties.max_size_bytes = self.settings.max_size_gb * 1024 ** 3
        wanted = ArmDatabase(location=location, properties=properties)
        if resource.sku:
            wanted.sku = Sku(name=resource.sku)
        return lambda hook: self.client.databases.begin_create_or_update(
            self.resource_group, self.server, resource.name, wanted, polling=False,
            raw_response_hook=hook)

    def _update_call(self, resource: Database) -> Any:
        """``Databases_Update`` of an existing database to where ``resource`` goes: in place,
        the data stays."""
        if resource.sku:
            change = DatabaseUpdate(sku=Sku(name=resource.sku))
        else:
            change = DatabaseUpdate(
                sku=Sku(name=_POOL_SKU), properties=DatabaseUpdateProperties(
                    elastic_pool_id=self._pool_id(self._pool_of(resource))))
        return lambda hook: self.client.databases.begin_update(
            self.resource_group, self.server, resource.name, change, polling=False,
            raw_response_hook=hook)

    def _unknown_sku(self, exc: PermanentProviderError, resource: Database
                     ) -> PermanentProviderError | None:
        """Azure's 400 for a SKU it does not offer, as an error naming the plan setting."""
        cause = exc.__cause__
        if not resource.sku or not isinstance(cause, HttpResponseError):
            return None
        code, message = arm_error_parts(cause)
        if code.lower() not in _UNKNOWN_SKU_CODES:
            return None
        return PermanentProviderError(
            f"Azure SQL does not offer SKU {resource.sku!r} for database {resource.name} on "
            f"SQL server {self.server} (Azure answered 400 {code}: {message}); it is the "
            f"tenant's plan's [plans.<name>.database] sku = {resource.sku!r}: set it to a "
            "service objective name the region offers (az sql db list-editions -l <region>: "
            "S0, P1, GP_Gen5_2, ...), or change the tenant's plan, then retry the run",
            status_code=400)

    def _remove(self, resource: Resource) -> Outcome:
        assert isinstance(resource, Database)
        what = f"delete database {resource.name} on SQL server {self.server}"
        if self._operations.running(f"remove:{resource.name}", self.client, what):
            return Pending(f"Azure SQL is still deleting database {resource.name}",
                           self.settings.poll_seconds)
        if self._get(resource.name) is None:
            return Ready({"database": resource.name, "login": resource.login}, changed=False)
        url = start_operation(what, lambda hook: self.client.databases.begin_delete(
            self.resource_group, self.server, resource.name, polling=False,
            raw_response_hook=hook))
        self._operations.started(f"remove:{resource.name}", url)
        return Pending(f"Azure SQL is deleting database {resource.name}",
                       self.settings.poll_seconds)

    def observes(self, resource: Resource) -> bool:
        """Not a login tenantops does not hold: a preview of disabling it shows ``check``."""
        return not (isinstance(resource, Database) and not resource.login_enabled)

    def _observe(self, resource: Resource) -> dict[str, Any] | None:
        """The database's name, status and home, in `Database`'s terms (so a preview
        compares them with what the plan wants): ``elastic_pool`` (None out of any pool, or
        in the provider's pool when the resource names none) and ``sku`` (the service
        objective of a single database, else None)."""
        assert isinstance(resource, Database)
        current = self._get(resource.name)
        if current is None:
            return None
        pool_id = str(current.elastic_pool_id or "")
        pool: str | None = pool_id.rstrip("/").split("/")[-1] if pool_id else None
        if pool is not None and resource.elastic_pool is None and \
                pool.lower() == str(self.settings.elastic_pool).lower():
            pool = None
        sku = None if pool_id else (current.current_service_objective_name or None)
        return {"name": resource.name, "status": _text(current.status),
                "elastic_pool": pool, "sku": sku}

    def read_metadata(self, database: Database) -> dict[str, str]:
        """What ARM says of the database (no SQL connection is opened)."""
        current = self._get(database.name)
        if current is None:
            return {}
        return {"database": database.name, "server": self._server()[1],
                "status": _text(current.status)}


def _text(value: object) -> str:
    if isinstance(value, Enum):
        return str(value.value)
    return "" if value is None else str(value)


def _same(value: object, sku: str) -> bool:
    """Whether ``value`` (a service objective name Azure answered) is ``sku``."""
    return value is not None and str(value).lower() == sku.lower()
