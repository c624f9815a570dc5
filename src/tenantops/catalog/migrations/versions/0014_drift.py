"""Drift: the last drift check of each tenant (``drift_reports``), what the dashboard lists
as drifted and what scheduled checks claim one tenant at a time.

Revision ID: 0014
Revises: 0015
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tenantops.catalog.models import UtcDateTime

revision = "0014"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "drift_reports",
        sa.Column("tenant_id", sa.String(32),
                  sa.ForeignKey("tenants.id", ondelete="CASCADE",
                                name="fk_drift_reports_tenant_id_tenants"),
                  nullable=False),
        sa.Column("state", sa.String(16), nullable=True),
        sa.Column("checked_at", UtcDateTime(), nullable=True),
        sa.Column("checked_by", sa.String(256), nullable=True),
        sa.Column("resources", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("claimed_by", sa.String(200), nullable=True),
        sa.Column("claimed_at", UtcDateTime(), nullable=True),
        sa.Column("reconcile_run_id", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", name="pk_drift_reports"),
    )
    op.create_index("ix_drift_reports_state_checked", "drift_reports",
                    ["state", "checked_at"])


def downgrade() -> None:
    op.drop_index("ix_drift_reports_state_checked", table_name="drift_reports")
    op.drop_table("drift_reports")
