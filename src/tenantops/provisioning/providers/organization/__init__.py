"""Organization providers: the tenant's organization in the identity provider (Keycloak
organizations, or the catalog for ``local``): its domains, redirect URL and invitations."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from tenantops.provisioning.providers.base import Provider, Resource

__all__ = ["OrganizationInvitation", "OrganizationProvider", "TenantOrganization"]


@dataclass(frozen=True)
class TenantOrganization(Resource):
    """Organization ``alias`` named ``name`` owning ``domains``, redirecting to
    ``redirect_url`` after sign-in. ``enabled``: False while the tenant is suspended (no
    member can sign in through it; Keycloak's organization ``enabled`` flag).

    ``organization_id``: the organization recorded for the tenant, if any. A provider that
    marks its organizations (Keycloak's tenant attribute) takes over the organization with
    this ID and alias although it lacks the mark: one made before tenantops, adopted by
    ``tenantops import``. It says where the organization is, not what it should be, so it is
    not part of `desired`; ``managed`` is: the organization carries tenantops' mark.

    ``attributes``: what the tenant's plan gives it (``[plans.<name>.organization]``), as
    sorted (key, value) pairs; Keycloak keeps each as the organization attribute
    ``tenantops-plan-<key>``, and drops those of a previous plan."""

    alias: str
    name: str
    domains: tuple[str, ...]
    redirect_url: str
    enabled: bool = True
    organization_id: str | None = None
    attributes: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> str:
        return f"organization:{self.alias}"

    def desired(self) -> dict[str, Any]:
        wanted = dataclasses.asdict(self)
        del wanted["organization_id"]
        wanted["managed"] = True
        return wanted


@dataclass(frozen=True)
class OrganizationInvitation(Resource):
    """An invitation of ``email`` to organization ``alias`` with ``role``.

    ``remove``: the person is neither invited nor a member any more (a pending invitation is
    deleted, a membership ended), as when a previous administrator is removed."""

    alias: str
    email: str
    role: str = "admin"

    @property
    def key(self) -> str:
        return f"invitation:{self.alias}:{self.email}"


class OrganizationProvider(Provider):
    kind = "organization"
    resource_types = (TenantOrganization, OrganizationInvitation)
