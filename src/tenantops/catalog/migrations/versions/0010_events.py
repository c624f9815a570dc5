"""Lifecycle events: the outbox (``events``, also each tenant's history), one delivery per
event and sink (``event_deliveries``), and the dispatcher's lease (``event_dispatcher``).

Revision ID: 0010
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tenantops.catalog.models import UtcDateTime

revision = "0010"
down_revision = "0006"
branch_labels = None
depends_on = None

_UNROUTED = sa.text("routed_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("type", sa.String(128), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("tenant_slug", sa.String(32), nullable=True),
        sa.Column("run_id", sa.String(32), nullable=True),
        sa.Column("actor", sa.String(256), nullable=True),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.Column("time", UtcDateTime(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("routed_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_events"),
        sa.UniqueConstraint("id", name="uq_events_id"),
    )
    op.create_index("ix_events_tenant_seq", "events", ["tenant_slug", "seq"])
    op.create_index("ix_events_run", "events", ["run_id"])
    op.create_index("ix_events_time", "events", ["time"])
    op.create_index("ix_events_unrouted", "events", ["seq"], sqlite_where=_UNROUTED,
                    postgresql_where=_UNROUTED)
    op.create_table(
        "event_deliveries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_seq", sa.Integer(), nullable=False),
        sa.Column("sink", sa.String(100), nullable=False),
        sa.Column("ordering_key", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UtcDateTime(), nullable=False),
        sa.Column("first_attempt_at", UtcDateTime(), nullable=True),
        sa.Column("last_attempt_at", UtcDateTime(), nullable=True),
        sa.Column("delivered_at", UtcDateTime(), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_event_deliveries"),
        sa.ForeignKeyConstraint(["event_seq"], ["events.seq"],
                                name="fk_event_deliveries_event_seq_events", ondelete="CASCADE"),
        sa.UniqueConstraint("event_seq", "sink", name="uq_event_deliveries_event_seq"),
    )
    op.create_index("ix_event_deliveries_queue", "event_deliveries",
                    ["status", "sink", "ordering_key", "event_seq"])
    op.create_index("ix_event_deliveries_due", "event_deliveries",
                    ["status", "next_attempt_at"])
    op.create_table(
        "event_dispatcher",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_event_dispatcher"),
    )


def downgrade() -> None:
    op.drop_table("event_dispatcher")
    op.drop_table("event_deliveries")
    op.drop_index("ix_events_unrouted", table_name="events")
    op.drop_index("ix_events_time", table_name="events")
    op.drop_index("ix_events_run", table_name="events")
    op.drop_index("ix_events_tenant_seq", table_name="events")
    op.drop_table("events")
