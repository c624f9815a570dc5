"""The catalog as a provider: the plan's first and last steps register the tenant's
configuration record and activate it (offboarding: deactivate, then deregister); after a
domain change, the grace period of the names the tenant retires, and their release."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from tenantops.catalog import Catalog
from tenantops.errors import CatalogError, TenantNotFoundError, TransientProviderError
from tenantops.provisioning.providers.base import Outcome, Pending, Provider, Ready, Resource

__all__ = ["CatalogProvider", "DomainRetirement", "TenantActivation", "TenantRegistration"]

# A grace period is waited for durably; the window past its end covers a worker that was
# down when it ended.
_GRACE_SLACK_SECONDS = 86400.0


@dataclass(frozen=True)
class TenantRegistration(Resource):
    """The tenant's configuration record is registered (``remove``: deregistered; the row
    stays, with its runs, as history)."""

    slug: str

    @property
    def key(self) -> str:
        return f"tenant:{self.slug}"


@dataclass(frozen=True)
class TenantActivation(Resource):
    """The tenant is active and served (``remove``: it is being offboarded)."""

    slug: str

    @property
    def key(self) -> str:
        return f"activation:{self.slug}"


@dataclass(frozen=True)
class DomainRetirement(Resource):
    """The names tenant ``slug`` retires after a domain change keep serving for
    ``grace_seconds`` from when ``ensure`` is first called (`Pending` until then);
    ``remove``: the tenant no longer holds them (another tenant may claim them)."""

    slug: str
    domains: tuple[str, ...]
    grace_seconds: float

    @property
    def key(self) -> str:
        return f"retiring:{self.slug}:{','.join(self.domains)}"


class CatalogProvider(Provider):
    kind = "catalog"
    name = "sql"
    resource_types = (TenantRegistration, TenantActivation, DomainRetirement)

    def __init__(self, catalog: Catalog) -> None:
        super().__init__()
        self.catalog = catalog

    @property
    def label(self) -> str:
        return f"catalog:{self.catalog.dialect}"

    def _ensure(self, resource: Resource) -> Outcome:
        try:
            return self._converge(resource)
        except TenantNotFoundError:
            raise
        except CatalogError as exc:
            # The database is busy or unreachable: worth another try.
            raise TransientProviderError(str(exc)) from exc

    def _remove(self, resource: Resource) -> Outcome:
        try:
            return self._withdraw(resource)
        except TenantNotFoundError:
            raise
        except CatalogError as exc:
            raise TransientProviderError(str(exc)) from exc

    def _converge(self, resource: Resource) -> Outcome:
        if isinstance(resource, DomainRetirement):
            return self._grace(resource)
        if isinstance(resource, TenantRegistration):
            before = self.catalog.get_tenant(resource.slug)
            tenant = self.catalog.register_tenant(resource.slug)
            return Ready({"tenant_id": tenant.id}, changed=before.registered_at is None)
        assert isinstance(resource, TenantActivation)
        before = self.catalog.get_tenant(resource.slug)
        self.catalog.set_tenant_status(resource.slug, "active")
        return Ready({"status": "active"}, changed=before.status != "active")

    def _grace(self, resource: DomainRetirement) -> Outcome:
        ends = self.catalog.retiring_domains.start_grace(
            resource.slug, resource.domains, resource.grace_seconds)
        left = (ends - dt.datetime.now(dt.timezone.utc)).total_seconds()
        if left > 0:
            return Pending(
                f"{', '.join(resource.domains)} keep serving until {ends.isoformat()} (the "
                "grace period of the domain change); then they are removed", left,
                timeout_seconds=resource.grace_seconds + _GRACE_SLACK_SECONDS)
        return Ready({"domains": list(resource.domains), "retired_at": ends.isoformat()},
                     changed=False)

    def _withdraw(self, resource: Resource) -> Outcome:
        if isinstance(resource, DomainRetirement):
            released = self.catalog.retiring_domains.release(resource.slug, resource.domains)
            return Ready({"domains": list(resource.domains)}, changed=released)
        if isinstance(resource, TenantRegistration):
            tenant = self.catalog.get_tenant(resource.slug)
            self.catalog.update_tenant_outputs(resource.slug, {"registered_at": None})
            return Ready({"tenant_id": tenant.id}, changed=tenant.registered_at is not None)
        assert isinstance(resource, TenantActivation)
        before = self.catalog.get_tenant(resource.slug)
        if before.status in ("active", "failed"):
            self.catalog.set_tenant_status(resource.slug, "offboarding")
        return Ready({"status": "offboarding"}, changed=before.status != "offboarding")

    def _observe(self, resource: Resource) -> dict[str, Any] | None:
        if isinstance(resource, DomainRetirement):
            held = [r for r in self.catalog.retiring_domains.of(resource.slug)
                    if r.domain in resource.domains]
            if not held:
                return None
            return {"slug": resource.slug, "domains": tuple(r.domain for r in held),
                    "grace_seconds": resource.grace_seconds}
        assert isinstance(resource, (TenantRegistration, TenantActivation))
        tenant = self.catalog.find_tenant(resource.slug)
        if tenant is None:
            return None
        if isinstance(resource, TenantRegistration):
            return None if tenant.registered_at is None else {"slug": tenant.slug}
        return {"slug": tenant.slug} if tenant.status == "active" else None
