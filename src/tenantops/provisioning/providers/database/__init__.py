"""Database providers: one database per tenant, with a login whose password is a secret.

Besides the database itself (`Database`), a provider that can reach the tenant's database
over SQL brings the SaaS's own schema in it to a revision (`DatabaseSchema`): it opens the
connection (`DatabaseProvider.schema_connection`: the tenant's database, as its owner) and
`tenantops.provisioning.schema_migrations` applies the revisions. A provider that places
tenants differently (a schema per tenant in a shared database) plugs in by opening another
connection; the migrations stay the same.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from tenantops.errors import MigrationError, PermanentProviderError, TransientProviderError
from tenantops.provisioning.providers.base import Provider, Ready, Resource

if TYPE_CHECKING:
    from sqlalchemy import Connection

__all__ = ["UNMANAGED_LOGINS", "Database", "DatabaseLogin", "DatabaseProvider", "DatabaseSchema",
           "RetiredLogin"]

_IDENTIFIER = re.compile(r"[a-z][a-z0-9_]{0,62}")


@dataclass(frozen=True)
class Database(Resource):
    """Database ``name`` with login ``login``, whose password is the secret ``secret``.

    ``login_enabled``: whether the login may sign in. False while the tenant is suspended:
    the login cannot open a session and its open sessions are ended; nothing is dropped."""

    name: str
    login: str
    secret: str
    login_enabled: bool = True

    def __post_init__(self) -> None:
        for label, value in (("database name", self.name), ("login", self.login)):
            if not _IDENTIFIER.fullmatch(value):
                raise PermanentProviderError(
                    f"{label} {value!r} must be 1 to 63 of a-z, 0-9 and '_', starting with a "
                    "letter"
                )

    @property
    def key(self) -> str:
        return f"database:{self.name}"


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

    def __post_init__(self) -> None:
        for label, value in (("database name", self.database), ("owner", self.owner)):
            if not _IDENTIFIER.fullmatch(value):
                raise PermanentProviderError(
                    f"{label} {value!r} must be 1 to 63 of a-z, 0-9 and '_', starting with a "
                    "letter")

    @property
    def key(self) -> str:
        return f"schema:{self.database}"


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

    def __post_init__(self) -> None:
        for label, value in (("database name", self.database), ("owner", self.owner),
                             ("login", self.login)):
            if not _IDENTIFIER.fullmatch(value):
                raise PermanentProviderError(
                    f"{label} {value!r} must be 1 to 63 of a-z, 0-9 and '_', starting with a "
                    "letter")

    @property
    def key(self) -> str:
        return f"login:{self.login}"


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

    def __post_init__(self) -> None:
        for label, value in (("database name", self.database), ("login", self.login)):
            if not _IDENTIFIER.fullmatch(value):
                raise PermanentProviderError(
                    f"{label} {value!r} must be 1 to 63 of a-z, 0-9 and '_', starting with a "
                    "letter")

    @property
    def key(self) -> str:
        return f"retired-login:{self.login}"


UNMANAGED_LOGINS = (
    "tenantops makes the database but not its login on this provider (the tenant app's "
    "migrations make it: docs/azure.md), so it cannot disable it; while the tenant is "
    "suspended its hostname is served by the suspended-page app, so the app cannot use it for "
    "the tenant's users. To refuse the login itself, run DENY CONNECT / ALTER ROLE ... NOLOGIN "
    "in the tenant's database")
"""What a provider that does not hold the login says when asked to disable it."""


class DatabaseProvider(Provider):
    """Creates and drops tenant databases and their logins; providers that reach a tenant
    database over SQL also migrate its schema (`schema_connection`)."""

    kind = "database"
    resource_types: ClassVar[tuple[type[Resource], ...]] = (Database, DatabaseSchema)

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


def _source(schema: DatabaseSchema) -> Any:
    from tenantops.provisioning.schema_migrations import MigrationSource

    kind = schema.kind if schema.kind in ("alembic", "sql") else "auto"
    try:
        return MigrationSource.load(Path(schema.source), kind)  # type: ignore[arg-type]
    except MigrationError as exc:
        raise PermanentProviderError(str(exc), resource=schema.key) from None
