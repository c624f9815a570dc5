"""``azure-postgres``: one database per tenant on an Azure Database for PostgreSQL flexible
server, through azure-mgmt-postgresqlflexibleservers (api-version 2026-10-01).

``databases.begin_create`` (there is no ``create_or_update``; shared reference
provisioning-apis.md §4) is a long-running operation that answers 202 even for a database that
exists (the specification lists no 200): tenantops sends the PUT and is `Pending` until the
operation's ``Azure-AsyncOperation`` status ends and ``GET`` finds the database. An operation
that ends ``Failed`` or ``Canceled`` fails the step with Azure's code and message
(`TrackedOperations`). While the server is busy with another operation it answers
``ServerIsBusy``, which is transient. A database that exists with another charset or
collation is refused (PostgreSQL cannot change them). Removal sends ``begin_delete`` and is
`Pending` until ``GET`` answers 404.

Roles and grants are not ARM resources (§4). Without ``admin_url`` tenantops makes the
databases only, and the tenant app's deployment makes the logins (docs/azure.md). With it,
`AzurePostgresSqlDatabases` reaches the server over SQL as that role: after ARM made the
database, the ``postgres`` provider's code makes the tenant's login its owner, disables it
while the tenant is suspended (``NOLOGIN``), rotates it between two logins and runs the SaaS's
migrations, exactly as on a self-hosted server; the database itself stays ARM's to create and
delete.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, ClassVar

from azure.mgmt.postgresqlflexibleservers import PostgreSQLManagementClient
from azure.mgmt.postgresqlflexibleservers.models import Database as ArmDatabase
from azure.mgmt.postgresqlflexibleservers.models import DatabaseProperties
from sqlalchemy import Connection

from tenantops.config import AzurePostgresDatabaseSettings, Settings
from tenantops.errors import ConfigError, PermanentProviderError, TransientProviderError
from tenantops.provisioning.providers.azure.calls import azure_call, azure_get, start_operation
from tenantops.provisioning.providers.azure.connection import AzureConnection
from tenantops.provisioning.providers.azure.operations import TrackedOperations
from tenantops.provisioning.providers.base import Outcome, Pending, Ready, Resource
from tenantops.provisioning.providers.database import (
    UNMANAGED_LOGINS,
    Database,
    DatabaseLogin,
    DatabaseProvider,
    DatabaseSchema,
    RetiredLogin,
)
from tenantops.provisioning.providers.database.postgres import PostgresDatabases
from tenantops.provisioning.providers.secrets import SecretsProvider

__all__ = ["AzurePostgresDatabases", "AzurePostgresSqlDatabases"]


class AzurePostgresDatabases(DatabaseProvider):
    """Databases on flexible server ``settings.server``."""

    name = "azure-postgres"
    # Without SQL access, tenant schemas are the app's deployment's (docs/fleet.md).
    resource_types: ClassVar[tuple[type[Resource], ...]] = (Database,)

    def __init__(self, connection: AzureConnection,
                 settings: AzurePostgresDatabaseSettings) -> None:
        super().__init__()
        if not settings.server:
            raise ConfigError(
                "providers.database.azure_postgres.server is not set; name the flexible server "
                "the tenant databases go on")
        self.connection = connection
        self.settings = settings
        self.server = settings.server
        self.resource_group = connection.group(
            settings.resource_group, "providers.database.azure_postgres.resource_group")
        self._client: PostgreSQLManagementClient | None = None
        self._fqdn: str | None = None
        self._operations = TrackedOperations()

    @classmethod
    def from_settings(cls, settings: Settings, secrets: SecretsProvider | None = None
                      ) -> AzurePostgresDatabases:
        """The provider of ``[providers.database.azure_postgres]``: with ``admin_url``, the
        one that also reaches the server over SQL (`AzurePostgresSqlDatabases`)."""
        config = settings.providers.database.azure_postgres
        connection = AzureConnection.from_settings(settings.azure)
        if config.admin_url is None:
            return cls(connection, config)
        if secrets is None:
            raise ConfigError("providers.database.azure_postgres.admin_url needs the secrets "
                              "provider (the tenant logins' passwords are kept there)")
        return AzurePostgresSqlDatabases(connection, config, secrets)

    @property
    def client(self) -> PostgreSQLManagementClient:
        if self._client is None:
            self._client = PostgreSQLManagementClient(
                self.connection.credential, self.connection.subscription_id,
                **self.connection.arm_options())
        return self._client

    def _server_fqdn(self) -> str:
        if self._fqdn is None:
            server = azure_call(
                f"read flexible server {self.server} in resource group {self.resource_group}",
                lambda: self.client.servers.get(self.resource_group, self.server))
            fqdn = server.properties.fully_qualified_domain_name if server.properties else None
            self._fqdn = str(fqdn or f"{self.server}.postgres.database.azure.com")
        return self._fqdn

    def _get(self, name: str) -> ArmDatabase | None:
        return azure_get(f"read database {name} on flexible server {self.server}",
                         lambda: self.client.databases.get(self.resource_group, self.server, name))

    def _ensure(self, resource: Resource) -> Outcome:
        assert isinstance(resource, Database)
        fqdn = self._server_fqdn()
        what = f"create database {resource.name} on flexible server {self.server}"
        if self._operations.running(f"ensure:{resource.name}", self.client, what):
            return Pending(f"Azure is creating database {resource.name} on {self.server}",
                           self.settings.poll_seconds)
        current = self._get(resource.name)
        if current is not None:
            props = current.properties
            charset = str(props.charset or "") if props else ""
            collation = str(props.collation or "") if props else ""
            if (charset.lower(), collation.lower()) != (self.settings.charset.lower(),
                                                        self.settings.collation.lower()):
                raise PermanentProviderError(
                    f"database {resource.name} exists on {self.server} with charset {charset} "
                    f"and collation {collation}, not {self.settings.charset}/"
                    f"{self.settings.collation}; PostgreSQL cannot change them. Drop it or "
                    "change providers.database.azure_postgres")
            return Ready({"database": resource.name, "login": resource.login,
                          "secret": resource.secret, "server": fqdn,
                          "location": f"postgresql://{resource.login}@{fqdn}:5432/"
                                      f"{resource.name}"}, changed=False,
                         message=None if resource.login_enabled else UNMANAGED_LOGINS)
        wanted = ArmDatabase(properties=DatabaseProperties(charset=self.settings.charset,
                                                           collation=self.settings.collation))
        url = start_operation(what, lambda hook: self.client.databases.begin_create(
            self.resource_group, self.server, resource.name, wanted, polling=False,
            raw_response_hook=hook))
        self._operations.started(f"ensure:{resource.name}", url)
        return Pending(f"Azure is creating database {resource.name} on {self.server}",
                       self.settings.poll_seconds)

    def _remove(self, resource: Resource) -> Outcome:
        assert isinstance(resource, Database)
        what = f"delete database {resource.name} on flexible server {self.server}"
        if self._operations.running(f"remove:{resource.name}", self.client, what):
            return Pending(f"Azure is deleting database {resource.name} on {self.server}",
                           self.settings.poll_seconds)
        if self._get(resource.name) is None:
            return Ready({"database": resource.name, "login": resource.login}, changed=False)
        url = start_operation(what, lambda hook: self.client.databases.begin_delete(
            self.resource_group, self.server, resource.name, polling=False,
            raw_response_hook=hook))
        self._operations.started(f"remove:{resource.name}", url)
        return Pending(f"Azure is deleting database {resource.name} on {self.server}",
                       self.settings.poll_seconds)

    def observes(self, resource: Resource) -> bool:
        """Not a login tenantops does not hold: a preview of disabling it shows ``check``."""
        return not (isinstance(resource, Database) and not resource.login_enabled)

    def _observe(self, resource: Resource) -> dict[str, Any] | None:
        assert isinstance(resource, Database)
        current = self._get(resource.name)
        if current is None:
            return None
        props = current.properties
        return {"name": resource.name, "charset": props.charset if props else None,
                "collation": props.collation if props else None}

    def read_metadata(self, database: Database) -> dict[str, str]:
        """What ARM says of the database (no SQL connection is opened)."""
        if self._get(database.name) is None:
            return {}
        return {"database": database.name, "server": self._server_fqdn()}


class AzurePostgresSqlDatabases(AzurePostgresDatabases):
    """``azure-postgres`` with ``admin_url``: ARM makes and deletes each database (the
    module docstring); over SQL, as the admin role, the ``postgres`` provider's code
    (`PostgresDatabases`, on the one server ``default``) does the rest: the tenant's login
    and its ownership of the database, ``NOLOGIN`` while suspended, rotation between two
    logins (`DatabaseLogin`, `RetiredLogin`), and the SaaS's migrations
    (`DatabaseSchema`). Moves and schema-mode plans stay the self-hosted provider's."""

    resource_types: ClassVar[tuple[type[Resource], ...]] = (
        Database, DatabaseSchema, DatabaseLogin, RetiredLogin)

    def __init__(self, connection: AzureConnection, settings: AzurePostgresDatabaseSettings,
                 secrets: SecretsProvider) -> None:
        super().__init__(connection, settings)
        if settings.admin_url is None:
            raise ConfigError("providers.database.azure_postgres.admin_url is not set")
        password = settings.admin_password
        self.sql = PostgresDatabases(
            settings.admin_url, secrets,
            admin_password=password.get_secret_value() if password is not None else None,
            connection_limit=settings.connection_limit,
            connect_timeout=settings.connect_timeout_seconds)

    def _ensure(self, resource: Resource) -> Outcome:
        if not isinstance(resource, Database):
            return self.sql._ensure(resource)
        made = super()._ensure(resource)
        if isinstance(made, Pending):
            return made
        owned = self.sql._ensure(resource)
        if isinstance(owned, Pending):
            return owned
        outputs = {**owned.outputs, "server": made.outputs["server"],
                   "location": made.outputs["location"].replace(
                       f"{resource.login}@", f"{owned.outputs['login']}@")}
        return Ready(outputs, changed=made.changed or owned.changed)

    def _remove(self, resource: Resource) -> Outcome:
        if not isinstance(resource, Database):
            return self.sql._remove(resource)
        # ARM deletes the database (it made it); then the logins go over SQL.
        deleted = super()._remove(resource)
        if isinstance(deleted, Pending):
            return deleted
        dropped = self.sql._remove(resource)
        if isinstance(dropped, Pending):
            return dropped
        return Ready({**deleted.outputs, **dropped.outputs, "server": self.server},
                     changed=deleted.changed or dropped.changed)

    def observes(self, resource: Resource) -> bool:
        return True

    def _observe(self, resource: Resource) -> dict[str, Any] | None:
        if not isinstance(resource, Database):
            return self.sql._observe(resource)
        arm = super()._observe(resource)
        if arm is None:
            return None
        found = self.sql._observe(resource) or {}
        return {**found, **arm}

    def read_metadata(self, database: Database) -> dict[str, str]:
        """What the tenant app reads, as the tenant's login (over SQL)."""
        return self.sql.read_metadata(database)

    def connect(self, database: Database) -> AbstractContextManager[Any]:
        return self.sql.connect(database)

    @contextmanager
    def schema_connection(self, schema: DatabaseSchema) -> Iterator[Connection]:
        with self.sql.schema_connection(schema) as connection:
            yield connection

    def schema_error(self, exc: Exception, schema: DatabaseSchema
                     ) -> PermanentProviderError | TransientProviderError:
        return self.sql.schema_error(exc, schema)
