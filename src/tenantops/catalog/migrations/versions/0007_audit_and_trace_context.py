"""The audit trail (append-only: triggers refuse UPDATE, DELETE and, on PostgreSQL,
TRUNCATE), and the trace context of the request that opened each run.

Revision ID: 0007
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tenantops.catalog.models import UtcDateTime

revision = "0007"
down_revision = "0008"
branch_labels = None
depends_on = None

_REFUSAL = "audit_records is append-only"

_SQLITE_TRIGGERS = [
    f"""CREATE TRIGGER audit_records_no_{verb.lower()} BEFORE {verb} ON audit_records
    BEGIN SELECT RAISE(ABORT, '{_REFUSAL}: {verb} refused'); END"""
    for verb in ("UPDATE", "DELETE")
]

_POSTGRES_TRIGGERS = [
    f"""CREATE FUNCTION tenantops_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '{_REFUSAL}: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
    END $$""",
    """CREATE TRIGGER audit_records_append_only BEFORE UPDATE OR DELETE ON audit_records
    FOR EACH ROW EXECUTE FUNCTION tenantops_audit_append_only()""",
    """CREATE TRIGGER audit_records_no_truncate BEFORE TRUNCATE ON audit_records
    FOR EACH STATEMENT EXECUTE FUNCTION tenantops_audit_append_only()""",
]


def upgrade() -> None:
    op.add_column("runs", sa.Column("trace_context", sa.String(55), nullable=True))
    op.create_table(
        "audit_records",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  primary_key=True, autoincrement=True),
        sa.Column("recorded_at", UtcDateTime(), nullable=False),
        sa.Column("request_id", sa.String(32), nullable=False),
        sa.Column("trace_id", sa.String(32), nullable=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("route", sa.String(200), nullable=False),
        sa.Column("tenant", sa.String(64), nullable=True),
        sa.Column("run_id", sa.String(32), nullable=True),
        sa.Column("principal_name", sa.String(256), nullable=True),
        sa.Column("principal_oid", sa.String(64), nullable=True),
        sa.Column("principal_appid", sa.String(64), nullable=True),
        sa.Column("client_ip", sa.String(64), nullable=True),
        sa.Column("forwarded_for", sa.String(256), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(64), nullable=True),
    )
    op.create_index("ix_audit_records_recorded_at", "audit_records", ["recorded_at"])
    op.create_index("ix_audit_records_tenant", "audit_records", ["tenant", "id"])
    op.create_index("ix_audit_records_principal_oid", "audit_records", ["principal_oid", "id"])
    dialect = op.get_bind().dialect.name
    for statement in _POSTGRES_TRIGGERS if dialect == "postgresql" else _SQLITE_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    op.drop_table("audit_records")  # its triggers go with it
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION tenantops_audit_append_only()")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("trace_context")
