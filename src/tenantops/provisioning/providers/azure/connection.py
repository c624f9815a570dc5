"""`AzureConnection`: how every Azure provider reaches Azure.

It holds the credential, the subscription, the ARM endpoint and, for tests, the azure-core
transport the SDK clients send through (the in-process ARM fake). Building one does no I/O.

The SDK's own retries are off by default (``retries=0``): the engine retries transient
failures durably with backoff, and a thread sleeping through a 429 storm's ``Retry-After``
inside the SDK would block a worker for minutes (docs/decisions.md, 2026-11-30).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from azure.core.credentials import TokenCredential
from azure.core.pipeline.transport import HttpTransport

from tenantops.config import AzureSettings, IdentitySettings
from tenantops.errors import ConfigError
from tenantops.provisioning.providers.azure.credential import ArmCredential

__all__ = ["AzureConnection"]


@dataclass
class AzureConnection:
    """Credential + subscription (+ transport) for the Azure SDK clients."""

    credential: TokenCredential
    subscription_id: str
    resource_group: str = ""
    arm_endpoint: str = "https://management.azure.com"
    transport: HttpTransport | None = field(default=None, repr=False)  # type: ignore[type-arg]
    retries: int = 0

    @classmethod
    def from_settings(cls, settings: AzureSettings) -> AzureConnection:
        """The connection ``[azure]`` describes; `ConfigError` when the subscription is
        missing."""
        if not settings.subscription_id:
            raise ConfigError(
                "azure.subscription_id is not set; set it in [azure] or "
                "TENANTOPS_AZURE__SUBSCRIPTION_ID to the subscription holding the tenants' "
                "resources")
        credential = ArmCredential(settings=IdentitySettings(
            source=settings.identity_source, identity=settings.identity))
        return cls(credential, settings.subscription_id, settings.resource_group or "",
                   settings.arm_endpoint.rstrip("/"), retries=settings.sdk_retries)

    def group(self, override: str | None, setting: str) -> str:
        """``override`` or the shared ``azure.resource_group``; `ConfigError` naming
        ``setting`` when neither is set."""
        group = override or self.resource_group
        if not group:
            raise ConfigError(
                f"{setting} is not set and neither is azure.resource_group; name the resource "
                "group that holds the resource")
        return group

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for any Azure SDK client constructor."""
        options: dict[str, Any] = {"retry_total": self.retries}
        if self.transport is not None:
            options["transport"] = self.transport
        return options

    def arm_options(self) -> dict[str, Any]:
        """`client_options` plus the ARM endpoint, for azure-mgmt-* clients."""
        return {**self.client_options(), "base_url": self.arm_endpoint}
