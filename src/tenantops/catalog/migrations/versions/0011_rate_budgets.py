"""Rate budgets: each budget's schedule, shared by every worker (`rate_budgets`).

Revision ID: 0011
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tenantops.catalog.models import UtcDateTime

revision = "0011"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_budgets",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("next_slot", sa.Float(), nullable=False),
        sa.Column("reserved", sa.Integer(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rate_budgets")
