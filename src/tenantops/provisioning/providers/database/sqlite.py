"""``sqlite`` databases: one SQLite file per tenant under a data folder.

SQLite has no logins, so the login is emulated the way a server keeps one: a
``tenantops_logins`` table holds the login's salted scrypt hash and whether it may sign in,
and `read_metadata` (how the local tenant app connects) refuses a password that does not
match, and a login that is disabled (``Database.login_enabled`` False: a suspended tenant,
as PostgreSQL's ``NOLOGIN``). SQLite has no sessions to end.

Servers are folders (``[[providers.database.servers]]`` ``directory``; the one named
``default`` is ``providers.database.directory``). A move copies a tenant's file into another
folder with SQLite's online backup API (`sqlite3.Connection.backup`), into a temporary file
renamed into place once complete, so a copy cut short leaves no half file; the check counts
every table's rows in both files. SQLite has no schemas: each tenant has a file of its own.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tenantops.config import DEFAULT_SERVER
from tenantops.errors import PermanentProviderError, TransientProviderError
from tenantops.provisioning.providers.base import Outcome, Ready, Resource
from tenantops.provisioning.providers.database import (
    CopyCheck,
    Database,
    DatabaseCopy,
    DatabaseProvider,
    DatabaseSchema,
    unconfigured_server,
)
from tenantops.provisioning.providers.secrets import SecretsProvider

if TYPE_CHECKING:
    from sqlalchemy import Connection

__all__ = ["SqliteDatabases"]

# Cheap enough for hundreds of tenants a minute, costly enough to be a real password hash.
_SCRYPT = {"n": 2**12, "r": 8, "p": 1}


def _hash(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)


def _has_enabled(db: sqlite3.Connection) -> bool:
    return "enabled" in {row[1] for row in db.execute("PRAGMA table_info(tenantops_logins)")}


class SqliteDatabases(DatabaseProvider):
    """Tenant databases as ``<directory>/<name>.sqlite``; ``servers`` maps each server's
    name to its folder (default: ``directory`` is the server ``default``)."""

    name = "sqlite"
    resource_types = (Database, DatabaseSchema, DatabaseCopy, CopyCheck)
    copies_data = True

    def __init__(self, directory: Path, secrets: SecretsProvider, *,
                 servers: Mapping[str, Path] | None = None) -> None:
        super().__init__()
        self.directory = directory
        self.servers: dict[str, Path] = dict(servers or {DEFAULT_SERVER: directory})
        self.secrets = secrets

    def folder(self, server: str) -> Path:
        found = self.servers.get(server)
        if found is None:
            raise unconfigured_server(server, self.servers)
        return found

    def path(self, name: str, server: str = DEFAULT_SERVER) -> Path:
        return self.folder(server) / f"{name}.sqlite"

    def _located(self, database: Database) -> Path:
        if database.schema is not None:
            raise PermanentProviderError(
                f"the sqlite provider keeps each tenant in a file of its own; schema "
                f"{database.schema!r} in a pooled database needs the postgres provider",
                resource=database.key)
        return self.path(database.name, database.server)

    @contextmanager
    def _connect(self, path: Path) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(path, timeout=30, isolation_level=None)) as connection:
            yield connection

    @contextmanager
    def schema_connection(self, schema: DatabaseSchema) -> Iterator[Connection]:
        from sqlalchemy import create_engine, event
        from sqlalchemy.pool import NullPool

        path = self.path(schema.database, schema.server)
        if not path.exists():
            raise PermanentProviderError(
                f"database {schema.database!r} does not exist at {path}; onboard the tenant "
                "(or retry its onboarding) first", resource=schema.key)
        engine = create_engine(f"sqlite:///{path}", poolclass=NullPool,
                               connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _connect(dbapi_connection: Any, _record: Any) -> None:
            # Transactions begin explicitly (below), so DDL is transactional too.
            dbapi_connection.isolation_level = None
            dbapi_connection.execute("PRAGMA busy_timeout=30000")

        @event.listens_for(engine, "begin")
        def _begin(connection: Any) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        try:
            with engine.connect() as connection:
                yield connection
        finally:
            engine.dispose()

    def schema_error(self, exc: Exception, schema: DatabaseSchema
                     ) -> PermanentProviderError | TransientProviderError:
        text = str(getattr(exc, "orig", None) or exc)
        if "locked" in text or "busy" in text:
            return TransientProviderError(
                f"database {schema.database} is locked by another writer ({text}); will "
                "retry", resource=schema.key)
        return super().schema_error(exc, schema)

    def _ensure(self, resource: Resource) -> Outcome:
        if isinstance(resource, DatabaseCopy):
            return self._copy(resource)
        if isinstance(resource, CopyCheck):
            return self._check(resource)
        if isinstance(resource, DatabaseSchema):
            return self.migrate_schema(resource)
        if not isinstance(resource, Database):
            raise PermanentProviderError(f"not a database: {resource.key}")
        password = self.secrets.read(resource.secret)
        path = self._located(resource)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        created = not path.exists()
        with self._connect(path) as db:
            db.execute("BEGIN IMMEDIATE")
            db.execute("CREATE TABLE IF NOT EXISTS tenantops_meta "
                       "(key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            db.execute("CREATE TABLE IF NOT EXISTS tenantops_logins "
                       "(login TEXT PRIMARY KEY, salt BLOB NOT NULL, hash BLOB NOT NULL, "
                       "enabled INTEGER NOT NULL DEFAULT 1)")
            columns = {row[1] for row in db.execute("PRAGMA table_info(tenantops_logins)")}
            if "enabled" not in columns:  # made before logins could be disabled
                db.execute("ALTER TABLE tenantops_logins "
                           "ADD COLUMN enabled INTEGER NOT NULL DEFAULT 1")
            db.execute("INSERT OR IGNORE INTO tenantops_meta VALUES ('database', ?)",
                       (resource.name,))
            db.execute("INSERT OR IGNORE INTO tenantops_meta VALUES ('created_at', ?)",
                       (dt.datetime.now(dt.timezone.utc).isoformat(),))
            row = db.execute("SELECT salt, hash, enabled FROM tenantops_logins WHERE login = ?",
                             (resource.login,)).fetchone()
            login_changed = row is None or not hmac.compare_digest(_hash(password, row[0]), row[1])
            if login_changed:
                salt = os.urandom(16)
                db.execute("INSERT OR REPLACE INTO tenantops_logins VALUES (?, ?, ?, ?)",
                           (resource.login, salt, _hash(password, salt),
                            int(resource.login_enabled)))
            elif bool(row[2]) != resource.login_enabled:
                db.execute("UPDATE tenantops_logins SET enabled = ? WHERE login = ?",
                           (int(resource.login_enabled), resource.login))
                login_changed = True
            db.execute("COMMIT")
        os.chmod(path, 0o600)
        return Ready(
            {"database": resource.name, "login": resource.login, "secret": resource.secret,
             "server": resource.server, "mode": resource.mode,
             "location": f"sqlite:///{path}", "login_enabled": resource.login_enabled},
            changed=created or login_changed,
        )

    def _remove(self, resource: Resource) -> Outcome:
        if isinstance(resource, (DatabaseCopy, CopyCheck)):
            return Ready({}, changed=False)
        if isinstance(resource, DatabaseSchema):
            return Ready({"database": resource.database}, changed=False)  # dropped with it
        if not isinstance(resource, Database):
            raise PermanentProviderError(f"not a database: {resource.key}")
        path = self._located(resource)
        existed = path.exists()
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return Ready({"database": resource.name, "server": resource.server}, changed=existed)

    def _copy(self, resource: DatabaseCopy) -> Outcome:
        """The source's file copied by SQLite's backup API into a temporary file beside the
        target, renamed into place once complete."""
        source, target = self._located(resource.source), self._located(resource.target)
        if source == target:
            raise PermanentProviderError(
                f"a move's source and target are the same file ({source}); nothing to copy",
                resource=resource.key)
        if not source.exists():
            raise PermanentProviderError(
                f"database {resource.source.name!r} does not exist at {source}",
                resource=resource.key)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        partial = target.with_name(f".{target.name}.copying")
        partial.unlink(missing_ok=True)
        with self._connect(source) as reading, closing(
                sqlite3.connect(partial, isolation_level=None)) as writing:
            reading.backup(writing)
        os.chmod(partial, 0o600)
        with open(partial, "rb") as handle:
            os.fsync(handle.fileno())
        for suffix in ("-wal", "-shm", "-journal"):
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        os.replace(partial, target)
        return Ready({"source": resource.source.key, "target": resource.target.key,
                      "bytes": target.stat().st_size}, changed=True)

    def _check(self, resource: CopyCheck) -> Outcome:
        before = self._counts(self._located(resource.source))
        after = self._counts(self._located(resource.target))
        differing = [f"{table}: {before.get(table, 'missing')} rows at the source, "
                     f"{after.get(table, 'missing')} in the copy"
                     for table in sorted(set(before) | set(after))
                     if before.get(table) != after.get(table)]
        if differing:
            raise PermanentProviderError(
                f"the copy of {resource.source.key} on {resource.target.key} differs: "
                f"{'; '.join(differing[:20])}; the tenant is still served from the source. "
                "Retry the move (the copy is made again)", resource=resource.key)
        return Ready({"tables": len(before), "rows": sum(before.values())}, changed=False)

    def _counts(self, path: Path) -> dict[str, int]:
        if not path.exists():
            return {}
        with self._connect(path) as db:
            tables = [name for (name,) in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%'")]
            return {table: int(db.execute(
                f'SELECT count(*) FROM "{table.replace(chr(34), chr(34) * 2)}"'  # noqa: S608
            ).fetchone()[0]) for table in tables}

    @contextmanager
    def connect(self, database: Database) -> Iterator[sqlite3.Connection]:
        """The tenant's file, in a transaction committed when the block ends."""
        path = self._located(database)
        if not path.exists():
            raise PermanentProviderError(f"database {database.name!r} does not exist at {path}",
                                         resource=database.key)
        with closing(sqlite3.connect(path, timeout=30)) as connection, connection:
            yield connection

    def _observe(self, resource: Resource) -> dict[str, Any] | None:
        if isinstance(resource, (DatabaseCopy, CopyCheck)):
            return None
        if isinstance(resource, DatabaseSchema):
            if not self.path(resource.database, resource.server).exists():
                return None
            return self.observe_schema(resource)
        if not isinstance(resource, Database):
            raise PermanentProviderError(f"not a database: {resource.key}")
        path = self._located(resource)
        if not path.exists():
            return None
        with self._connect(path) as db:
            logins = dict(db.execute("SELECT login, enabled FROM tenantops_logins ORDER BY 1")
                          .fetchall()) if _has_enabled(db) else {
                r[0]: 1 for r in db.execute("SELECT login FROM tenantops_logins ORDER BY 1")}
        login = resource.login if resource.login in logins else next(iter(logins), "")
        return {"name": resource.name, "login": login, "secret": resource.secret,
                "server": resource.server, "login_enabled": bool(logins.get(login, 0))}

    def read_metadata(self, database: Database) -> dict[str, str]:
        path = self._located(database)
        if not path.exists():
            raise PermanentProviderError(
                f"database {database.name!r} does not exist at {path}",
                provider=self.label, action="read", resource=database.key,
            )
        password = self.secrets.read(database.secret)
        with self._connect(path) as db:
            enabled = "enabled" if _has_enabled(db) else "1"
            row = db.execute(f"SELECT salt, hash, {enabled} FROM tenantops_logins "  # noqa: S608
                             "WHERE login = ?", (database.login,)).fetchone()
            if row is None or not hmac.compare_digest(_hash(password, row[0]), row[1]):
                raise PermanentProviderError(
                    f"login {database.login!r} was refused by database {database.name!r}: the "
                    f"password in secret {database.secret!r} does not match",
                    provider=self.label, action="read", resource=database.key,
                )
            if not row[2]:
                raise PermanentProviderError(
                    f"login {database.login!r} was refused by database {database.name!r}: the "
                    "login is disabled (the tenant is suspended)",
                    provider=self.label, action="read", resource=database.key,
                )
            return {str(k): str(v) for k, v in db.execute("SELECT key, value FROM tenantops_meta")}
