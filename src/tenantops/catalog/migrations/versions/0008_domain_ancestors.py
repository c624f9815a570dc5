"""The parent domains of each tenant's custom domain, indexed: the onboarding's domain claim
looks up the tenants below a domain instead of reading every tenant (``LIKE '%.<domain>'``).

Revision ID: 0008
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "domain_ancestors",
        sa.Column("tenant_id", sa.String(32), sa.ForeignKey("tenants.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("ancestor", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "ancestor"),
    )
    op.create_index("ix_domain_ancestors_ancestor", "domain_ancestors", ["ancestor"])
    tenants = sa.table("tenants", sa.column("id", sa.String), sa.column("custom_domain",
                                                                          sa.String))
    ancestors = sa.table("domain_ancestors", sa.column("tenant_id", sa.String),
                         sa.column("ancestor", sa.String))
    connection = op.get_bind()
    rows = [{"tenant_id": tenant_id, "ancestor": ancestor}
            for tenant_id, domain in connection.execute(sa.select(tenants.c.id,
                                                                  tenants.c.custom_domain))
            for ancestor in _ancestors(domain)]
    if rows:
        connection.execute(sa.insert(ancestors), rows)


def downgrade() -> None:
    op.drop_index("ix_domain_ancestors_ancestor", table_name="domain_ancestors")
    op.drop_table("domain_ancestors")


def _ancestors(domain: str) -> list[str]:
    # A copy of tenantops.catalog.domain_claims.domain_ancestors as of this revision: a migration
    # must not change when the code does.
    domain = domain.lower().rstrip(".")
    return [domain.split(".", i)[-1] for i in range(1, domain.count(".") + 1)]
