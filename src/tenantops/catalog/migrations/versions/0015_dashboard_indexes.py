"""What the dashboard reads at 10,000 tenants and 100,000 runs, indexed: runs newest first
(all, by status, by kind), the steps where runs stand or stopped, certificates by expiry, and
a substring search over each tenant's slug, name and domain (SQLite: an FTS5 table with the
trigram tokenizer, kept by triggers; PostgreSQL: a pg_trgm GIN index, when the extension can
be created).

Revision ID: 0015
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0011"
branch_labels = None
depends_on = None

log = logging.getLogger("tenantops.catalog")

_STOPPED = sa.text("status IN ('running', 'waiting', 'retrying', 'failed', 'cancelled')")
# Copies of tenantops.catalog.search's names as of this revision (a migration must not change
# when the code does).
_FTS = "tenants_search"
_TRGM = "ix_tenants_search_trgm"
_SEARCHED = "lower(slug || ' ' || display_name || ' ' || custom_domain)"


def upgrade() -> None:
    op.create_index("ix_runs_created", "runs", ["created_at", "id"])
    op.create_index("ix_runs_status_created", "runs", ["status", "created_at", "id"])
    op.create_index("ix_runs_kind_created", "runs", ["kind", "created_at", "id"])
    op.create_index("ix_steps_stopped", "steps", ["name", "run_id"],
                    sqlite_where=_STOPPED, postgresql_where=_STOPPED)
    op.create_index("ix_tenants_certificate_expires", "tenants", ["certificate_expires_at"])
    connection = op.get_bind()
    if connection.dialect.name == "sqlite":
        _sqlite_search(connection)
    elif connection.dialect.name == "postgresql":
        _postgres_search(connection)


def downgrade() -> None:
    connection = op.get_bind()
    if connection.dialect.name == "sqlite":
        for trigger in ("tenants_search_insert", "tenants_search_delete", "tenants_search_update"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute(f"DROP TABLE IF EXISTS {_FTS}")
    elif connection.dialect.name == "postgresql":
        op.execute(f"DROP INDEX IF EXISTS {_TRGM}")
    op.drop_index("ix_tenants_certificate_expires", table_name="tenants")
    op.drop_index("ix_steps_stopped", table_name="steps")
    op.drop_index("ix_runs_kind_created", table_name="runs")
    op.drop_index("ix_runs_status_created", table_name="runs")
    op.drop_index("ix_runs_created", table_name="runs")


def _sqlite_search(connection: sa.Connection) -> None:
    # External content: the FTS table indexes the tenants' rows without a copy of them.
    connection.exec_driver_sql(
        f"CREATE VIRTUAL TABLE {_FTS} USING fts5(slug, display_name, custom_domain, "
        "content='tenants', content_rowid='rowid', tokenize='trigram')")
    columns = "slug, display_name, custom_domain"
    connection.exec_driver_sql(
        f"CREATE TRIGGER tenants_search_insert AFTER INSERT ON tenants BEGIN "  # noqa: S608 (constants)
        f"INSERT INTO {_FTS}(rowid, {columns}) VALUES "
        "(new.rowid, new.slug, new.display_name, new.custom_domain); END")
    connection.exec_driver_sql(
        f"CREATE TRIGGER tenants_search_delete AFTER DELETE ON tenants BEGIN "  # noqa: S608 (constants)
        f"INSERT INTO {_FTS}({_FTS}, rowid, {columns}) VALUES "
        "('delete', old.rowid, old.slug, old.display_name, old.custom_domain); END")
    connection.exec_driver_sql(
        f"CREATE TRIGGER tenants_search_update AFTER UPDATE OF {columns} ON tenants BEGIN "  # noqa: S608 (constants)
        f"INSERT INTO {_FTS}({_FTS}, rowid, {columns}) VALUES "
        "('delete', old.rowid, old.slug, old.display_name, old.custom_domain); "
        f"INSERT INTO {_FTS}(rowid, {columns}) VALUES "
        "(new.rowid, new.slug, new.display_name, new.custom_domain); END")
    connection.exec_driver_sql(f"INSERT INTO {_FTS}({_FTS}) VALUES ('rebuild')")  # noqa: S608 (constants)


def _postgres_search(connection: sa.Connection) -> None:
    # pg_trgm is a trusted extension (PostgreSQL 13+): the database's owner may create it. On
    # Azure Database for PostgreSQL it must also be allow-listed (server parameter
    # azure.extensions). Without it, search still works, by reading every tenant.
    try:
        with connection.begin_nested():
            connection.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except sa.exc.DBAPIError as exc:
        log.warning("pg_trgm is not available (%s): tenant search reads every tenant; "
                    "to index it, allow-list pg_trgm, then run: CREATE EXTENSION pg_trgm; "
                    "CREATE INDEX %s ON tenants USING gin ((%s) gin_trgm_ops)",
                    str(exc).splitlines()[0], _TRGM, _SEARCHED)
        return
    connection.exec_driver_sql(
        f"CREATE INDEX {_TRGM} ON tenants USING gin (({_SEARCHED}) gin_trgm_ops)")
