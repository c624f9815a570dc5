"""Database providers: each tenant's data, with a login whose password is a secret, on one of
several servers (placement: `tenantops.catalog.placement`).

A tenant's data is a database of its own (mode ``database``) or a schema of its own in a
shared, pooled database (mode ``schema``; `Database.schema`). A move copies it to another
server or into the other mode (`DatabaseCopy`) and checks the copy (`CopyCheck`), for the
providers that can (`DatabaseProvider.copies_data`).

For code that works inside tenants' databases (migrations of a fleet, say): build the
tenant's `Database` from its placement (`tenantops.provisioning.placement.database_of`) and
open a connection with `DatabaseProvider.connect`, which lands in the tenant's database or
schema as its own login would.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from tenantops.config import DEFAULT_SERVER
from tenantops.errors import PermanentProviderError
from tenantops.provisioning.providers.base import Provider, Resource

__all__ = [
    "UNMANAGED_LOGINS",
    "CopyCheck",
    "Database",
    "DatabaseCopy",
    "DatabaseMode",
    "DatabaseProvider",
]

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


UNMANAGED_LOGINS = (
    "tenantops makes the database but not its login on this provider (the tenant app's "
    "migrations make it: docs/azure.md), so it cannot disable it; while the tenant is "
    "suspended its hostname is served by the suspended-page app, so the app cannot use it for "
    "the tenant's users. To refuse the login itself, run DENY CONNECT / ALTER ROLE ... NOLOGIN "
    "in the tenant's database")
"""What a provider that does not hold the login says when asked to disable it."""


class DatabaseProvider(Provider):
    """Creates and drops tenant databases and their logins, on the servers of the settings.

    ``modes``: what a tenant's data may be on this provider; ``copies_data``: whether it can
    move a tenant's data (`DatabaseCopy`, `CopyCheck`)."""

    kind = "database"
    resource_types: ClassVar[tuple[type[Resource], ...]] = (Database,)
    modes: ClassVar[tuple[DatabaseMode, ...]] = ("database",)
    copies_data: ClassVar[bool] = False

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
