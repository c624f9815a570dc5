"""Who may call, once a token is known to be genuine: Easy Auth's built-in authorization policy
(allowed applications, identities and tenants) plus the app roles each route needs.

Easy Auth does not check ``roles`` (shared reference §3); tenantops does, per route.
"""

from __future__ import annotations

from collections.abc import Iterable

from tenantops.auth._principal import Principal
from tenantops.config import AuthSettings
from tenantops.errors import (
    ApplicationNotAllowedError,
    IdentityNotAllowedError,
    MissingRoleError,
    TenantNotAllowedError,
)

__all__ = ["AccessPolicy"]


def _folded(values: Iterable[str]) -> frozenset[str]:
    return frozenset(v.strip().lower() for v in values if v.strip())


class AccessPolicy:
    """Allow-lists (empty means "anyone in the tenant") combined with AND, as Easy Auth does."""

    def __init__(
        self,
        *,
        client_id: str,
        allowed_applications: Iterable[str] = (),
        allowed_identities: Iterable[str] = (),
        allowed_tenants: Iterable[str] = (),
    ) -> None:
        self.client_id = client_id
        self.allowed_applications = tuple(allowed_applications)
        self.allowed_identities = tuple(allowed_identities)
        self.allowed_tenants = tuple(allowed_tenants)
        self._applications = _folded(self.allowed_applications)
        self._identities = _folded(self.allowed_identities)
        self._tenants = _folded(self.allowed_tenants)

    @classmethod
    def from_settings(cls, settings: AuthSettings) -> AccessPolicy:
        return cls(
            client_id=settings.client_id or "",
            allowed_applications=settings.allowed_applications,
            allowed_identities=settings.allowed_identities,
            allowed_tenants=settings.allowed_tenants,
        )

    def check(self, principal: Principal) -> None:
        """Raise an `AccessDeniedError` subclass unless every non-empty allow-list admits it."""
        if self._applications and principal.appid.lower() not in self._applications:
            raise ApplicationNotAllowedError(
                f"the calling application (appid/azp {principal.appid}) is not in this API's "
                f"auth.allowed_applications {list(self.allowed_applications)}. For a managed "
                "identity that list holds its client ID, not its object ID; add "
                f"{principal.appid} to auth.allowed_applications "
                "(TENANTOPS_AUTH__ALLOWED_APPLICATIONS) if it should call this API",
                expected={"appid": list(self.allowed_applications)},
                received={"appid": principal.appid})
        if self._identities and principal.oid.lower() not in self._identities:
            raise IdentityNotAllowedError(
                f"the caller (object ID oid {principal.oid}) is not in this API's "
                f"auth.allowed_identities {list(self.allowed_identities)}. For a managed "
                "identity that list holds its principal (object) ID; add "
                f"{principal.oid} to auth.allowed_identities "
                "(TENANTOPS_AUTH__ALLOWED_IDENTITIES) if it should call this API",
                expected={"oid": list(self.allowed_identities)},
                received={"oid": principal.oid})
        if self._tenants and principal.tid.lower() not in self._tenants:
            raise TenantNotAllowedError(
                f"the caller's tenant {principal.tid} is not in this API's auth.allowed_tenants "
                f"{list(self.allowed_tenants)}; add it (TENANTOPS_AUTH__ALLOWED_TENANTS) if "
                "callers from that tenant should be admitted",
                expected={"tid": list(self.allowed_tenants)}, received={"tid": principal.tid})

    def require_role(self, principal: Principal, role: str, *, operation: str = "") -> None:
        """Raise `MissingRoleError` unless ``principal`` holds the app role ``role``."""
        if principal.has_role(role):
            return
        what = operation or "this operation"
        held = ", ".join(principal.roles) if principal.roles else "none"
        raise MissingRoleError(
            f"{what} needs the app role {role} of the API app {self.client_id}; the caller "
            f"(oid {principal.oid}, appid {principal.appid}) holds roles: {held}. Grant it with "
            f"an app role assignment: POST https://graph.microsoft.com/v1.0/servicePrincipals/"
            f"{principal.oid}/appRoleAssignments with principalId={principal.oid}, "
            f"resourceId=<object ID of the service principal of {self.client_id}>, "
            f"appRoleId=<ID of the role {role}> (or New-MgServicePrincipalAppRoleAssignment), "
            "then get a new token; managed-identity tokens can take up to 24 h to show a new "
            "role",
            expected={"role": role}, received={"roles": list(principal.roles)})
