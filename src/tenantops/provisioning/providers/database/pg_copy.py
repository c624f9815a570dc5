"""A move's copy of a tenant's PostgreSQL data (`copy`) and its check (`check`).

The copy is ``pg_dump --format=custom --compress=0 | pg_restore --single-transaction``
between the admin roles of the two servers, run while the source's login is disabled (the
move's write freeze), so what is copied is everything the tenant wrote. The target is made
empty first (its database dropped and made again, or its schema dropped), so a copy
repeated after a crash or a failure gives the same result. Owners are kept (the tenant's
login exists on the target before the copy: the move's step before makes it), privileges
are not (``--no-acl``: another server may lack the roles they name; tenantops grants its own
again when the move opens the target).

Between the modes the schema changes its name: a tenant's own database keeps its data in
``public``, a pooled database in ``tenant_<slug>``.

- schema → database: the schema is restored into the new database, whose empty ``public``
  is then dropped and the schema renamed ``public``;
- database → schema: ``public`` is restored into a staging database on the target server,
  renamed there, and copied again into the pooled database (a second copy, on the target
  server only); a tenant database with objects in other schemas than ``public`` is refused.

The check counts the rows of every table on both sides (`CopyCheck`).

``pg_dump`` and ``pg_restore`` come from ``tools_directory``, else the newest
``/usr/lib/postgresql/<version>/bin``, else the PATH; they must be at least as new as the
servers. Passwords reach them in ``PGPASSWORD``, never on the command line.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from tenantops.errors import PermanentProviderError, TransientProviderError
from tenantops.log import redact
from tenantops.provisioning.providers.base import Ready
from tenantops.provisioning.providers.database import CopyCheck, Database, DatabaseCopy

if TYPE_CHECKING:
    from tenantops.provisioning.providers.database.postgres import PostgresDatabases

__all__ = ["check", "copy", "find_tools"]

_SYSTEM_SCHEMAS = ("pg_catalog", "information_schema")
_TRANSIENT_TOOL_TEXT = ("could not connect", "connection to server", "server closed the "
                        "connection", "the database system is", "too many clients",
                        "remaining connection slots", "terminating connection")


def find_tools(configured: Path | None) -> tuple[Path, Path]:
    """``pg_dump`` and ``pg_restore``; `PermanentProviderError` when they are not there."""
    folders: list[Path] = []
    if configured is not None:
        folders.append(configured)
    else:
        versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                          key=lambda p: _version(p.parent.name), reverse=True)
        folders.extend(versions)
    for folder in folders:
        dump, restore = folder / "pg_dump", folder / "pg_restore"
        if dump.is_file() and restore.is_file():
            return dump, restore
    if configured is None:
        dump_path, restore_path = shutil.which("pg_dump"), shutil.which("pg_restore")
        if dump_path and restore_path:
            return Path(dump_path), Path(restore_path)
    where = (f"in {configured} (providers.database.postgres.tools_directory)"
             if configured is not None else "in /usr/lib/postgresql/*/bin or on the PATH")
    raise PermanentProviderError(
        f"pg_dump and pg_restore are not {where}; install the PostgreSQL client of the "
        "servers' version (Debian: postgresql-client-15) or set "
        "providers.database.postgres.tools_directory")


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", name)) or (0,)


def copy(provider: PostgresDatabases, resource: DatabaseCopy) -> Ready:
    """Make ``resource.target`` hold exactly what ``resource.source`` holds (see the module
    docstring)."""
    source, target = resource.source, resource.target
    if source.location == target.location:
        raise PermanentProviderError(
            f"a move's source and target are the same place ({source.key}); nothing to copy",
            resource=resource.key)
    if source.login != target.login:
        raise PermanentProviderError(
            f"a move keeps the tenant's login: {source.login!r} cannot become "
            f"{target.login!r}", resource=resource.key)
    dump, restore = find_tools(provider.tools_directory)
    started = time.monotonic()
    deadline = started + provider.move_timeout
    if source.schema is None and target.schema is not None:
        _refuse_other_schemas(provider, source)
    if target.schema is None:
        _fresh_database(provider, target, target.name)
    else:
        _drop_schema(provider, target)
    if source.schema is None and target.schema is None:
        _pipe(provider, dump, restore, source, source.name, [], target, target.name, deadline)
    elif source.schema is not None and target.schema is not None:
        _pipe(provider, dump, restore, source, source.name, ["--schema", source.schema],
              target, target.name, deadline)
        if source.schema != target.schema:
            _rename_schema(provider, target, target.name, source.schema, target.schema)
    elif source.schema is not None:
        _pipe(provider, dump, restore, source, source.name, ["--schema", source.schema],
              target, target.name, deadline)
        with provider.admin_connection(target, dbname=target.name, autocommit=False) as db:
            _execute(provider, db, target, sql.SQL("DROP SCHEMA public"))
            _execute(provider, db, target, sql.SQL("ALTER SCHEMA {} RENAME TO public").format(
                sql.Identifier(source.schema)))
    else:
        schema = target.schema or ""
        staging = f"tenantops_stage_{schema}"[:63]
        _fresh_database(provider, target, staging)
        try:
            # pg_dump --schema public makes the schema itself (CREATE SCHEMA public).
            with provider.admin_connection(target, dbname=staging) as db:
                _execute(provider, db, target, sql.SQL("DROP SCHEMA public"))
            _pipe(provider, dump, restore, source, source.name, ["--schema", "public"],
                  target, staging, deadline)
            _rename_schema(provider, target, staging, "public", schema)
            _pipe(provider, dump, restore, target, staging, ["--schema", schema], target,
                  target.name, deadline)
        finally:
            with provider.admin_connection(target) as admin:
                _execute(provider, admin, target, sql.SQL(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(staging)))
    seconds = time.monotonic() - started
    return Ready({"source": source.key, "target": target.key,
                  "seconds": round(seconds, 3)}, changed=True)


def check(provider: PostgresDatabases, resource: CopyCheck) -> Ready:
    """Compare the row counts of every table on both sides; `PermanentProviderError`
    listing each table that differs or is missing."""
    source, target = resource.source, resource.target
    by_name = source.schema is not None or target.schema is not None
    before = _counts(provider, source, by_name)
    after = _counts(provider, target, by_name)
    differing = [f"{table}: {before.get(table, 'missing')} rows at the source, "
                 f"{after.get(table, 'missing')} in the copy"
                 for table in sorted(set(before) | set(after))
                 if before.get(table) != after.get(table)]
    if differing:
        raise PermanentProviderError(
            f"the copy of {source.key} on {target.key} differs: {'; '.join(differing[:20])}; "
            "the tenant is still served from the source. Retry the move (the copy is made "
            "again)", resource=resource.key)
    return Ready({"tables": len(before), "rows": sum(before.values())}, changed=False)


def _counts(provider: PostgresDatabases, database: Database, by_name: bool) -> dict[str, int]:
    scope = [database.schema or "public"] if by_name else None
    with provider.admin_connection(database, dbname=database.name) as db:
        tables = db.execute(
            "SELECT n.nspname, c.relname FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition "
            "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
            "AND n.nspname NOT LIKE 'pg_toast%%' AND n.nspname NOT LIKE 'pg_temp%%' "
            "AND (%s::text[] IS NULL OR n.nspname = ANY(%s::text[]))",
            (scope, scope)).fetchall()
        counts: dict[str, int] = {}
        for schema, table in tables:
            row = db.execute(sql.SQL("SELECT count(*) FROM {}").format(
                sql.Identifier(schema, table))).fetchone()
            counts[table if by_name else f"{schema}.{table}"] = int(row[0]) if row else 0
    return counts


def _refuse_other_schemas(provider: PostgresDatabases, source: Database) -> None:
    with provider.admin_connection(source, dbname=source.name) as db:
        others = [name for (name,) in db.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname <> 'public' "
            "AND nspname NOT IN ('pg_catalog', 'information_schema') "
            "AND nspname NOT LIKE 'pg_toast%%' AND nspname NOT LIKE 'pg_temp%%'").fetchall()]
    if others:
        raise PermanentProviderError(
            f"database {source.name} has schemas besides public ({', '.join(sorted(others))}); "
            "a tenant in a pooled database has one schema, so it cannot move there. Keep it "
            "in a plan with mode = 'database'", resource=source.key)


def _fresh_database(provider: PostgresDatabases, target: Database, name: str) -> None:
    """Database ``name`` on the target's server, empty, owned by the tenant's login."""
    database, login = sql.Identifier(name), sql.Identifier(target.login)
    with provider.admin_connection(target) as admin:
        _execute(provider, admin, target,
                 sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(database))
        _execute(provider, admin, target, sql.SQL(
            "CREATE DATABASE {} OWNER {} TEMPLATE template0 ENCODING 'UTF8'").format(
                database, login))
        _execute(provider, admin, target,
                 sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(database))


def _drop_schema(provider: PostgresDatabases, target: Database) -> None:
    if target.schema is None:
        return
    with provider.admin_connection(target, dbname=target.name) as db:
        _execute(provider, db, target, sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
            sql.Identifier(target.schema)))


def _rename_schema(provider: PostgresDatabases, target: Database, database: str,
                   old: str, new: str) -> None:
    with provider.admin_connection(target, dbname=database, autocommit=False) as db:
        _execute(provider, db, target, sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(
            sql.Identifier(old), sql.Identifier(new)))
        _execute(provider, db, target, sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(
            sql.Identifier(new), sql.Identifier(target.login)))


def _execute(provider: PostgresDatabases, connection: psycopg.Connection[tuple[Any, ...]],
             resource: Database, statement: sql.SQL | sql.Composed) -> None:
    try:
        connection.execute(statement)
    except psycopg.Error as exc:
        raise provider._translate(exc, "copy", resource) from None


def _tool_side(provider: PostgresDatabases, database: Database, dbname: str
               ) -> tuple[str, dict[str, str]]:
    """A conninfo without the password, and the environment that carries it."""
    conninfo = provider.admin_conninfo(database, dbname=dbname)
    parts = psycopg.conninfo.conninfo_to_dict(conninfo)
    password = parts.pop("password", None)
    parts["application_name"] = "tenantops-move"
    env = dict(os.environ)
    if password is not None:
        env["PGPASSWORD"] = str(password)
    return psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in parts.items()}), env


def _pipe(provider: PostgresDatabases, dump: Path, restore: Path, source: Database,
          source_db: str, scope: list[str], target: Database, target_db: str,
          deadline: float) -> None:
    """``pg_dump`` of ``source_db`` (``scope``: which schema) into ``pg_restore`` of
    ``target_db``, until ``deadline`` (monotonic)."""
    source_info, source_env = _tool_side(provider, source, source_db)
    target_info, target_env = _tool_side(provider, target, target_db)
    with tempfile.TemporaryFile() as dump_err, tempfile.TemporaryFile() as restore_err:
        dumping = subprocess.Popen(
            [str(dump), "--format=custom", "--compress=0", "--no-acl", *scope,
             f"--dbname={source_info}"],
            stdout=subprocess.PIPE, stderr=dump_err, env=source_env)
        try:
            restoring = subprocess.Popen(
                [str(restore), "--no-acl", "--exit-on-error", "--single-transaction",
                 f"--dbname={target_info}"],
                stdin=dumping.stdout, stdout=subprocess.DEVNULL, stderr=restore_err,
                env=target_env)
        except OSError:
            dumping.kill()
            dumping.wait()
            raise
        finally:
            if dumping.stdout is not None:
                dumping.stdout.close()  # pg_restore holds the read end now
        try:
            restoring.wait(timeout=max(0.0, deadline - time.monotonic()))
            dumping.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for process in (dumping, restoring):
                process.kill()
                process.wait()
            raise TransientProviderError(
                f"copying {source.key} to {target.key} took longer than "
                f"providers.database.postgres.move_timeout_seconds "
                f"({provider.move_timeout:g} s); the copy starts again", resource=target.key
            ) from None
        # pg_restore first: when it stops, pg_dump dies of the broken pipe (SIGPIPE).
        if restoring.returncode:
            raise _tool_error("pg_restore", restoring.returncode, restore_err, target)
        if dumping.returncode:
            raise _tool_error("pg_dump", dumping.returncode, dump_err, source)


def _tool_error(tool: str, code: int, output: IO[bytes], database: Database
                ) -> PermanentProviderError | TransientProviderError:
    output.seek(0)
    lines = [line.strip() for line in output.read().decode(errors="replace").splitlines()
             if line.strip()]
    text = redact(" / ".join(lines[-3:]) or f"exit code {code}")
    message = (f"{tool} failed on {database.key} (server {database.server!r}): {text}")
    if any(hint in text.lower() for hint in _TRANSIENT_TOOL_TEXT):
        return TransientProviderError(f"{message}; will retry", resource=database.key)
    return PermanentProviderError(message, resource=database.key)
