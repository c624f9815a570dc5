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
delete. With SQL access and several flexible servers (``[[providers.database.servers]]``
entries, each with ``server`` and ``admin_url``), a tenant moves between them as on
self-hosted servers: ARM makes the target database, ``pg_dump | pg_restore`` copies the data,
row counts are compared, and ARM deletes the old copy after the grace period.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import psycopg
from azure.core.credentials import AccessToken, TokenCredential
from azure.mgmt.postgresqlflexibleservers import PostgreSQLManagementClient
from azure.mgmt.postgresqlflexibleservers.models import Database as ArmDatabase
from azure.mgmt.postgresqlflexibleservers.models import DatabaseProperties
from sqlalchemy import Connection

from tenantops.config import DEFAULT_SERVER, AzurePostgresDatabaseSettings, Settings
from tenantops.errors import ConfigError, PermanentProviderError, TransientProviderError
from tenantops.provisioning.providers.azure.calls import azure_call, azure_get, start_operation
from tenantops.provisioning.providers.azure.connection import AzureConnection
from tenantops.provisioning.providers.azure.operations import TrackedOperations
from tenantops.provisioning.providers.base import Outcome, Pending, Ready, Resource
from tenantops.provisioning.providers.database import (
    UNMANAGED_LOGINS,
    CopyCheck,
    Database,
    DatabaseCopy,
    DatabaseLogin,
    DatabaseProvider,
    DatabaseSchema,
    RetiredLogin,
    unconfigured_server,
)
from tenantops.provisioning.providers.database.postgres import PostgresDatabases, PostgresServer
from tenantops.provisioning.providers.secrets import SecretsProvider

__all__ = [
    "ENTRA_SCOPE",
    "AzurePostgresDatabases",
    "AzurePostgresSqlDatabases",
    "EntraPassword",
    "FlexibleServer",
    "check_admins",
]


@dataclass(frozen=True)
class FlexibleServer:
    """Where a placement server's databases are: the flexible server and its resource group;
    with SQL access, how the admin role reaches it."""

    name: str
    resource_group: str | None = None
    admin_url: str | None = None
    admin_password: str | None = None


@dataclass(frozen=True)
class _Placed:
    """A `FlexibleServer` with its resource group resolved."""

    name: str
    resource_group: str
    admin_url: str | None
    admin_password: str | None


ENTRA_SCOPE = "https://ossrdbms-aad.database.windows.net/.default"
"""The scope of the access token Azure Database for PostgreSQL takes as a password from an
Entra ID role (Microsoft Learn, "Connect with Microsoft Entra ID" for flexible server)."""


class EntraPassword:
    """The admin's password with ``admin_auth = "entra"``: an access token for `ENTRA_SCOPE`
    from the deployment's credential, reused until five minutes before it expires, so each
    connection (and each ``pg_dump`` of a move) signs in with a live one."""

    def __init__(self, credential: TokenCredential) -> None:
        self._credential = credential
        self._token: AccessToken | None = None
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            if self._token is None or self._token.expires_on - 300 <= time.time():
                self._token = self._credential.get_token(ENTRA_SCOPE)
            return self._token.token


