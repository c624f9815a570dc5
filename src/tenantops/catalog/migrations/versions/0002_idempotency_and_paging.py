"""Idempotency keys of onboarding requests; indexes for paging tenants newest first.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tenantops.catalog.models import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_tenants_created", "tenants", ["created_at", "id"])
    op.create_index("ix_tenants_status_created", "tenants", ["status", "created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_tenants_status_created", "tenants")
    op.drop_index("ix_tenants_created", "tenants")
    op.drop_table("idempotency_keys")
