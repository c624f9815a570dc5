"""The tenant catalog: tenants, their runs and steps, and local organizations.

SQLAlchemy 2 models, a repository (`Catalog`) that hands out frozen records, and Alembic
migrations. SQLite by default (``<data_dir>/catalog.sqlite``); PostgreSQL when
``catalog.url`` says so.
"""

from __future__ import annotations

from tenantops.catalog.organizations import (
    DomainTakenError,
    Invitation,
    Member,
    Organization,
    OrganizationStore,
)
from tenantops.catalog.repository import (
    Catalog,
    OpenedRun,
    Run,
    RunKind,
    RunStatus,
    Step,
    StepStatus,
    StepTemplate,
    Tenant,
    TenantFields,
    TenantStatus,
    Worker,
    catalog_url,
)

__all__ = [
    "Catalog",
    "DomainTakenError",
    "Invitation",
    "Member",
    "OpenedRun",
    "Organization",
    "OrganizationStore",
    "Run",
    "RunKind",
    "RunStatus",
    "Step",
    "StepStatus",
    "StepTemplate",
    "Tenant",
    "TenantFields",
    "TenantStatus",
    "Worker",
    "catalog_url",
]
