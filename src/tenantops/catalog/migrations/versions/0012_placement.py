"""Placement: where each copy of a tenant's data lives (``placements``: the server, the
mode, the database and schema), and the attributes a plan gives an organization of the local
provider. Tenants that have a database get a current placement on the server ``default`` in
mode ``database``: where every tenant's database was before servers could be several.

Revision ID: 0012
Revises: 0013
Create Date: 2026-12-06
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

from tenantops.catalog.models import UtcDateTime

revision = "0012"
down_revision = "0013"
branch_labels = None
depends_on = None

_NOT_RETIRING = sa.text("state <> 'retiring'")


def upgrade() -> None:
    placements = op.create_table(
        "placements",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(32),
                  sa.ForeignKey("tenants.id", ondelete="CASCADE",
                                name="fk_placements_tenant_id_tenants"), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("server", sa.String(32), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("database", sa.String(63), nullable=False),
        sa.Column("schema", sa.String(63), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("retire_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_placements"),
    )
    op.create_index("uq_placements_tenant_state", "placements", ["tenant_id", "state"],
                    unique=True, sqlite_where=_NOT_RETIRING, postgresql_where=_NOT_RETIRING)
    op.create_index("ix_placements_server", "placements", ["server"])
    with op.batch_alter_table("organizations") as organizations:
        organizations.add_column(sa.Column("attributes", sa.JSON(), nullable=True))

    tenants = sa.table("tenants", sa.column("id", sa.String), sa.column("status", sa.String),
                       sa.column("database_name", sa.String))
    rows = op.get_bind().execute(
        sa.select(tenants.c.id, tenants.c.database_name)
        .where(tenants.c.status != "offboarded", tenants.c.database_name.is_not(None))).all()
    stamp = dt.datetime.now(dt.timezone.utc)
    if rows:
        op.bulk_insert(placements, [
            {"tenant_id": tenant_id, "state": "current", "server": "default",
             "mode": "database", "database": database, "schema": None, "details": {},
             "run_id": None, "created_at": stamp, "retire_at": None}
            for tenant_id, database in rows])


def downgrade() -> None:
    with op.batch_alter_table("organizations") as organizations:
        organizations.drop_column("attributes")
    op.drop_index("ix_placements_server", table_name="placements")
    op.drop_index("uq_placements_tenant_state", table_name="placements")
    op.drop_table("placements")
