"""The engine under faults: a run's current workflow segment, when a step first went pending
in its attempt chain, and each worker's clock offset from the database's.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tenantops.catalog.models import UtcDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as runs:
        runs.add_column(sa.Column("segment", sa.Integer(), nullable=False,
                                  server_default="0"))
    with op.batch_alter_table("steps") as steps:
        steps.add_column(sa.Column("pending_since", UtcDateTime(), nullable=True))
    with op.batch_alter_table("workers") as workers:
        workers.add_column(sa.Column("clock_offset_seconds", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("workers") as workers:
        workers.drop_column("clock_offset_seconds")
    with op.batch_alter_table("steps") as steps:
        steps.drop_column("pending_since")
    with op.batch_alter_table("runs") as runs:
        runs.drop_column("segment")
