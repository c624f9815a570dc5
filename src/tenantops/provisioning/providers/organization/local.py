"""``local`` organizations: kept in the catalog's own tables (no identity server needed)."""

from __future__ import annotations

from typing import Any

from tenantops.catalog import Catalog, DomainTakenError
from tenantops.errors import CatalogError, PermanentProviderError, TransientProviderError
from tenantops.provisioning.providers.base import Outcome, Ready, Resource
from tenantops.provisioning.providers.organization import (
    OrganizationInvitation,
    OrganizationProvider,
    TenantOrganization,
)

__all__ = ["LocalOrganizations"]


class LocalOrganizations(OrganizationProvider):
    name = "local"

    def __init__(self, catalog: Catalog) -> None:
        super().__init__()
        self.catalog = catalog

    def _ensure(self, resource: Resource) -> Outcome:
        try:
            return self._converge(resource)
        except DomainTakenError as exc:
            raise PermanentProviderError(str(exc)) from exc
        except CatalogError as exc:
            raise TransientProviderError(str(exc)) from exc

    def _remove(self, resource: Resource) -> Outcome:
        try:
            return self._withdraw(resource)
        except CatalogError as exc:
            raise TransientProviderError(str(exc)) from exc

    def _converge(self, resource: Resource) -> Outcome:
        store = self.catalog.organizations
        if isinstance(resource, OrganizationInvitation):
            if store.get(resource.alias) is None:
                raise PermanentProviderError(
                    f"organization {resource.alias!r} does not exist; create it before "
                    f"inviting {resource.email}"
                )
            invitation, created = store.invite(resource.alias, resource.email, resource.role)
            return Ready({"invitation_id": invitation.id, "email": invitation.email,
                          "status": invitation.status}, changed=created)
        assert isinstance(resource, TenantOrganization)
        organization, changed = store.ensure(
            alias=resource.alias, name=resource.name, redirect_url=resource.redirect_url,
            domains=resource.domains, enabled=resource.enabled,
            attributes=dict(resource.attributes),
        )
        return Ready({"organization_id": organization.id, "alias": organization.alias},
                     changed=changed)

    def _withdraw(self, resource: Resource) -> Outcome:
        store = self.catalog.organizations
        if isinstance(resource, OrganizationInvitation):
            return Ready({"email": resource.email},
                         changed=store.revoke(resource.alias, resource.email))
        assert isinstance(resource, TenantOrganization)
        return Ready({"alias": resource.alias}, changed=store.delete(resource.alias))

    def _observe(self, resource: Resource) -> dict[str, Any] | None:
        assert isinstance(resource, (TenantOrganization, OrganizationInvitation))
        organization = self.catalog.organizations.get(resource.alias)
        if organization is None:
            return None
        if isinstance(resource, OrganizationInvitation):
            for invitation in organization.invitations:
                if invitation.email == resource.email:
                    return {"alias": resource.alias, "email": invitation.email,
                            "role": invitation.role}
            for member in organization.members:
                if member.email == resource.email:
                    return {"alias": resource.alias, "email": member.email, "role": member.role,
                            "status": "member"}
            return None
        return {"alias": organization.alias, "name": organization.name,
                "domains": tuple(organization.domains), "redirect_url": organization.redirect_url,
                "enabled": organization.enabled, "managed": True,
                "attributes": tuple(sorted(organization.attributes.items()))}
