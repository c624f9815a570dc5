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

Roles and grants are not ARM resources (§4): the tenant's login is created over SQL, as the
``postgres`` provider does on a self-hosted server (see docs/azure.md).
"""

from __future__ import annotations

from typing import Any

from azure.mgmt.postgresqlflexibleservers import PostgreSQLManagementClient
from azure.mgmt.postgresqlflexibleservers.models import Database as ArmDatabase
from azure.mgmt.postgresqlflexibleservers.models import DatabaseProperties

from tenantops.config import AzurePostgresDatabaseSettings, Settings
from tenantops.errors import ConfigError, PermanentProviderError
from tenantops.provisioning.providers.azure.calls import azure_call, azure_get, start_operation
from tenantops.provisioning.providers.azure.connection import AzureConnection
from tenantops.provisioning.providers.azure.operations import TrackedOperations
from tenantops.provisioning.providers.base import Outcome, Pending, Ready, Resource
from tenantops.provisioning.providers.database import (
    UNMANAGED_LOGINS,
    Database,
    DatabaseProvider,
)

__all__ = ["AzurePostgresDatabases"]


class AzurePostgresDatabases(DatabaseProvider):
    """Databases on flexible server ``settings.server``."""

    name = "azure-postgres"
    # Tenant schemas are the app's deployment's on Azure (docs/fleet.md): no DatabaseSchema.
    resource_types = (Database,)

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
    def from_settings(cls, settings: Settings) -> AzurePostgresDatabases:
        return cls(AzureConnection.from_settings(settings.azure),
                   settings.providers.database.azure_postgres)

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
