"""``sqlite`` databases: one SQLite file per tenant under a data folder.

SQLite has no logins, so the login is emulated the way a server keeps one: a
``tenantops_logins`` table holds the login's salted scrypt hash and whether it may sign in,
and `read_metadata` (how the local tenant app connects) refuses a password that does not
match, and a login that is disabled (``Database.login_enabled`` False: a suspended tenant,
as PostgreSQL's ``NOLOGIN``). SQLite has no sessions to end.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tenantops.errors import PermanentProviderError, TransientProviderError
from tenantops.provisioning.providers.base import Outcome, Ready, Resource
from tenantops.provisioning.providers.database import (
    Database,
    DatabaseProvider,
    DatabaseSchema,
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
    """Tenant databases as ``<directory>/<name>.sqlite``."""

    name = "sqlite"

    def __init__(self, directory: Path, secrets: SecretsProvider) -> None:
        super().__init__()
        self.directory = directory
        self.secrets = secrets

    def path(self, name: str) -> Path:
        return self.directory / f"{name}.sqlite"

    @contextmanager
    def _connect(self, path: Path) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(path, timeout=30, isolation_level=None)) as connection:
            yield connection

    @contextmanager
    def schema_connection(self, schema: DatabaseSchema) -> Iterator[Connection]:
        from sqlalchemy import create_engine, event
        from sqlalchemy.pool import NullPool

        path = self.path(schema.database)
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
        if isinstance(resource, DatabaseSchema):
            return self.migrate_schema(resource)
        assert isinstance(resource, Database)
        password = self.secrets.read(resource.secret)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.path(resource.name)
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
             "location": str(path), "login_enabled": resource.login_enabled},
            changed=created or login_changed,
        )

    def _remove(self, resource: Resource) -> Outcome:
        if isinstance(resource, DatabaseSchema):
            return Ready({"database": resource.database}, changed=False)  # dropped with it
        assert isinstance(resource, Database)
        path = self.path(resource.name)
        existed = path.exists()
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return Ready({"database": resource.name}, changed=existed)

    def _observe(self, resource: Resource) -> dict[str, Any] | None:
        if isinstance(resource, DatabaseSchema):
            if not self.path(resource.database).exists():
                return None
            return self.observe_schema(resource)
        assert isinstance(resource, Database)
        path = self.path(resource.name)
        if not path.exists():
            return None
        with self._connect(path) as db:
            logins = dict(db.execute("SELECT login, enabled FROM tenantops_logins ORDER BY 1")
                          .fetchall()) if _has_enabled(db) else {
                r[0]: 1 for r in db.execute("SELECT login FROM tenantops_logins ORDER BY 1")}
        login = resource.login if resource.login in logins else next(iter(logins), "")
        return {"name": resource.name, "login": login, "secret": resource.secret,
                "login_enabled": bool(logins.get(login, 0))}

    def read_metadata(self, database: Database) -> dict[str, str]:
        path = self.path(database.name)
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
