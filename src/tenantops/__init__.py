"""tenantops: tenant onboarding for multi-tenant SaaS on Azure, the identity path done right."""

from __future__ import annotations

from tenantops.errors import TenantOpsError

__version__ = "0.1.0"

__all__ = ["TenantOpsError", "__version__"]