class AzurePostgresDatabases(DatabaseProvider):
    """Databases on the flexible servers of the settings (``settings.server``, the server
    ``default``; or the ``[[providers.database.servers]]`` entries)."""

    name = "azure-postgres"
    # Without SQL access, tenant schemas are the app's deployment's (docs/fleet.md).
    resource_types: ClassVar[tuple[type[Resource], ...]] = (Database,)

    def __init__(self, connection: AzureConnection, settings: AzurePostgresDatabaseSettings,
                 servers: Mapping[str, FlexibleServer] | None = None) -> None:
        super().__init__()
        if servers is None and not settings.server:
            raise ConfigError(
                "providers.database.azure_postgres.server is not set; name the flexible server "
                "the tenant databases go on (or list servers in [[providers.database.servers]])")
        password = settings.admin_password
        listed = dict(servers) if servers is not None else {DEFAULT_SERVER: FlexibleServer(
            str(settings.server), settings.resource_group, settings.admin_url,
            password.get_secret_value() if password is not None else None)}
        self.connection = connection
        self.settings = settings
        self._servers = {
            name: _Placed(found.name, connection.group(
                found.resource_group or settings.resource_group,
                "providers.database.azure_postgres.resource_group"),
                found.admin_url, found.admin_password)
            for name, found in listed.items()}
        first = next(iter(self._servers.values()))
        self.server = first.name
        self.resource_group = first.resource_group
        self._client: PostgreSQLManagementClient | None = None
        self._fqdns: dict[str, str] = {}
        self._operations = TrackedOperations()

    @classmethod
    def from_settings(cls, settings: Settings, secrets: SecretsProvider | None = None
                      ) -> AzurePostgresDatabases:
        """The provider of ``[providers.database.azure_postgres]`` (and the servers listed):
        with an ``admin_url``, the one that also reaches the servers over SQL
        (`AzurePostgresSqlDatabases`)."""
        database = settings.providers.database
        config = database.azure_postgres
        connection = AzureConnection.from_settings(settings.azure)
        servers = {s.name: FlexibleServer(
            str(s.server), s.resource_group, s.admin_url,
            s.admin_password.get_secret_value() if s.admin_password is not None else None)
            for s in database.servers} if database.servers else None
        sql_access = (config.admin_url is not None if servers is None
                      else any(s.admin_url for s in servers.values()))
        if not sql_access:
            return cls(connection, config, servers)
        if secrets is None:
            raise ConfigError("providers.database.azure_postgres.admin_url needs the secrets "
                              "provider (the tenant logins' passwords are kept there)")
        return AzurePostgresSqlDatabases(connection, config, secrets, servers)

    @property
    def client(self) -> PostgreSQLManagementClient:
        if self._client is None:
            self._client = PostgreSQLManagementClient(
                self.connection.credential, self.connection.subscription_id,
                **self.connection.arm_options())
        return self._client

    def where(self, database: Database) -> _Placed:
        """The flexible server of ``database``'s placement server."""
        found = self._servers.get(database.server)
        if found is None:
            raise unconfigured_server(database.server, self._servers, database.key)
        return found

    def _server_fqdn(self, server: _Placed) -> str:
        if server.name not in self._fqdns:
            found = azure_call(
                f"read flexible server {server.name} in resource group {server.resource_group}",
                lambda: self.client.servers.get(server.resource_group, server.name))
            fqdn = found.properties.fully_qualified_domain_name if found.properties else None
            self._fqdns[server.name] = str(fqdn or f"{server.name}.postgres.database.azure.com")
        return self._fqdns[server.name]

    def _get(self, server: _Placed, name: str) -> ArmDatabase | None:
        return azure_get(f"read database {name} on flexible server {server.name}",
                         lambda: self.client.databases.get(server.resource_group, server.name,
                                                           name))

    def _ensure(self, resource: Resource) -> Outcome:
        if not isinstance(resource, Database):
            raise PermanentProviderError(f"not a database: {resource.key}")
        server = self.where(resource)
        fqdn = self._server_fqdn(server)
        what = f"create database {resource.name} on flexible server {server.name}"
        key = f"ensure:{server.name}/{resource.name}"
        if self._operations.running(key, self.client, what):
            return Pending(f"Azure is creating database {resource.name} on {server.name}",
                           self.settings.poll_seconds)
        current = self._get(server, resource.name)
        if current is not None:
            props = current.properties
            charset = str(props.charset or "") if props else ""
            collation = str(props.collation or "") if props else ""
            if (charset.lower(), collation.lower()) != (self.settings.charset.lower(),
                                                        self.settings.collation.lower()):
                raise PermanentProviderError(
                    f"database {resource.name} exists on {server.name} with charset {charset} "
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
            server.resource_group, server.name, resource.name, wanted, polling=False,
            raw_response_hook=hook))
        self._operations.started(key, url)
        return Pending(f"Azure is creating database {resource.name} on {server.name}",
                       self.settings.poll_seconds)

    def _remove(self, resource: Resource) -> Outcome:
        if not isinstance(resource, Database):
            raise PermanentProviderError(f"not a database: {resource.key}")
        server = self.where(resource)
        what = f"delete database {resource.name} on flexible server {server.name}"
        key = f"remove:{server.name}/{resource.name}"
        if self._operations.running(key, self.client, what):
            return Pending(f"Azure is deleting database {resource.name} on {server.name}",
                           self.settings.poll_seconds)
        if self._get(server, resource.name) is None:
            return Ready({"database": resource.name, "login": resource.login}, changed=False)
        url = start_operation(what, lambda hook: self.client.databases.begin_delete(
            server.resource_group, server.name, resource.name, polling=False,
            raw_response_hook=hook))
        self._operations.started(key, url)
        return Pending(f"Azure is deleting database {resource.name} on {server.name}",
                       self.settings.poll_seconds)

    def observes(self, resource: Resource) -> bool:
        """Not a login tenantops does not hold: a preview of disabling it shows ``check``."""
        return not (isinstance(resource, Database) and not resource.login_enabled)

    def _observe(self, resource: Resource) -> dict[str, Any] | None:
        if not isinstance(resource, Database):
            raise PermanentProviderError(f"not a database: {resource.key}")
        current = self._get(self.where(resource), resource.name)
        if current is None:
            return None
        props = current.properties
        return {"name": resource.name, "charset": props.charset if props else None,
                "collation": props.collation if props else None}

    def read_metadata(self, database: Database) -> dict[str, str]:
        """What ARM says of the database (no SQL connection is opened)."""
        server = self.where(database)
        if self._get(server, database.name) is None:
            return {}
        return {"database": database.name, "server": self._server_fqdn(server)}


