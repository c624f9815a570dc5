"""Tenants, runs, steps and local organizations.

Revision ID: 0001
Revises:
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tenantops.catalog.models import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_ACTIVE_RUN = sa.text("status IN ('pending', 'running')")
_LIVE_TENANT = sa.text("status <> 'offboarded'")


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("slug", sa.String(32), nullable=False),
        sa.Column("display_name", sa.String(100), nullable=False),
        sa.Column("custom_domain", sa.String(64), nullable=False),
        sa.Column("plan", sa.String(16), nullable=False),
        sa.Column("admin_email", sa.String(254), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("registered_at", UtcDateTime(), nullable=True),
        sa.Column("database_name", sa.String(128), nullable=True),
        sa.Column("database_login", sa.String(128), nullable=True),
        sa.Column("database_secret", sa.String(128), nullable=True),
        sa.Column("dns_records", sa.JSON(), nullable=False),
        sa.Column("hostname", sa.String(64), nullable=True),
        sa.Column("certificate_thumbprint", sa.String(64), nullable=True),
        sa.Column("certificate_expires_at", UtcDateTime(), nullable=True),
        sa.Column("organization_id", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_tenants"),
        sa.UniqueConstraint("slug", name="uq_tenants_slug"),
    )
    op.create_index(
        "uq_tenants_live_custom_domain", "tenants", ["custom_domain"], unique=True,
        sqlite_where=_LIVE_TENANT, postgresql_where=_LIVE_TENANT,
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("tenant_id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("requested_by", sa.String(256), nullable=False),
        sa.Column("workflow_id", sa.String(128), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=True),
        sa.Column("finished_at", UtcDateTime(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("failed_step", sa.String(64), nullable=True),
        sa.Column("retries", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name="fk_runs_tenant_id_tenants", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("workflow_id", name="uq_runs_workflow_id"),
    )
    op.create_index(
        "uq_runs_one_active_per_tenant", "runs", ["tenant_id"], unique=True,
        sqlite_where=_ACTIVE_RUN, postgresql_where=_ACTIVE_RUN,
    )
    op.create_index("ix_runs_tenant_created", "runs", ["tenant_id", "created_at"])
    op.create_table(
        "steps",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=True),
        sa.Column("finished_at", UtcDateTime(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("outputs", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_steps"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name="fk_steps_run_id_runs", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("run_id", "name", name="uq_steps_run_id"),
    )
    op.create_table(
        "organizations",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("alias", sa.String(64), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("redirect_url", sa.String(512), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_organizations"),
        sa.UniqueConstraint("alias", name="uq_organizations_alias"),
    )
    op.create_table(
        "organization_domains",
        sa.Column("domain", sa.String(255), nullable=False),
        sa.Column("organization_id", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("domain", name="pk_organization_domains"),
        sa.ForeignKeyConstraint(
            ["organization_id"], ["organizations.id"],
            name="fk_organization_domains_organization_id_organizations", ondelete="CASCADE",
        ),
    )
    op.create_table(
        "organization_members",
        sa.Column("organization_id", sa.String(32), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("organization_id", "email", name="pk_organization_members"),
        sa.ForeignKeyConstraint(
            ["organization_id"], ["organizations.id"],
            name="fk_organization_members_organization_id_organizations", ondelete="CASCADE",
        ),
    )
    op.create_table(
        "organization_invitations",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("organization_id", sa.String(32), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_organization_invitations"),
        sa.ForeignKeyConstraint(
            ["organization_id"], ["organizations.id"],
            name="fk_organization_invitations_organization_id_organizations",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "organization_id", "email", name="uq_organization_invitations_organization_id"
        ),
    )


def downgrade() -> None:
    for table in (
        "organization_invitations", "organization_members", "organization_domains",
        "organizations", "steps", "runs", "tenants",
    ):
        op.drop_table(table)
