"""Step attempts: each attempt of each step, with its times, outcome, error and the resolved
resource it asked for, so a run shows its history instead of only its last state.

Revision ID: 0005
Revises: 0007 (numbered 0005 when it was written; it applies after 0007, the head it was rebased on)
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tenantops.catalog.models import UtcDateTime

revision = "0005"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "step_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("step", sa.String(64), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("execution", sa.Integer(), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("finished_at", UtcDateTime(), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("resolved", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_step_attempts"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_step_attempts_run_id_runs", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("run_id", "step", "number", name="uq_step_attempts_run_id"),
    )


def downgrade() -> None:
    op.drop_table("step_attempts")
