"""The catalog as a provider: the plan's first and last steps register the tenant's
configuration record and activate it (offboarding: deactivate, then deregister); after a
domain change, the grace period of the names the tenant retires, and their release; where
each copy of the tenant's data is placed (`DatabasePlacement`), the switch of a move to its
new copy (`PlacementSwitch`), the grace period of the old copy (`CopyRetirement`) and the
record of a copy removed (`PlacementRecord`)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

from tenantops.catalog import Catalog, CopyState, Placement, ServerSlot
from tenantops.errors import CatalogError, TenantNotFoundError, TransientProviderError
from tenantops.provisioning.providers.base import Outcome, Pending, Provider, Ready, Resource

__all__ = [
    "CatalogProvider",
    "CopyRetirement",
    "DatabasePlacement",
    "DomainRetirement",
    "PlacementProfile",
    "PlacementRecord",
    "PlacementSwitch",
    "TenantActivation",
    "TenantRegistration",
]

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


@dataclass(frozen=True)
class DatabasePlacement(Resource):
    """A copy of tenant ``slug``'s data (``state``: its current one, or a move's target) is
    placed on a server of ``servers`` (``named``: that one), and recorded; ``ensure`` again
    returns the same server. Outputs: where (``server``, ``mode``, ``database``,
    ``schema``, ``details``)."""

    slug: str
    state: str
    run_id: str
    pool: str
    mode: str
    database: str
    schema: str | None
    servers: tuple[ServerSlot, ...]
    named: str | None = None
    elastic_pool: str | None = None
    sku: str | None = None

    @property
    def key(self) -> str:
        return f"placement:{self.slug}:{self.state}"


@dataclass(frozen=True)
class PlacementSwitch(Resource):
    """Tenant ``slug`` is served from the copy run ``run_id`` made (its current copy becomes
    retiring)."""

    slug: str
    run_id: str

    @property
    def key(self) -> str:
        return f"placement:{self.slug}:switch"


@dataclass(frozen=True)
class CopyRetirement(Resource):
    """The copies run ``run_id`` retired are kept ``grace_seconds`` from when ``ensure`` is
    first called (`Pending` until then)."""

    slug: str
    run_id: str
    grace_seconds: float

    @property
    def key(self) -> str:
        return f"placement:{self.slug}:retiring"


@dataclass(frozen=True)
class PlacementProfile(Resource):
    """The copy tenant ``slug`` is served from has the database profile ``elastic_pool`` /
    ``sku`` (what a plan change converged in place, on Azure SQL) in its record."""

    slug: str
    elastic_pool: str | None = None
    sku: str | None = None

    @property
    def key(self) -> str:
        return f"placement:{self.slug}:profile"

    def details(self) -> dict[str, Any]:
        return {k: v for k, v in (("elastic_pool", self.elastic_pool), ("sku", self.sku))
                if v is not None}


@dataclass(frozen=True)
class PlacementRecord(Resource):
    """The record of a copy of ``slug``'s data at ``server``/``database``/``schema``
    (``remove``: forgotten, once its data is gone; ``states``: which records may go)."""

    slug: str
    server: str
    database: str
    schema: str | None
    states: tuple[str, ...] = ("retiring", "target")

    @property
    def key(self) -> str:
        where = self.database if self.schema is None else f"{self.database}.{self.schema}"
        return f"placement:{self.slug}:{self.server}/{where}"


_COPY_STATES: tuple[CopyState, ...] = ("current", "target", "retiring")


def _where(placement: Placement) -> dict[str, Any]:
    return {**placement.options(), "state": placement.state}


class CatalogProvider(Provider):
    kind = "catalog"
    name = "sql"
    resource_types = (TenantRegistration, TenantActivation, DomainRetirement,
                      DatabasePlacement, PlacementSwitch, CopyRetirement, PlacementRecord,
                      PlacementProfile)

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
        if isinstance(resource, DatabasePlacement):
            state: Literal["current", "target"] = (
                "target" if resource.state == "target" else "current")
            details = {k: v for k, v in (("elastic_pool", resource.elastic_pool),
                                         ("sku", resource.sku)) if v is not None}
            # A step run again (its checkpoint lost in a crash) finds its own record: that is
            # "unchanged", or a crash test would count the placement made twice.
            recorded = any(p.state == state and p.run_id == resource.run_id
                           for p in self.catalog.placements_of(resource.slug))
            placed = self.catalog.placements.place(
                resource.slug, state=state, run_id=resource.run_id,
                candidates=resource.servers, pool=resource.pool,
                mode="schema" if resource.mode == "schema" else "database",
                database=resource.database, schema=resource.schema, details=details,
                named=resource.named)
            return Ready(_where(placed),
                         changed=placed.run_id == resource.run_id and not recorded)
        if isinstance(resource, PlacementSwitch):
            serving = self.catalog.placement_of(resource.slug)
            placed = self.catalog.placements.switch(resource.slug, resource.run_id)
            return Ready(_where(placed), changed=serving != placed)
        if isinstance(resource, CopyRetirement):
            ends = self.catalog.placements.start_grace(resource.slug, resource.run_id,
                                                       resource.grace_seconds)
            left = (ends - dt.datetime.now(dt.timezone.utc)).total_seconds()
            if left > 0:
                return Pending(
                    f"the old copy of the tenant's data is kept until {ends.isoformat()} "
                    "(the move's grace period); then it is removed", left,
                    timeout_seconds=resource.grace_seconds + _GRACE_SLACK_SECONDS)
            return Ready({"retired_at": ends.isoformat()}, changed=False)
        if isinstance(resource, PlacementRecord):
            return Ready({}, changed=False)
        if isinstance(resource, PlacementProfile):
            changed = self.catalog.placements.set_details(resource.slug, resource.details())
            return Ready({"details": resource.details()}, changed=changed)
        if isinstance(resource, TenantRegistration):
            before = self.catalog.get_tenant(resource.slug)
            tenant = self.catalog.register_tenant(resource.slug)
            return Ready({"tenant_id": tenant.id}, changed=before.registered_at is None)
        if not isinstance(resource, TenantActivation):
            raise TransientProviderError(f"not a catalog resource: {resource.key}")
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
        if isinstance(resource, PlacementRecord):
            released = self.catalog.placements.release(
                resource.slug, server=resource.server, database=resource.database,
                schema=resource.schema, states=[s for s in _COPY_STATES
                                                if s in resource.states])
            return Ready({"server": resource.server, "database": resource.database,
                          "schema": resource.schema}, changed=released)
        if isinstance(resource, (DatabasePlacement, PlacementSwitch, CopyRetirement,
                                 PlacementProfile)):
            return Ready({}, changed=False)
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
        if isinstance(resource, (DatabasePlacement, PlacementRecord)):
            copies = self.catalog.placements_of(resource.slug) if self.catalog.find_tenant(
                resource.slug) else []
            if isinstance(resource, DatabasePlacement):
                found = next((p for p in copies if p.state == resource.state), None)
            else:
                found = next((p for p in copies if (p.server, p.database, p.schema) == (
                    resource.server, resource.database, resource.schema)), None)
            return None if found is None else {"slug": resource.slug, **_where(found)}
        if isinstance(resource, (PlacementSwitch, CopyRetirement)):
            return None
        if isinstance(resource, PlacementProfile):
            current = self.catalog.placements.current(resource.slug) if \
                self.catalog.find_tenant(resource.slug) else None
            if current is None:
                return None
            # In the resource's terms, so a preview shows a plan change's new pool or SKU.
            return {"slug": resource.slug, "elastic_pool": current.details.get("elastic_pool"),
                    "sku": current.details.get("sku")}
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
