"""Alembic environment: runs on the connection `Catalog.migrate` hands over (online only)."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from tenantops.catalog.models import Base

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError(
        "the catalog migrations run through tenantops.catalog.Catalog.migrate(), "
        "which passes the connection; the alembic command line is not wired up"
    )
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    transactional_ddl=True,
)
with context.begin_transaction():
    context.run_migrations()
