"""Day-two runs: the custom domains a tenant still serves after a domain change, until its
grace period ends (``retiring_domains``), and whether a local organization is enabled
(suspended tenants' organizations are not).

Revision ID: 0009
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tenantops.catalog.models import UtcDateTime

revision = "0009"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "retiring_domains",
        sa.Column("domain", sa.String(64), nullable=False),
        sa.Column("tenant_id", sa.String(32),
                  sa.ForeignKey("tenants.id", ondelete="CASCADE",
                                name="fk_retiring_domains_tenant_id_tenants"),
                  nullable=False),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("retire_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("domain", name="pk_retiring_domains"),
    )
    op.create_index("ix_retiring_domains_tenant", "retiring_domains", ["tenant_id"])
    with op.batch_alter_table("organizations") as organizations:
        organizations.add_column(sa.Column("enabled", sa.Boolean(), nullable=False,
                                           server_default=sa.true()))


def downgrade() -> None:
    with op.batch_alter_table("organizations") as organizations:
        organizations.drop_column("enabled")
    op.drop_index("ix_retiring_domains_tenant", table_name="retiring_domains")
    op.drop_table("retiring_domains")
