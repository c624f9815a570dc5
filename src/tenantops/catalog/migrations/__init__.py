"""Alembic migrations of the catalog; applied by `tenantops.catalog.Catalog.migrate`."""
