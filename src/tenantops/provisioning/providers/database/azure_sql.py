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

**Moves** to another logical server (``[[providers.database.servers]]`` entries, each with its
``server``; the pool ``elastic_pool`` on each) use Azure SQL's database copy: ``PUT`` of the
target database on the target server with ``createMode: Copy`` and the source's
``sourceDatabaseId`` (`DatabaseCopy`), a long-running operation. The move's ``create_target``
makes nothing (the copy makes the database) and its ``check_copy`` checks both are
``Online`` (tenantops cannot count rows without a SQL login). As tenantops cannot freeze
writes either, such a move is refused unless the tenant is suspended (docs/azure.md).

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

from collections.abc import Mapping
from dataclasses import dataclass
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

from tenantops.config import DEFAULT_SERVER, AzureSqlDatabaseSettings, Settings
from tenantops.errors import ConfigError, PermanentProviderError
from tenantops.provisioning.providers.azure.calls import azure_call, azure_get, start_operation
from tenantops.provisioning.providers.azure.connection import AzureConnection
from tenantops.provisioning.providers.azure.errors import arm_error_parts
from tenantops.provisioning.providers.azure.operations import TrackedOperations
from tenantops.provisioning.providers.azure.resource_ids import resource_id
from tenantops.provisioning.providers.base import Outcome, Pending, Ready, Resource
from tenantops.provisioning.providers.database import (
    UNMANAGED_LOGINS,
    CopyCheck,
    Database,
    DatabaseCopy,
    DatabaseProvider,
)

__all__ = ["AzureSqlDatabases"]

_SETTLED = ("Online",)
_POOL_SKU = "ElasticPool"
"""The SKU name of a database in an elastic pool (its service objective is the pool's)."""
_UNKNOWN_SKU_CODES = ("invalidsku", "invalidskuname")


@dataclass(frozen=True)
class _SqlServer:
    """A logical server tenant databases go on: the placement's name for it (``default``, or
    a ``[[providers.database.servers]]`` entry's), the logical server and its resource
    group."""

    placement: str
    name: str
    resource_group: str


