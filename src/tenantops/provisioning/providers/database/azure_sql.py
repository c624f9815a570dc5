"""``azure-sql``: one Azure SQL database per tenant, in an elastic pool, through azure-mgmt-sql
(api-version 2025-01-01).

``databases.begin_create_or_update`` is a long-running operation (shared reference
provisioning-apis.md §4); tenantops sends the PUT and does not wait on the poller. The step is
`Pending` while the database is ``Creating`` or moving pools, and `Ready` once ``GET`` shows
it ``Online`` in the configured pool. PUT converges, so a repeated step never creates a second
database; a database in another pool is moved into the configured one.

Removal sends the DELETE (also long-running) and is `Pending` until ``GET`` answers 404.

Each operation's ``Azure-AsyncOperation`` status is read on the next call (`TrackedOperations`):
one that ends ``Failed`` or ``Canceled`` fails the step with Azure's code and message instead
of waiting for a database that will never come. A PUT while another operation on the
database runs answers 409 ``ConflictingDatabaseOperation``, which is transient.

Logins: Azure SQL users are not ARM resources. The database's login named in the plan is
created inside the database by T-SQL (``CREATE USER ... WITH PASSWORD``, or an Entra ID
identity ``FROM EXTERNAL PROVIDER``), typically by the tenant app's migrations with the
password from the secrets provider; see docs/azure.md. The outputs name the login and the
secret so that step can find them.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from azure.mgmt.sql import SqlManagementClient
from azure.mgmt.sql.models import Database as ArmDatabase
from azure.mgmt.sql.models import DatabaseProperties

from tenantops.config import AzureSqlDatabaseSettings, Settings
from tenantops.errors import ConfigError
from tenantops.provisioning.providers.azure.calls import azure_call, azure_get, start_operation
from tenantops.provisioning.providers.azure.connection import AzureConnection
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


class AzureSqlDatabases(DatabaseProvider):
    """Databases on logical server ``settings.server``, in the elastic pool the tenant's plan
    names (``plans.<name>.database.elastic_pool``, `Database.elastic_pool`), else
    ``settings.elastic_pool``. A plan change to another pool moves the database in place
    (the same PUT with the new ``elasticPoolId``): no data copy."""

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
        return {"database": resource.name, "login": resource.login, "secret": resource.secret,
                "server": fqdn, "elastic_pool": self._pool_of(resource),
                "location": f"mssql://{fqdn}/{resource.name}"}

    def _ensure(self, resource: Resource) -> Outcome:
        assert isinstance(resource, Database)
        location, _ = self._server()
        what = f"create or update database {resource.name} on SQL server {self.server}"
        if self._operations.running(f"ensure:{resource.name}", self.client, what):
            return Pending(f"Azure SQL is still working on database {resource.name}",
                           self.settings.poll_seconds)
        pool = self._pool_of(resource)
        pool_id = self._pool_id(pool)
        current = self._get(resource.name)
        in_pool = current is not None and \
            str(current.elastic_pool_id or "").lower() == pool_id.lower()
        if current is not None and in_pool:
            status = _text(current.status)
            if status in _SETTLED:
                return Ready(self._outputs(resource), changed=False,
                             message=None if resource.login_enabled else UNMANAGED_LOGINS)
            return Pending(f"database {resource.name} is {status or 'being created'}",
                           self.settings.poll_seconds)
        properties = DatabaseProperties(elastic_pool_id=pool_id,
                                        collation=self.settings.collation)
        if self.settings.max_size_gb:
            properties.max_size_bytes = self.settings.max_size_gb * 1024 ** 3
        wanted = ArmDatabase(location=location, properties=properties)
        verb = "create" if current is None else f"move into pool {pool}"
        url = start_operation(
            f"{verb} database {resource.name} on SQL server {self.server}",
            lambda hook: self.client.databases.begin_create_or_update(
                self.resource_group, self.server, resource.name, wanted, polling=False,
                raw_response_hook=hook))
        self._operations.started(f"ensure:{resource.name}", url)
        return Pending(f"Azure SQL accepted the request to {verb} database {resource.name}",
                       self.settings.poll_seconds)

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
        assert isinstance(resource, Database)
        current = self._get(resource.name)
        if current is None:
            return None
        return {"name": resource.name, "status": _text(current.status),
                "elastic_pool_id": current.elastic_pool_id}

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
