"""Idempotency keys belong to the caller who sent them: primary key (scope, key).

Keys recorded before had no caller; they are dropped (a repeated request with the same spec
still returns its run: the catalog matches specs by slug).

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tenantops.catalog.models import UtcDateTime

revision = "0006"
down_revision = "0004"
branch_labels = None
depends_on = None


def _table(primary_key: tuple[str, ...]) -> None:
    columns = [
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
    ]
    if "scope" in primary_key:
        columns.insert(0, sa.Column("scope", sa.String(200), nullable=False))
    op.create_table("idempotency_keys", *columns, sa.PrimaryKeyConstraint(*primary_key))


def upgrade() -> None:
    op.drop_table("idempotency_keys")
    _table(("scope", "key"))


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    _table(("key",))
