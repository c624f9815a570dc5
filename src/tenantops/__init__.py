"""tenantops: tenant onboarding for multi-tenant SaaS on Azure, the identity path done right."""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: importing typing costs 'tenantops --version' 5 ms
if TYPE_CHECKING:
    from tenantops.errors import TenantOpsError

__version__ = "0.1.0"

__all__ = ["TenantOpsError", "__version__"]


def __getattr__(name: str) -> object:
    # Imported on first use, so 'tenantops --version' loads nothing but this module.
    if name == "TenantOpsError":
        from tenantops.errors import TenantOpsError

        return TenantOpsError
    raise AttributeError(f"module 'tenantops' has no attribute {name!r}")
