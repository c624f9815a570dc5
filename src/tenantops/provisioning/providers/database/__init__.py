"""Database providers: each tenant's data, with a login whose password is a secret, on one of
several servers (placement: `tenantops.catalog.placement`).

A tenant's data is a database of its own (mode ``database``) or a schema of its own in a
shared, pooled database (mode ``schema``; `Database.schema`). A move copies it to another
server or into the other mode (`DatabaseCopy`) and checks the copy (`CopyCheck`), for the
providers that can (`DatabaseProvider.copies_data`).

Besides the data itself, a provider that can reach the tenant's database over SQL brings the
SaaS's own schema in it to a revision (`DatabaseSchema`): it opens the connection
(`DatabaseProvider.schema_connection`: the tenant's database on its recorded server, as its
owner) and `tenantops.provisioning.schema_migrations` applies the revisions. Credential
rotation switches the tenant between two logins (`DatabaseLogin`, `RetiredLogin`), on the
server its placement records, in either mode (a schema-mode tenant's logins act as its
schema's owner; `DatabaseProvider.rotation_modes` says which modes a provider rotates).

For other code that works inside tenants' databases: build the tenant's `Database` from its
placement (`tenantops.provisioning.placement.database_of`) and open a connection with
`DatabaseProvider.connect`, which lands in the tenant's database or schema as its own login
would.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from tenantops.config import DEFAULT_SERVER
from tenantops.errors import MigrationError, PermanentProviderError, TransientProviderError
from tenantops.provisioning.providers.base import Provider, Ready, Resource

if TYPE_CHECKING:
    from sqlalchemy import Connection

__all__ = [
    "UNMANAGED_LOGINS",
    "CopyCheck",
    "Database",
    "DatabaseCopy",
    "DatabaseLogin",
    "DatabaseMode",
    "DatabaseProvider",
    "DatabaseSchema",
    "RetiredLogin",
    "unconfigured_server",
]

def unconfigured_server(server: str, configured: Iterable[str],
                        resource: str = "") -> PermanentProviderError:
    """The error for a tenant whose data is on ``server``, which the settings do not list.
    Tenants with no recorded placement (made before placements were recorded, or adopted)
    are on ``default``: say so, since nothing in their record names it."""
    message = (f"database server {server!r} is not configured (servers: "
               f"{', '.join(sorted(configured))}); add it to providers.database.servers, or "
               "move the tenant off it while it still is")
    if server == DEFAULT_SERVER:
        message += (f". A tenant with no recorded placement (onboarded before placements "
                    f"were recorded, or adopted) is on {DEFAULT_SERVER!r}: give the server "
                    f"it is on a [[providers.database.servers]] entry named {DEFAULT_SERVER!r}")
    return PermanentProviderError(message, resource=resource)


_IDENTIFIER = re.compile(r"[a-z][a-z0-9_]{0,62}")
DatabaseMode = Literal["database", "schema"]


@dataclass(frozen=True)
class Database(Resource):
    """The tenant's data on server ``server``: database ``name`` of its own, or with
    ``schema`` the tenant's schema in the pooled database ``name``; login ``login``, whose
    password is the secret ``secret``.

    ``login_enabled``: whether the login may sign in. False while the tenant is suspended
    (and during a move's write freeze): the login cannot open a session and its open
    sessions are ended; nothing is dropped. ``elastic_pool`` / ``sku``: what the plan chose
    on Azure SQL (None: the provider's default). ``empty`` (ensure): make the login and the
    database that will hold the data, nothing in it (a move's target, before the copy).
    ``keep_login`` (remove): drop the data but keep the login, which another copy on the same
    server still uses."""

    name: str
    login: str
    secret: str
    login_enabled: bool = True
    server: str = DEFAULT_SERVER
    schema: str | None = None
    elastic_pool: str | None = None
    sku: str | None = None
    empty: bool = False
    keep_login: bool = False

    def __post_init__(self) -> None:
        for label, value in (("database name", self.name), ("login", self.login),
                             ("schema", self.schema)):
            if value is not None and not _IDENTIFIER.fullmatch(value):
                raise PermanentProviderError(
                    f"{label} {value!r} must be 1 to 63 of a-z, 0-9 and '_', starting with a "
                    "letter"
                )

    @property
    def mode(self) -> DatabaseMode:
        return "database" if self.schema is None else "schema"

    @property
    def key(self) -> str:
        where = self.name if self.schema is None else f"{self.name}.{self.schema}"
        if self.server == DEFAULT_SERVER:
            return f"database:{where}"
        return f"database:{self.server}/{where}"

    @property
    def location(self) -> tuple[str, str, str | None]:
        """Where the data is: two copies at one location are one."""
        return (self.server, self.name, self.schema)


@dataclass(frozen=True)
class DatabaseCopy(Resource):
    """``ensure``: ``target`` holds what ``source`` holds, copied while the source's login is
    disabled (the move's write freeze); whatever ``target`` held before is replaced, so a
    repeated copy gives the same result. ``remove`` does nothing (the copies are removed as
    databases)."""

    source: Database
    target: Database

    @property
    def key(self) -> str:
        return f"copy:{self.source.key}->{self.target.key}"


@dataclass(frozen=True)
class CopyCheck(Resource):
    """``ensure``: ``target`` has the tables ``source`` has, each with as many rows (a
    permanent error names every table that differs)."""

    source: Database
    target: Database

    @property
    def key(self) -> str:
        return f"check:{self.source.key}->{self.target.key}"


@dataclass(frozen=True)
class DatabaseSchema(Resource):
    """The SaaS's own schema in database ``database`` (owned by ``owner``) at ``revision`` of
    the migrations in folder ``source`` (``kind``: ``alembic``, ``sql`` or ``auto``). The
    revision is resolved when the run opens, so a retried run converges to the same one."""

    database: str
    owner: str
    source: str
    kind: str
    revision: str
    server: str = DEFAULT_SERVER
    schema: str | None = None
    """Schema mode: the tenant's schema in the pooled ``database`` (the migrations run with
    it first on the search path, so their unqualified names and version table land there)."""

    def __post_init__(self) -> None:
        named = [("database name", self.database), ("owner", self.owner)]
        if self.schema is not None:
            named.append(("schema", self.schema))
        for label, value in named:
            if not _IDENTIFIER.fullmatch(value):
                raise PermanentProviderError(
                    f"{label} {value!r} must be 1 to 63 of a-z, 0-9 and '_', starting with a "
                    "letter")

    @property
    def key(self) -> str:
        where = self.database if self.schema is None else f"{self.database}.{self.schema}"
        return _on(self.server, f"schema:{where}")


@dataclass(frozen=True)
class DatabaseLogin(Resource):
    """A login ``login`` of the tenant database ``database`` (owned by ``owner``) that can
    sign in with the password in secret ``secret`` and acts as the owner; ensuring it
    makes it the login the tenant's app uses (docs/fleet.md, credential rotation). ``login``
    may be the owner itself (the rotation back)."""

    database: str
    owner: str
    login: str
    secret: str
    server: str = DEFAULT_SERVER
    schema: str | None = None
    """Schema mode: the tenant's schema in the pooled ``database`` (owned by ``owner``),
    which the login gets as its search path there and where ``tenantops_meta`` is."""

    def __post_init__(self) -> None:
        for label, value in (("database name", self.database), ("owner", self.owner),
                             ("login", self.login), ("schema", self.schema)):
            if value is not None and not _IDENTIFIER.fullmatch(value):
                raise PermanentProviderError(
                    f"{label} {value!r} must be 1 to 63 of a-z, 0-9 and '_', starting with a "
                    "letter")

    @property
    def key(self) -> str:
        return _on(self.server, f"login:{self.login}")


@dataclass(frozen=True)
class RetiredLogin(Resource):
    """The previous login ``login`` of database ``database``, disabled (NOLOGIN, its
    sessions ended) once no session uses it and at least ``min_grace_seconds`` passed since
    the switch, or ``max_grace_seconds`` at the latest: until then `ensure` is pending."""

    database: str
    login: str
    min_grace_seconds: float
    max_grace_seconds: float
    poll_seconds: float
    server: str = DEFAULT_SERVER
    schema: str | None = None
    """Schema mode: the tenant's schema in the pooled ``database`` (its ``tenantops_meta``
    records the switch)."""

    def __post_init__(self) -> None:
        for label, value in (("database name", self.database), ("login", self.login),
                             ("schema", self.schema)):
            if value is not None and not _IDENTIFIER.fullmatch(value):
                raise PermanentProviderError(
                    f"{label} {value!r} must be 1 to 63 of a-z, 0-9 and '_', starting with a "
                    "letter")

    @property
    def key(self) -> str:
        return _on(self.server, f"retired-login:{self.login}")


def _on(server: str, key: str) -> str:
    """``key`` of a resource on ``server``, as `Database.key` writes it (the default server's
    keys stay as they were before several servers)."""
    if server == DEFAULT_SERVER:
        return key
    kind, _, rest = key.partition(":")
    return f"{kind}:{server}/{rest}"


UNMANAGED_LOGINS = (
    "tenantops makes the database but not its login on this provider (the tenant app's "
    "migrations make it: docs/azure.md), so it cannot disable it; while the tenant is "
    "suspended its hostname is served by the suspended-page app, so the app cannot use it for "
    "the tenant's users. To refuse the login itself, run DENY CONNECT / ALTER ROLE ... NOLOGIN "
    "in the tenant's database")
"""What a provider that does not hold the login says when asked to disable it."""


class DatabaseProvider(Provider):
    """Creates and drops tenant databases and their logins, on the servers of the settings;
    providers that reach a tenant database over SQL also migrate its schema
    (`schema_connection`).

    ``modes``: what a tenant's data may be on this provider; ``copies_data``: whether it can
    move a tenant's data (`DatabaseCopy`, `CopyCheck`); `rotation_modes`: whose credentials
    it rotates."""

    kind = "database"
    resource_types: ClassVar[tuple[type[Resource], ...]] = (Database, DatabaseSchema)
    modes: ClassVar[tuple[DatabaseMode, ...]] = ("database",)
    copies_data: ClassVar[bool] = False

    @property
    def rotation_modes(self) -> tuple[DatabaseMode, ...]:
        """The modes whose tenants' credentials this provider rotates: all its ``modes`` when
        it manages the two logins of a rotation (`DatabaseLogin`, `RetiredLogin`), none
        otherwise. A provider that rotates only some of its modes says so here."""
        if DatabaseLogin in self.resource_types and RetiredLogin in self.resource_types:
            return self.modes
        return ()

    @contextmanager
    def schema_connection(self, schema: DatabaseSchema) -> Iterator[Connection]:
        """A SQLAlchemy connection to the tenant's database, acting as its owner (objects
        the migrations make belong to the tenant's login), not in a transaction."""
        raise PermanentProviderError(
            f"provider {self.label} cannot reach tenant databases over SQL, so tenantops "
            "cannot migrate their schema; run the migrations in the app's deployment")
        yield  # pragma: no cover - makes this a generator

    def migrate_schema(self, schema: DatabaseSchema) -> Ready:
        """Bring the schema to ``schema.revision`` (every pending revision in one
        transaction); outputs the revision before and after and what was applied."""
        source = _source(schema)
        try:
            with self.schema_connection(schema) as connection:
                applied = source.upgrade(connection, schema.revision)
        except MigrationError as exc:
            raise PermanentProviderError(
                f"the schema of database {schema.database} stays as it was: {exc}; fix the "
                "migration or the tenant's data, then retry", resource=schema.key) from None
        except Exception as exc:
            raise self.schema_error(exc, schema) from exc
        return Ready({"database": schema.database, "revision": applied.after,
                      "previous_revision": applied.before, "applied": list(applied.applied)},
                     changed=bool(applied.applied))

    def observe_schema(self, schema: DatabaseSchema) -> dict[str, Any] | None:
        """The schema's revision now, and what an upgrade to ``schema.revision`` would apply;
        None when the database does not exist."""
        source = _source(schema)
        try:
            with self.schema_connection(schema) as connection, connection.begin():
                current = source.current(connection)
        except PermanentProviderError:
            raise
        except Exception as exc:
            raise self.schema_error(exc, schema) from exc
        try:
            pending = source.pending(current, schema.revision)
        except MigrationError as exc:
            raise PermanentProviderError(str(exc), resource=schema.key) from None
        return {"database": schema.database, "revision": current, "pending": pending}

    def schema_error(self, exc: Exception, schema: DatabaseSchema
                     ) -> PermanentProviderError | TransientProviderError:
        """A connection or driver error while migrating, as a provider error (transient
        for what a retry may cure)."""
        return PermanentProviderError(
            f"could not migrate the schema of database {schema.database}: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
            resource=schema.key)

    @abstractmethod
    def read_metadata(self, database: Database) -> dict[str, str]:
        """Connect as the tenant's login (password from the secrets provider) and read the
        ``tenantops_meta`` table: what the tenant app shows to prove it reads its database."""

    def connect(self, database: Database) -> AbstractContextManager[Any]:
        """A DB-API connection in the tenant's database (its schema first on the search
        path) with the rights of the tenant's login, for work inside it (a fleet's
        migrations). Providers that hold no SQL access refuse."""
        return _refused(self.label, database)


@contextmanager
def _refused(label: str, database: Database) -> Iterator[Any]:
    raise PermanentProviderError(
        f"{label} has no SQL access to the tenant databases it makes (docs/azure.md): connect "
        f"to {database.name} with the tenant app's own credentials instead",
        provider=label, action="connect", resource=database.key)
    yield  # pragma: no cover


def _source(schema: DatabaseSchema) -> Any:
    from tenantops.provisioning.schema_migrations import MigrationSource

    kind = schema.kind if schema.kind in ("alembic", "sql") else "auto"
    try:
        return MigrationSource.load(Path(schema.source), kind)  # type: ignore[arg-type]
    except MigrationError as exc:
        raise PermanentProviderError(str(exc), resource=schema.key) from None
