"""Who may call, once a token is known to be genuine: Easy Auth's built-in authorization policy
(allowed applications, identities and tenants) plus the app roles each route needs.

Easy Auth does not check ``roles`` (shared reference §3); tenantops does, per route.

An allow-list that is not configured (``None``) admits everyone of the tenant. Easy Auth
documents only the non-empty case ("When this property is configured as a nonempty array, only
tokens obtained by an application specified in the list will be accepted"), and an empty list
has been seen to admit nobody (pnp/Microsoft365-Analytics-Insights#264); tenantops takes that,
the safe reading: a list configured empty admits nobody, and the 403 says so (docs/auth.md).
"""

from __future__ import annotations

import logging
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

log = logging.getLogger("tenantops.auth")


def _folded(values: tuple[str, ...] | None) -> frozenset[str] | None:
    return None if values is None else frozenset(v.strip().lower() for v in values if v.strip())


def _empty_note(setting: str, what: str) -> str:
    return (f" auth.{setting} is configured as an empty list, which admits no {what} (Easy "
            "Auth's documentation defines only non-empty lists; tenantops takes an empty one "
            f"to mean nobody). Remove the setting to admit every {what} of the tenant, or list "
            "the ones to admit")


class AccessPolicy:
    """Allow-lists combined with AND, as Easy Auth does: ``None`` (not configured) admits
    anyone of the tenant; a configured list admits only its members, so an empty one admits
    nobody (module docstring)."""

    def __init__(
        self,
        *,
        client_id: str,
        allowed_applications: Iterable[str] | None = None,
        allowed_identities: Iterable[str] | None = None,
        allowed_tenants: Iterable[str] | None = None,
    ) -> None:
        self.client_id = client_id
        self.allowed_applications = _tuple(allowed_applications)
        self.allowed_identities = _tuple(allowed_identities)
        self.allowed_tenants = _tuple(allowed_tenants)
        self._applications = _folded(self.allowed_applications)
        self._identities = _folded(self.allowed_identities)
        self._tenants = _folded(self.allowed_tenants)
        for setting, folded in (("allowed_applications", self._applications),
                                ("allowed_identities", self._identities),
                                ("allowed_tenants", self._tenants)):
            if folded is not None and not folded:
                log.warning("auth.%s is configured as an empty list: the API admits nobody "
                            "(remove the setting to admit everyone of the tenant)", setting)

    @classmethod
    def from_settings(cls, settings: AuthSettings) -> AccessPolicy:
        return cls(
            client_id=settings.client_id or "",
            allowed_applications=settings.allowed_applications,
            allowed_identities=settings.allowed_identities,
            allowed_tenants=settings.allowed_tenants,
        )

    def check(self, principal: Principal) -> None:
        """Raise an `AccessDeniedError` subclass unless every configured allow-list admits it."""
        if self._applications is not None and principal.appid.lower() not in self._applications:
            raise ApplicationNotAllowedError(
                f"the calling application (appid/azp {principal.appid}) is not in this API's "
                f"auth.allowed_applications {list(self.allowed_applications or ())}. For a "
                "managed identity that list holds its client ID, not its object ID; add "
                f"{principal.appid} to auth.allowed_applications "
                "(TENANTOPS_AUTH__ALLOWED_APPLICATIONS) if it should call this API."
                + (_empty_note("allowed_applications", "application")
                   if not self._applications else ""),
                expected={"appid": list(self.allowed_applications or ())},
                received={"appid": principal.appid})
        if self._identities is not None and principal.oid.lower() not in self._identities:
            raise IdentityNotAllowedError(
                f"the caller (object ID oid {principal.oid}) is not in this API's "
                f"auth.allowed_identities {list(self.allowed_identities or ())}. For a managed "
                "identity that list holds its principal (object) ID; add "
                f"{principal.oid} to auth.allowed_identities "
                "(TENANTOPS_AUTH__ALLOWED_IDENTITIES) if it should call this API."
                + (_empty_note("allowed_identities", "identity")
                   if not self._identities else ""),
                expected={"oid": list(self.allowed_identities or ())},
                received={"oid": principal.oid})
        if self._tenants is not None and principal.tid.lower() not in self._tenants:
            raise TenantNotAllowedError(
                f"the caller's tenant {principal.tid} is not in this API's auth.allowed_tenants "
                f"{list(self.allowed_tenants or ())}; add it (TENANTOPS_AUTH__ALLOWED_TENANTS) "
                "if callers from that tenant should be admitted."
                + (_empty_note("allowed_tenants", "tenant") if not self._tenants else ""),
                expected={"tid": list(self.allowed_tenants or ())},
                received={"tid": principal.tid})

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
            f"appRoleId=<ID of the role {role}> (az rest -m POST -u <that URL> -b <that JSON>), "
            "or in PowerShell New-MgServicePrincipalAppRoleAssignment -ServicePrincipalId "
            f"{principal.oid} -PrincipalId {principal.oid} -ResourceId <object ID of the "
            f"service principal of {self.client_id}> -AppRoleId <ID of the role {role}>; then "
            "get a new token; managed-identity tokens can take up to 24 h to show a new role",
            expected={"role": role}, received={"roles": list(principal.roles)})


def _tuple(values: Iterable[str] | None) -> tuple[str, ...] | None:
    return None if values is None else tuple(values)
