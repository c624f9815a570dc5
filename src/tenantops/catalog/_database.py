"""`CatalogDatabase`: the catalog's connection, transactions and schema migrations.

Every store of the catalog (tenants, runs, steps, workers, idempotency keys, organizations)
reads and writes through one `CatalogDatabase`. It opens the database on first use (the
constructor does no I/O), turns SQLAlchemy's errors into `CatalogError` at the boundary, and
creates or upgrades the schema with Alembic (`migrate`).

On SQLite every write transaction starts with ``BEGIN IMMEDIATE`` (writers queue behind one
another instead of failing on a lock upgrade) and the file is in WAL mode, so readers never
wait for writers.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from tenantops.errors import CatalogError

__all__ = ["CatalogDatabase", "database_now", "new_id", "now"]


def now() -> dt.datetime:
    """The current time, timezone-aware UTC, as the catalog stores it."""
    return dt.datetime.now(dt.timezone.utc)


def new_id() -> str:
    return uuid.uuid4().hex


def database_now(connection: Connection) -> dt.datetime:
    """The database's clock, timezone-aware UTC: PostgreSQL's ``now()`` (the start of the
    current transaction), the same source for every worker; on SQLite this process's clock,
    which is the only one (one worker per data folder)."""
    if connection.dialect.name != "postgresql":
        return now()
    value = connection.execute(text("SELECT now()")).scalar_one()
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise CatalogError(f"the catalog's database answered {value!r} for now()")
    return value.astimezone(dt.timezone.utc)


class CatalogDatabase:
    """One SQL database (SQLite by default, or PostgreSQL) and its connection pool."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self._url = url
        self._pool_size = pool_size
        self._engine: Engine | None = None
        self._read_engine: Engine | None = None

    @property
    def url(self) -> str:
        """The database URL with any password hidden, for messages and logs."""
        return make_url(self._url).render_as_string(hide_password=True)

    @property
    def dialect(self) -> str:
        return make_url(self._url).get_backend_name()

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = self._create_engine()
        return self._engine

    def _create_engine(self) -> Engine:
        url = make_url(self._url)
        backend = url.get_backend_name()
        if backend == "sqlite":
            if url.database and url.database != ":memory:":
                Path(url.database).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(
                url, pool_size=self._pool_size, max_overflow=20,
                connect_args={"timeout": 30, "check_same_thread": False},
            )
            event.listen(engine, "connect", _sqlite_on_connect)
            event.listen(engine, "begin", _sqlite_on_begin)
            return engine
        if backend == "postgresql":
            if url.drivername == "postgresql":
                url = url.set(drivername="postgresql+psycopg")
            return create_engine(
                url, pool_size=self._pool_size, max_overflow=20, pool_pre_ping=True
            )
        raise CatalogError(
            f"catalog URL {self.url} uses {backend!r}; use sqlite:///PATH or "
            "postgresql://USER@HOST/DB in catalog.url"
        )

    def _reader(self) -> Engine:
        """The engine with read-only transactions (plain ``BEGIN`` on SQLite), made once."""
        if self._read_engine is None:
            self._read_engine = self.engine.execution_options(tenantops_readonly=True)
        return self._read_engine

    def close(self) -> None:
        """Close every pooled connection (the database can be used again afterwards)."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
            self._read_engine = None

    @contextmanager
    def session(self, *, write: bool) -> Iterator[Session]:
        """An ORM session in one transaction, committed when the block ends. Integrity errors
        pass through (callers decide races with them); other database errors become
        `CatalogError`."""
        bind = self.engine if write else self._reader()
        try:
            with self._writer_turn(write), Session(bind, expire_on_commit=False) as session, \
                    session.begin():
                yield session
        except IntegrityError:
            raise
        except SQLAlchemyError as exc:
            raise CatalogError(
                f"the catalog at {self.url} failed: {exc.__class__.__name__}: "
                f"{str(exc).splitlines()[0]}; check that the database is reachable and "
                "migrated (tenantops migrations run when a worker starts)"
            ) from exc

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A Core connection in one read transaction (the hot read path: no ORM objects)."""
        try:
            with self._reader().begin() as connection:
                yield connection
        except SQLAlchemyError as exc:
            raise CatalogError(
                f"the catalog at {self.url} failed: {exc.__class__.__name__}: "
                f"{str(exc).splitlines()[0]}; check that the database is reachable and "
                "migrated (tenantops migrations run when a worker starts)"
            ) from exc

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A Core connection in one write transaction (the hot path: no ORM objects)."""
        try:
            with self._writer_turn(True), self.engine.begin() as connection:
                yield connection
        except SQLAlchemyError as exc:
            raise CatalogError(
                f"the catalog at {self.url} failed: {exc.__class__.__name__}: "
                f"{str(exc).splitlines()[0]}; check that the database is reachable"
            ) from exc

    @contextmanager
    def _writer_turn(self, write: bool) -> Iterator[None]:
        """On SQLite, this process's writers take turns on a lock before ``BEGIN
        IMMEDIATE``: the lock hands over the moment a writer commits, while SQLite's busy
        handler has a waiting writer sleep 1-100 ms between tries; with eight runs writing
        at once that sleeping was most of a fleet run's time (bench/bench_fleet.py).
        Writers in other processes still wait on ``busy_timeout``; the wait here is as
        long (30 s), then fails as SQLite's would. Re-entrant, so a write inside a write
        on the same thread is SQLite's to refuse, as before."""
        if not write or self.dialect != "sqlite":
            yield
            return
        turn = _SQLITE_WRITERS.setdefault(self._url, threading.RLock())
        if not turn.acquire(timeout=30):
            raise CatalogError(
                f"the catalog at {self.url} is locked: another writer of this process held "
                "it for 30 s; check for a stuck request or run, then try again")
        try:
            yield
        finally:
            turn.release()

    def ping(self) -> None:
        """Open a connection and run ``SELECT 1``; `CatalogError` when that fails."""
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            raise CatalogError(
                f"the catalog at {self.url} failed: {exc.__class__.__name__}: "
                f"{str(exc).splitlines()[0]}; check that the database is reachable"
            ) from exc

    def migrate(self) -> None:
        """Create or upgrade the schema to the latest migration; safe to call concurrently."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option(
            "script_location", str(Path(__file__).with_name("migrations"))
        )
        try:
            with self.engine.connect() as connection:
                if self.dialect == "postgresql":
                    # Serialise concurrent migrators; released when the transaction ends.
                    connection.execute(text("SELECT pg_advisory_xact_lock(74120004)"))
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
                connection.commit()
        except SQLAlchemyError as exc:
            raise CatalogError(
                f"migrating the catalog at {self.url} failed: {exc}; check the URL and that "
                "the account may create tables"
            ) from exc


_SQLITE_WRITERS: dict[str, Any] = {}
"""A writer lock per SQLite catalog URL, shared by every `CatalogDatabase` of the process."""


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Transactions are begun explicitly in _sqlite_on_begin, not by the driver.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL survives a killed process; only a power loss may drop the last commits.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
    finally:
        cursor.close()


def _sqlite_on_begin(connection: Any) -> None:
    # On the driver's connection: through SQLAlchemy's execution path this statement cost
    # an eighth of each step's write (bench_onboarding). Its errors are SQLAlchemy's then.
    statement = "BEGIN" if connection.get_execution_options().get(
        "tenantops_readonly", False) else "BEGIN IMMEDIATE"
    try:
        connection.connection.driver_connection.execute(statement)
    except sqlite3.Error as exc:
        raise OperationalError(statement, None, exc) from exc
