"""Migrations of the SaaS's own schema in each tenant's database (not tenantops' catalog).

The user points ``migrations.folder`` at either

- an **Alembic** script folder (the ``script_location`` holding ``versions/``): its revisions
  run through Alembic's own machinery, recorded in Alembic's ``alembic_version`` table, so
  the same database can still be migrated with ``alembic upgrade``. The folder's ``env.py``
  is not run: tenantops hands Alembic the tenant's connection itself (an ``env.py`` builds
  its own engine from its own configuration, which knows nothing of tenants); or
- a folder of **plain SQL files**, applied in the order of their names (``0001_users.sql``,
  ``0002_orders.sql``; a leading number sorts numerically), each file's stem its revision,
  recorded in ``tenantops_schema_version``.

Alembic's ``op`` and ``context`` are process-wide proxies, so Alembic revisions are applied
to one tenant at a time per worker process; SQL files run for many tenants at once.

Every revision pending for a tenant is applied in **one transaction**: PostgreSQL and SQLite
both have transactional DDL, so a migration that fails on one tenant's data leaves that
tenant at its previous revision, whole, and the error names the revision and the database's
message. Downgrades are not done: a tenant already at or past the revision asked for is left
as it is.

`MigrationSource.load` reads a folder once per change of its contents (names, sizes, times).
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Connection, text

from tenantops.errors import MigrationError

__all__ = [
    "SQL_VERSION_TABLE",
    "Applied",
    "MigrationKind",
    "MigrationSource",
    "split_sqlite_statements",
]

MigrationKind = Literal["alembic", "sql"]
SQL_VERSION_TABLE = "tenantops_schema_version"
_LEADING_NUMBER = re.compile(r"^(\d+)")


@dataclass(frozen=True)
class Applied:
    """What an upgrade did: the revision before (None: none), after, and the revisions
    applied in between, in order (empty: nothing was pending)."""

    before: str | None
    after: str | None
    applied: tuple[str, ...]


def _fingerprint(folder: Path) -> tuple[tuple[str, int, int], ...]:
    return tuple(sorted((str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns)
                        for p in folder.rglob("*") if p.is_file()
                        and "__pycache__" not in p.parts))


_cache: dict[tuple[Path, str], tuple[tuple[tuple[str, int, int], ...], MigrationSource]] = {}
_cache_lock = threading.Lock()
_ALEMBIC_LOCK = threading.Lock()


@dataclass(frozen=True)
class MigrationSource:
    """The revisions of a migrations folder, base first."""

    folder: Path
    kind: MigrationKind
    revisions: tuple[str, ...]
    _sql: tuple[Path, ...] = ()
    _alembic: Any = None

    @classmethod
    def load(cls, folder: Path, kind: Literal["auto", "alembic", "sql"] = "auto"
             ) -> MigrationSource:
        """The folder's revisions; `MigrationError` naming the folder and what is wrong."""
        folder = folder.resolve()
        if not folder.is_dir():
            raise MigrationError(
                f"the tenant migrations folder {folder} does not exist; set "
                "migrations.folder to the folder of your Alembic scripts or SQL files")
        fingerprint = _fingerprint(folder)
        with _cache_lock:
            cached = _cache.get((folder, kind))
            if cached is not None and cached[0] == fingerprint:
                return cached[1]
        if kind == "alembic" or (kind == "auto" and (folder / "versions").is_dir()):
            source = cls._load_alembic(folder)
        elif kind == "sql" or (kind == "auto" and any(folder.glob("*.sql"))):
            source = cls._load_sql(folder)
        else:
            raise MigrationError(
                f"the tenant migrations folder {folder} holds neither Alembic scripts (a "
                "versions/ folder) nor .sql files; point migrations.folder at one of them")
        with _cache_lock:
            _cache[(folder, kind)] = (fingerprint, source)
        return source

    @classmethod
    def _load_sql(cls, folder: Path) -> MigrationSource:
        files = sorted(folder.glob("*.sql"), key=_sql_order)
        if not files:
            raise MigrationError(f"the SQL migrations folder {folder} has no .sql file")
        names = [f.stem for f in files]
        too_long = [n for n in names if len(n) > 64]
        if too_long:
            raise MigrationError(f"SQL migration names must be at most 64 characters; "
                                 f"{too_long[0]!r} is longer: rename the file")
        return cls(folder, "sql", tuple(names), tuple(files))

    @classmethod
    def _load_alembic(cls, folder: Path) -> MigrationSource:
        from alembic.config import Config
        from alembic.script import ScriptDirectory
        from alembic.util import CommandError

        config = Config()
        config.set_main_option("script_location", str(folder))
        try:
            script = ScriptDirectory.from_config(config)
            heads = script.get_heads()
            if len(heads) > 1:
                raise MigrationError(
                    f"the Alembic scripts in {folder} have {len(heads)} heads "
                    f"({', '.join(sorted(heads))}); merge them (alembic merge) so every "
                    "tenant follows one line of revisions")
            revisions = [r.revision for r in script.walk_revisions("base", "heads")]
        except CommandError as exc:
            raise MigrationError(f"the Alembic scripts in {folder} cannot be read: {exc}") \
                from exc
        return cls(folder, "alembic", tuple(reversed(revisions)), (), script)

    @property
    def head(self) -> str | None:
        return self.revisions[-1] if self.revisions else None

    def resolve(self, revision: str | None) -> str:
        """The revision ``revision`` names (None or ``head``: the newest)."""
        if revision is None or revision == "head":
            if self.head is None:
                raise MigrationError(f"the tenant migrations folder {self.folder} has no "
                                     "revision")
            return self.head
        if revision not in self.revisions:
            newest = ", ".join(self.revisions[-5:])
            raise MigrationError(
                f"revision {revision!r} is not in the tenant migrations folder {self.folder} "
                f"({self.kind}; its newest: {newest}); name one of its revisions, or head")
        return revision

    def pending(self, current: str | None, target: str) -> list[str]:
        """The revisions an upgrade from ``current`` to ``target`` applies, in order; empty
        when ``current`` is ``target`` or past it. `MigrationError` when ``current`` is not
        in the folder (the database is ahead of the migrations deployed)."""
        end = self.revisions.index(self.resolve(target))
        if current is None:
            return list(self.revisions[:end + 1])
        if current not in self.revisions:
            raise MigrationError(
                f"the database is at revision {current!r}, which the tenant migrations folder "
                f"{self.folder} does not have; deploy the migrations that made it")
        start = self.revisions.index(current)
        return list(self.revisions[start + 1:end + 1])

    # -- against a database -----------------------------------------------------------------

    def current(self, connection: Connection) -> str | None:
        """The database's revision (None: never migrated)."""
        table = "alembic_version" if self.kind == "alembic" else SQL_VERSION_TABLE
        column = "version_num" if self.kind == "alembic" else "revision"
        if not connection.dialect.has_table(connection, table):
            return None
        row = connection.execute(text(f"SELECT {column} FROM {table}")).first()  # noqa: S608
        return None if row is None else str(row[0])

    def upgrade(self, connection: Connection, target: str, *,
                before_commit: Callable[[Connection, Applied], None] | None = None) -> Applied:
        """Apply every revision pending up to ``target`` in one transaction (a failure rolls
        all of them back); ``connection`` must not be in a transaction. Raises
        `MigrationError` naming the revision and the database's message."""
        target = self.resolve(target)
        with connection.begin():
            before = self.current(connection)
            todo = self.pending(before, target)
            if not todo:
                return Applied(before, before, ())
            if self.kind == "sql":
                self._apply_sql(connection, todo, before)
            else:
                self._apply_alembic(connection, target)
            applied = Applied(before, target, tuple(todo))
            if before_commit is not None:
                before_commit(connection, applied)
            return applied

    def _apply_sql(self, connection: Connection, todo: list[str], before: str | None) -> None:
        files = {f.stem: f for f in self._sql}
        sqlite = connection.dialect.name == "sqlite"
        for revision in todo:
            script = files[revision].read_text(encoding="utf-8")
            try:
                if sqlite:
                    for statement in split_sqlite_statements(script):
                        connection.exec_driver_sql(statement)
                else:
                    connection.exec_driver_sql(script)
            except Exception as exc:
                raise _failed(revision, exc) from exc
        if before is None:
            connection.exec_driver_sql(
                f"CREATE TABLE IF NOT EXISTS {SQL_VERSION_TABLE} (revision VARCHAR(64) NOT NULL)")
            connection.exec_driver_sql(f"DELETE FROM {SQL_VERSION_TABLE}")  # noqa: S608
            connection.execute(text(f"INSERT INTO {SQL_VERSION_TABLE} VALUES (:r)"),  # noqa: S608
                               {"r": todo[-1]})
        else:
            connection.execute(text(f"UPDATE {SQL_VERSION_TABLE} SET revision = :r"),  # noqa: S608
                               {"r": todo[-1]})

    def _apply_alembic(self, connection: Connection, target: str) -> None:
        from alembic.config import Config
        from alembic.runtime.environment import EnvironmentContext

        config = Config()
        config.set_main_option("script_location", str(self.folder))
        script = self._alembic
        applying: list[str] = []
        applied: list[str] = []

        def upgrade(revision: Any, _context: Any) -> Any:
            steps = script._upgrade_revs(target, revision)
            applying.extend(str(s.revision.revision) for s in steps)
            return steps

        def done(ctx: Any, step: Any, heads: Any, run_args: Any) -> None:
            applied.append(str(step.up_revision_id))

        # Alembic's ``op`` and ``context`` are module-level proxies bound to one migration
        # context at a time: two tenants migrated at once in one process would each run the
        # other's operations. Alembic revisions run one at a time per process (SQL files do
        # not need this).
        with _ALEMBIC_LOCK, EnvironmentContext(config, script, fn=upgrade,
                                               destination_rev=target) as env:
            # The caller's transaction holds every revision (transactional DDL on SQLite too).
            env.configure(connection=connection, transactional_ddl=True,
                          transaction_per_migration=False, on_version_apply=done)
            try:
                env.run_migrations()
            except Exception as exc:
                raise _failed(_current_revision(applying, applied), exc) from exc


def _current_revision(applying: list[str], applied: list[str]) -> str:
    """The revision that was running: the first of those to apply not yet applied."""
    return next((r for r in applying if r not in applied), applying[-1] if applying else "?")


def _failed(revision: str, exc: BaseException) -> MigrationError:
    cause: BaseException = getattr(exc, "orig", None) or exc
    message = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    return MigrationError(f"revision {revision} failed: {message}")


def _sql_order(path: Path) -> tuple[int, str]:
    match = _LEADING_NUMBER.match(path.stem)
    return (int(match.group(1)) if match else 1 << 62, path.stem)


def split_sqlite_statements(script: str) -> Iterator[str]:
    """The statements of a SQL script, one at a time (SQLite runs one per call;
    ``executescript`` would commit the transaction first)."""
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statement = buffer.strip()
            buffer = ""
            if statement.strip(";").strip():
                yield statement
    if buffer.strip() and not _only_comments(buffer):
        yield buffer.strip()


def _only_comments(text: str) -> bool:
    return all(not line.strip() or line.strip().startswith("--") for line in text.splitlines())