class AzureSqlDatabases(DatabaseProvider):
    """Databases on the logical servers of the settings (``settings.server``, the server
    ``default``; or the ``[[providers.database.servers]]`` entries): a single database of the
    SKU the tenant's plan names (``plans.<name>.database.sku``, `Database.sku`), else in the
    elastic pool it names (``plans.<name>.database.elastic_pool``, `Database.elastic_pool`),
    else in ``settings.elastic_pool`` (a pool of that name on each server). A plan change is
    applied to the database in place (PATCH): no data copy. A move to another server is
    Azure SQL's database copy (`DatabaseCopy`)."""

    name = "azure-sql"
    # Tenant schemas are the app's deployment's on Azure (docs/fleet.md): no DatabaseSchema.
    resource_types = (Database, DatabaseCopy, CopyCheck)
    copies_data = True

    def __init__(self, connection: AzureConnection, settings: AzureSqlDatabaseSettings,
                 servers: Mapping[str, tuple[str, str | None]] | None = None) -> None:
        """``servers``: each placement server name with its logical server and resource
        group (None: the provider section's, then ``azure.resource_group``); None: the one
        server ``default``, ``settings.server``."""
        super().__init__()
        if servers is None and not settings.server:
            raise ConfigError(
                "providers.database.azure_sql needs server: the logical server the tenant "
                "databases go on (or list servers in [[providers.database.servers]])")
        if not settings.elastic_pool:
            raise ConfigError(
                "providers.database.azure_sql needs elastic_pool: the elastic pool the "
                "tenant databases of a plan without a pool or SKU of its own go into")
        self.connection = connection
        self.settings = settings
        default_group = settings.resource_group
        listed = servers if servers is not None else {
            DEFAULT_SERVER: (str(settings.server), None)}
        self._servers = {
            placement: _SqlServer(placement, name, connection.group(
                group or default_group, "providers.database.azure_sql.resource_group"))
            for placement, (name, group) in listed.items()}
        first = next(iter(self._servers.values()))
        self.server = first.name
        self.resource_group = first.resource_group
        self._client: SqlManagementClient | None = None
        self._server_info: dict[str, tuple[str, str]] = {}
        self._operations = TrackedOperations()

    @classmethod
    def from_settings(cls, settings: Settings) -> AzureSqlDatabases:
        database = settings.providers.database
        servers = ({s.name: (str(s.server), s.resource_group) for s in database.servers}
                   if database.servers else None)
        return cls(AzureConnection.from_settings(settings.azure), database.azure_sql, servers)

    @property
    def client(self) -> SqlManagementClient:
        if self._client is None:
            self._client = SqlManagementClient(
                self.connection.credential, self.connection.subscription_id,
                **self.connection.arm_options())
        return self._client

    def _on(self, resource: Database) -> _SqlServer:
        """The logical server ``resource`` is on."""
        found = self._servers.get(resource.server)
        if found is None:
            raise PermanentProviderError(
                f"database {resource.name} is placed on server {resource.server!r}, which "
                f"the azure-sql settings do not list (servers: {', '.join(self._servers)}); "
                "give it a [[providers.database.servers]] entry with its logical server",
                resource=resource.key)
        return found

    def _database_id(self, server: _SqlServer, name: str) -> str:
        return resource_id(self.connection.subscription_id, server.resource_group,
                           "Microsoft.Sql", "servers", server.name, "databases", name)

    def _pool_id(self, server: _SqlServer, pool: str) -> str:
        return resource_id(self.connection.subscription_id, server.resource_group,
                           "Microsoft.Sql", "servers", server.name, "elasticPools", pool)

    def _pool_of(self, resource: Database) -> str:
        """The elastic pool ``resource`` goes into: its plan's, else the provider's."""
        return resource.elastic_pool or str(self.settings.elastic_pool)

    def _server(self, server: _SqlServer) -> tuple[str, str]:
        """(region, fully qualified domain name) of ``server``, read once."""
        if server.placement not in self._server_info:
            found = azure_call(
                f"read SQL server {server.name} in resource group {server.resource_group}",
                lambda: self.client.servers.get(server.resource_group, server.name))
            self._server_info[server.placement] = (
                str(found.location), str(found.fully_qualified_domain_name or
                                         f"{server.name}.database.windows.net"))
        return self._server_info[server.placement]

    def _get(self, server: _SqlServer, name: str) -> ArmDatabase | None:
        return azure_get(f"read database {name} on SQL server {server.name}",
                         lambda: self.client.databases.get(server.resource_group, server.name,
                                                           name))

    def _outputs(self, resource: Database) -> dict[str, Any]:
        _, fqdn = self._server(self._on(resource))
        home: dict[str, Any] = ({"sku": resource.sku} if resource.sku
                                else {"elastic_pool": self._pool_of(resource)})
        return {"database": resource.name, "login": resource.login, "secret": resource.secret,
                "server": fqdn, **home, "location": f"mssql://{fqdn}/{resource.name}"}

    def _is_home(self, current: ArmDatabase, resource: Database) -> bool:
        """Whether ``current`` is where ``resource`` goes (its SKU, or its pool)."""
        pool_id = str(current.elastic_pool_id or "")
        if resource.sku:
            return not pool_id and _same(current.current_service_objective_name, resource.sku)
        return pool_id.lower() == self._pool_id(self._on(resource),
                                                self._pool_of(resource)).lower()

    @staticmethod
    def _key(verb: str, server: _SqlServer, name: str) -> str:
        return f"{verb}:{server.placement}/{name}"

    def _ensure(self, resource: Resource) -> Outcome:
        if isinstance(resource, DatabaseCopy):
            return self._copy(resource)
        if isinstance(resource, CopyCheck):
            return self._check_copy(resource)
        assert isinstance(resource, Database)
        server = self._on(resource)
        location, _ = self._server(server)
        what = f"create or update database {resource.name} on SQL server {server.name}"
        if self._operations.running(self._key("ensure", server, resource.name), self.client,
                                    what):
            return Pending(f"Azure SQL is still working on database {resource.name}",
                           self.settings.poll_seconds)
        current = self._get(server, resource.name)
        if current is not None and self._is_home(current, resource):
            status = _text(current.status)
            if status in _SETTLED:
                return Ready(self._outputs(resource), changed=False,
                             message=None if resource.login_enabled else UNMANAGED_LOGINS)
            return Pending(f"database {resource.name} is {status or 'being created'}",
                           self.settings.poll_seconds)
        if current is None and resource.empty:
            # A move's target: Azure SQL's database copy makes it (copy_data).
            return Ready({**self._outputs(resource), "empty": True}, changed=False,
                         message="on Azure SQL the copy makes the target database "
                                 "(the copy_data step): nothing to make before it")
        if current is not None and resource.sku and \
                _same(current.requested_service_objective_name, resource.sku):
            # Asked for already (by a request whose status URL a restart lost): wait for it.
            return Pending(f"database {resource.name} is being scaled to SKU {resource.sku!r}",
                           self.settings.poll_seconds)
        if current is None:
            verb = "create"
            call = self._create_call(server, resource, location)
        else:
            verb = ("move into pool " + self._pool_of(resource) if not resource.sku
                    else f"change to SKU {resource.sku!r}")
            call = self._update_call(server, resource)
        try:
            url = start_operation(
                f"{verb} database {resource.name} on SQL server {server.name}", call)
        except PermanentProviderError as exc:
            unknown = self._unknown_sku(exc, server, resource)
            if unknown is None:
                raise
            raise unknown from exc
        self._operations.started(self._key("ensure", server, resource.name), url)
        return Pending(f"Azure SQL accepted the request to {verb} database {resource.name}",
                       self.settings.poll_seconds)

    def _wanted(self, server: _SqlServer, resource: Database, location: str,
                **extra: Any) -> ArmDatabase:
        """The ``Databases_CreateOrUpdate`` body of a new database where ``resource``
        goes (``extra``: more properties, as a copy's ``createMode``)."""
        properties = DatabaseProperties(collation=self.settings.collation, **extra)
        if not resource.sku:
            properties.elastic_pool_id = self._pool_id(server, self._pool_of(resource))
        if self.settings.max_size_gb:
            properties.max_size_bytes = self.settings.max_size_gb * 1024 ** 3
        wanted = ArmDatabase(location=location, properties=properties)
        if resource.sku:
            wanted.sku = Sku(name=resource.sku)
        return wanted

    def _create_call(self, server: _SqlServer, resource: Database, location: str) -> Any:
        """``Databases_CreateOrUpdate`` of a new database where ``resource`` goes."""
        wanted = self._wanted(server, resource, location)
        return lambda hook: self.client.databases.begin_create_or_update(
            server.resource_group, server.name, resource.name, wanted, polling=False,
            raw_response_hook=hook)

    def _update_call(self, server: _SqlServer, resource: Database) -> Any:
        """``Databases_Update`` of an existing database to where ``resource`` goes: in place,
        the data stays."""
        if resource.sku:
            change = DatabaseUpdate(sku=Sku(name=resource.sku))
        else:
            change = DatabaseUpdate(
                sku=Sku(name=_POOL_SKU), properties=DatabaseUpdateProperties(
                    elastic_pool_id=self._pool_id(server, self._pool_of(resource))))
        return lambda hook: self.client.databases.begin_update(
            server.resource_group, server.name, resource.name, change, polling=False,
            raw_response_hook=hook)

    def _unknown_sku(self, exc: PermanentProviderError, server: _SqlServer,
                     resource: Database) -> PermanentProviderError | None:
        """Azure's 400 for a SKU it does not offer, as an error naming the plan setting."""
        cause = exc.__cause__
        if not resource.sku or not isinstance(cause, HttpResponseError):
            return None
        code, message = arm_error_parts(cause)
        if code.lower() not in _UNKNOWN_SKU_CODES:
            return None
        return PermanentProviderError(
            f"Azure SQL does not offer SKU {resource.sku!r} for database {resource.name} on "
            f"SQL server {server.name} (Azure answered 400 {code}: {message}); it is the "
            f"tenant's plan's [plans.<name>.database] sku = {resource.sku!r}: set it to a "
            "service objective name the region offers (az sql db list-editions -l <region>: "
            "S0, P1, GP_Gen5_2, ...), or change the tenant's plan, then retry the run",
            status_code=400)

    def _copy(self, copy: DatabaseCopy) -> Outcome:
        """Azure SQL's database copy (``createMode: Copy``, ``sourceDatabaseId``;
        ``CreateDatabaseCopyMode.json``): the target database made on the target server as a
        transactionally consistent snapshot of the source, a long-running operation; `Ready`
        once the target is ``Online``. A target that exists is this copy's (the move's
        ``create_target`` makes nothing on Azure SQL): it is waited for, not copied again."""
        source, target = self._on(copy.source), self._on(copy.target)
        name = copy.target.name
        key = self._key("copy", target, name)
        what = (f"copy database {copy.source.name} of SQL server {source.name} to database "
                f"{name} on SQL server {target.name}")
        if self._operations.running(key, self.client, what):
            return Pending(f"Azure SQL is still copying database {copy.source.name}",
                           self.settings.poll_seconds)
        current = self._get(target, name)
        if current is not None:
            status = _text(current.status)
            if status not in _SETTLED:
                return Pending(f"database {name} on SQL server {target.name} is "
                               f"{status or 'being copied'}", self.settings.poll_seconds)
            return Ready({"source": self._database_id(source, copy.source.name),
                          "target": self._database_id(target, name)}, changed=False)
        if self._get(source, copy.source.name) is None:
            raise PermanentProviderError(
                f"cannot {what}: the source database does not exist", resource=copy.key)
        location, _ = self._server(target)
        wanted = self._wanted(target, copy.target, location, create_mode="Copy",
                              source_database_id=self._database_id(source, copy.source.name))
        url = start_operation(what, lambda hook: self.client.databases.begin_create_or_update(
            target.resource_group, target.name, name, wanted, polling=False,
            raw_response_hook=hook))
        self._operations.started(key, url)
        return Pending(f"Azure SQL accepted the request to {what}", self.settings.poll_seconds)

    def _check_copy(self, check: CopyCheck) -> Outcome:
        """tenantops holds no SQL login on Azure SQL, so it cannot count rows: the check is
        that the copy and its source are both ``Online`` (Azure's copy is a transactionally
        consistent snapshot of the source, docs/azure.md)."""
        found: dict[str, str] = {}
        for label, database in (("source", check.source), ("copy", check.target)):
            server = self._on(database)
            current = self._get(server, database.name)
            status = "absent" if current is None else _text(current.status)
            if status not in _SETTLED:
                raise PermanentProviderError(
                    f"the {label} database {database.name} on SQL server {server.name} is "
                    f"{status}, not Online: the copy cannot be checked; retry the move's run "
                    "(the copy is made again when the target is absent), or abandon it",
                    resource=check.key)
            found[label] = self._database_id(server, database.name)
        return Ready(found, changed=False,
                     message="Azure SQL's database copy is a transactionally consistent "
                             "snapshot of the source; tenantops holds no SQL login there, so "
                             "it counts no rows")

    def _remove(self, resource: Resource) -> Outcome:
        if isinstance(resource, (DatabaseCopy, CopyCheck)):
            return Ready({}, changed=False)
        assert isinstance(resource, Database)
        server = self._on(resource)
        key = self._key("remove", server, resource.name)
        what = f"delete database {resource.name} on SQL server {server.name}"
        if self._operations.running(key, self.client, what):
            return Pending(f"Azure SQL is still deleting database {resource.name}",
                           self.settings.poll_seconds)
        if self._get(server, resource.name) is None:
            return Ready({"database": resource.name, "login": resource.login}, changed=False)
        url = start_operation(what, lambda hook: self.client.databases.begin_delete(
            server.resource_group, server.name, resource.name, polling=False,
            raw_response_hook=hook))
        self._operations.started(key, url)
        return Pending(f"Azure SQL is deleting database {resource.name}",
                       self.settings.poll_seconds)

    def observes(self, resource: Resource) -> bool:
        """Not a login tenantops does not hold (a preview of disabling it shows ``check``),
        nor a copy or its check (what they find is known only when they run)."""
        if isinstance(resource, (DatabaseCopy, CopyCheck)):
            return False
        return not (isinstance(resource, Database) and not resource.login_enabled)

    def _observe(self, resource: Resource) -> dict[str, Any] | None:
        """The database's name, status and home, in `Database`'s terms (so a preview
        compares them with what the plan wants): ``elastic_pool`` (None out of any pool, or
        in the provider's pool when the resource names none) and ``sku`` (the service
        objective of a single database, else None)."""
        assert isinstance(resource, Database)
        current = self._get(self._on(resource), resource.name)
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
        server = self._on(database)
        current = self._get(server, database.name)
        if current is None:
            return {}
        return {"database": database.name, "server": self._server(server)[1],
                "status": _text(current.status)}


def _text(value: object) -> str:
    if isinstance(value, Enum):
        return str(value.value)
    return "" if value is None else str(value)


def _same(value: object, sku: str) -> bool:
    """Whether ``value`` (a service objective name Azure answered) is ``sku``."""
    return value is not None and str(value).lower() == sku.lower()