def check_admins(settings: Settings, connection: AzureConnection) -> list[tuple[str, str | None]]:
    """For ``tenantops azure check``: each flexible server tenantops reaches over SQL (none
    without ``admin_url``), and what keeps its admin role from doing tenantops' work there
    (None: it signs in and may create roles and databases). Reads only."""
    database = settings.providers.database
    config = database.azure_postgres
    listed = ([(s.name, str(s.server), s.admin_url, s.admin_password)
               for s in database.servers] if database.servers
              else [(DEFAULT_SERVER, str(config.server), config.admin_url,
                     config.admin_password)])
    token = EntraPassword(connection.credential) if config.admin_auth == "entra" else None
    found: list[tuple[str, str | None]] = []
    for _name, flexible, url, password in listed:
        if url is None:
            continue
        conninfo: dict[str, Any] = {"connect_timeout": math.ceil(
            config.connect_timeout_seconds), "application_name": "tenantops-check"}
        if token is not None:
            conninfo["password"] = token()
        elif password is not None:
            conninfo["password"] = password.get_secret_value()
        try:
            with psycopg.connect(psycopg.conninfo.make_conninfo(url, **conninfo),
                                 autocommit=True) as admin:
                row = admin.execute(
                    "SELECT current_user, rolsuper, rolcreaterole, rolcreatedb FROM pg_roles "
                    "WHERE rolname = current_user").fetchone()
        except psycopg.Error as exc:
            found.append((flexible, f"could not sign in as the admin role: "
                                    f"{str(exc).strip().splitlines()[-1]}"))
            continue
        if row is None or not (row[1] or (row[2] and row[3])):
            who = row[0] if row else "?"
            found.append((flexible, f"the admin role {who!r} signs in but may not create roles "
                                    "and databases (it needs CREATEROLE and CREATEDB)"))
            continue
        found.append((flexible, None))
    return found


class AzurePostgresSqlDatabases(AzurePostgresDatabases):
    """``azure-postgres`` with an ``admin_url``: ARM makes and deletes each database (the
    module docstring); over SQL, as the admin role of each flexible server, the ``postgres``
    provider's code (`PostgresDatabases`, its servers named as the placement's) does the
    rest: the tenant's login and its ownership of the database, ``NOLOGIN`` while suspended,
    rotation between two logins (`DatabaseLogin`, `RetiredLogin`), the SaaS's migrations
    (`DatabaseSchema`), and a move's copy and check (`DatabaseCopy`, `CopyCheck`).
    Schema-mode plans stay the self-hosted provider's."""

    resource_types: ClassVar[tuple[type[Resource], ...]] = (
        Database, DatabaseSchema, DatabaseLogin, RetiredLogin, DatabaseCopy, CopyCheck)
    copies_data = True

    def __init__(self, connection: AzureConnection, settings: AzurePostgresDatabaseSettings,
                 secrets: SecretsProvider,
                 servers: Mapping[str, FlexibleServer] | None = None) -> None:
        super().__init__(connection, settings, servers)
        missing = [name for name, s in self._servers.items() if s.admin_url is None]
        if missing:
            raise ConfigError(
                f"azure-postgres servers {', '.join(missing)} have no admin_url; tenantops "
                "reaches every flexible server over SQL or none")
        token = EntraPassword(connection.credential) if settings.admin_auth == "entra" else None
        self.sql = PostgresDatabases(
            str(next(iter(self._servers.values())).admin_url), secrets,
            connection_limit=settings.connection_limit,
            connect_timeout=settings.connect_timeout_seconds,
            servers=[PostgresServer(name, str(s.admin_url), s.admin_password,
                                    password_source=token)
                     for name, s in self._servers.items()])

    def _ensure(self, resource: Resource) -> Outcome:
        if not isinstance(resource, Database):
            return self.sql._ensure(resource)
        made = super()._ensure(resource)
        if isinstance(made, Pending):
            return made
        owned = self.sql._ensure(resource)
        if isinstance(owned, Pending):
            return owned
        outputs = {**owned.outputs, "server": resource.server,
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
        return Ready({**deleted.outputs, **dropped.outputs, "server": resource.server},
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
