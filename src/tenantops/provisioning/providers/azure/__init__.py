"""What every Azure provider shares: the connection to Azure Resource Manager (credential,
subscription, transport), translation of Azure SDK errors into provider errors, and ARM
resource IDs.

The providers themselves live with their kind, as the local ones do:
``webhost/azure_app_service.py``, ``dns/azure_dns.py``, ``database/azure_sql.py``,
``database/azure_postgres.py`` and ``secrets/azure_key_vault.py``.
"""

from __future__ import annotations

from tenantops.provisioning.providers.azure.connection import AzureConnection
from tenantops.provisioning.providers.azure.credential import ArmCredential
from tenantops.provisioning.providers.azure.errors import (
    arm_error_parts,
    is_not_found,
    translate_azure_error,
)
from tenantops.provisioning.providers.azure.resource_ids import resource_id

__all__ = [
    "ArmCredential",
    "AzureConnection",
    "arm_error_parts",
    "is_not_found",
    "resource_id",
    "translate_azure_error",
]
