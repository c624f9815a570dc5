"""Fleet runs: one operation over a selection of tenants (``fleet_runs``), each tenant's
place and outcome in it (``fleet_targets``), and the revision of the SaaS's own schema in
each tenant's database (``tenants.schema_revision``).

Revision ID: 0013
Revises: 0014
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tenantops.catalog.models import UtcDateTime

revision = "0013"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN (not batch mode, which would copy the table on SQLite and lose the
    # tenant search triggers of 0015).
    op.add_column("tenants", sa.Column("schema_revision", sa.String(64), nullable=True))
    op.create_table(
        "fleet_runs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("operation", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("selection", sa.JSON(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("canary", sa.Integer(), nullable=False),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        sa.Column("batch_size", sa.Integer(), nullable=True),
        sa.Column("max_failures", sa.Integer(), nullable=True),
        sa.Column("max_failure_percent", sa.Float(), nullable=True),
        sa.Column("requested_by", sa.String(256), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("finished_at", UtcDateTime(), nullable=True),
        sa.Column("stop_reason", sa.Text(), nullable=True),
        sa.Column("resumes", sa.Integer(), nullable=False),
        sa.Column("conductor", sa.String(200), nullable=True),
        sa.Column("lease_until", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_fleet_runs"),
    )
    op.create_index("ix_fleet_runs_status", "fleet_runs", ["status"])
    op.create_index("ix_fleet_runs_created", "fleet_runs", ["created_at", "id"])
    op.create_table(
        "fleet_targets",
        sa.Column("fleet_id", sa.String(32), nullable=False),
        sa.Column("tenant_slug", sa.String(32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("canary", sa.Boolean(), nullable=False),
        sa.Column("batch", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=True),
        sa.Column("started_at", UtcDateTime(), nullable=True),
        sa.Column("finished_at", UtcDateTime(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["fleet_id"], ["fleet_runs.id"], ondelete="CASCADE",
                                name="fk_fleet_targets_fleet_id_fleet_runs"),
        sa.PrimaryKeyConstraint("fleet_id", "tenant_slug", name="pk_fleet_targets"),
    )
    op.create_index("ix_fleet_targets_status", "fleet_targets",
                    ["fleet_id", "status", "position"])


def downgrade() -> None:
    op.drop_index("ix_fleet_targets_status", table_name="fleet_targets")
    op.drop_table("fleet_targets")
    op.drop_index("ix_fleet_runs_created", table_name="fleet_runs")
    op.drop_index("ix_fleet_runs_status", table_name="fleet_runs")
    op.drop_table("fleet_runs")
    op.drop_column("tenants", "schema_revision")  # SQLite 3.35+ drops it in place
