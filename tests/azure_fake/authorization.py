"""Role assignments, as ARM and Key Vault enforce them, and ``Microsoft.Authorization/
permissions`` (api-version 2022-04-01), as the preflight reads them.

- `FakeAuthorization.grant` assigns a built-in role (`ROLES`, their ``actions`` and
  ``dataActions`` as the built-in role definitions list them) to a principal at a scope; it
  applies at the scope and below.
- `FakeAuthorization.check` is the fakes' `PermissionCheck`: the operation's action (from the
  one table, ``tenantops.provisioning.providers.azure.permissions``) must be in some
  assignment's ``actions`` (``dataActions`` for Key Vault) of the caller at or above the
  resource, and not in that assignment's ``notActions``. Otherwise:

  - ARM answers 403 ``AuthorizationFailed`` "The client '<oid>' with object id '<oid>' does
    not have authorization to perform action '<action>' over scope '<scope>' or the scope is
    invalid. If access was recently granted, please refresh your credentials."
    (microsoft/vscode-azurefunctions#2343, CyberDrain/CIPP#314);
  - Key Vault answers 403 ``Forbidden`` with inner error ``ForbiddenByRbac`` and "Caller is not
    authorized to perform action on resource. ... Action: '<action>' ... Assignment: (not
    found) ... DecisionReason: 'DeniedWithNoValidRBAC'" (piyushsachdeva/Terraform_AKS#2).

- ``GET {scope}/providers/Microsoft.Authorization/permissions`` answers ``{"value": [{"actions",
  "notActions", "dataActions", "notDataActions"}]}``, one entry per role assignment of the
  caller that applies at the scope.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tenantops.provisioning.providers.azure.permissions import AzureOperation
from tests.azure_fake._transport import (
    FakeClock,
    FakeResponse,
    FakeTransport,
    Incoming,
    arm_error,
)
from tests.azure_fake.tokens import PRINCIPAL

__all__ = ["ROLES", "ROLE_ACTIONS", "FakeAuthorization"]

API_VERSION = "2022-04-01"

ROLES: dict[str, tuple[list[str], list[str]]] = {
    "Reader": (["*/read"], []),
    "Website Contributor": (["Microsoft.Authorization/*/read", "Microsoft.Web/sites/*",
                             "Microsoft.Web/certificates/*",
                             "Microsoft.Web/serverFarms/join/action",
                             "Microsoft.Web/serverFarms/read",
                             "Microsoft.Resources/subscriptions/resourceGroups/read"], []),
    "DNS Zone Contributor": (["Microsoft.Authorization/*/read", "Microsoft.Network/dnsZones/*",
                              "Microsoft.Resources/subscriptions/resourceGroups/read"], []),
    "SQL DB Contributor": (["Microsoft.Authorization/*/read",
                            "Microsoft.Sql/servers/databases/*", "Microsoft.Sql/servers/read",
                            "Microsoft.Sql/servers/elasticPools/read"], []),
    "Contributor": (["*"], []),
    "Key Vault Secrets Officer": (["Microsoft.Authorization/*/read"],
                                  ["Microsoft.KeyVault/vaults/secrets/*"]),
    "Key Vault Secrets User": ([], ["Microsoft.KeyVault/vaults/secrets/getSecret/action",
                                    "Microsoft.KeyVault/vaults/secrets/readMetadata/action"]),
}
ROLE_ACTIONS: dict[str, list[str]] = {name: actions for name, (actions, _) in ROLES.items()}


@dataclass(frozen=True)
class _Assignment:
    principal: str
    scope: str
    actions: tuple[str, ...]
    not_actions: tuple[str, ...]
    data_actions: tuple[str, ...]


def _allows(patterns: tuple[str, ...], action: str) -> bool:
    return any(fnmatch.fnmatchcase(action.lower(), p.lower()) for p in patterns)


class FakeAuthorization(FakeTransport):
    def __init__(self, *, clock: FakeClock | None = None) -> None:
        super().__init__(api_version=API_VERSION, clock=clock)
        self.assignments: list[_Assignment] = []
        self.route("GET", r"(?P<scope>/subscriptions/.+?)/providers/Microsoft\.Authorization/"
                   r"permissions", self._permissions)

    def grant(self, scope: str, role: str, not_actions: list[str] | None = None, *,
              principal: str = PRINCIPAL) -> None:
        """Assign ``role`` (a key of `ROLES`) to ``principal`` at ``scope`` (and below)."""
        actions, data_actions = ROLES[role]
        self.assignments.append(_Assignment(principal.lower(), scope.lower().rstrip("/"),
                                            tuple(actions), tuple(not_actions or []),
                                            tuple(data_actions)))

    def revoke(self, principal: str = PRINCIPAL) -> None:
        self.assignments = [a for a in self.assignments if a.principal != principal.lower()]

    def applying(self, principal: str, scope: str) -> list[_Assignment]:
        scope = scope.lower().rstrip("/")
        return [a for a in self.assignments if a.principal == principal.lower() and
                (scope == a.scope or scope.startswith(a.scope + "/"))]

    def allowed(self, principal: str, scope: str, action: str, *, data: bool = False) -> bool:
        return any((_allows(a.data_actions, action) if data else _allows(a.actions, action))
                   and not _allows(a.not_actions, action)
                   for a in self.applying(principal, scope))

    def check(self, fake: FakeTransport, request: Incoming, operation: AzureOperation,
              claims: Mapping[str, Any]) -> FakeResponse | None:
        principal = str(claims.get("oid") or "")
        scope = fake.resource_scope(request.path)
        action = operation.action_for(request.path)
        if self.allowed(principal, scope, action, data=operation.data):
            return None
        if operation.data:
            vault = fake.host.split(".")[0]
            message = (
                "Caller is not authorized to perform action on resource.\r\nIf role "
                "assignments, deny assignments or role definitions were changed recently, "
                f"please observe propagation time.\r\nCaller: appid={claims.get('appid')};"
                f"oid={principal};iss={claims.get('iss')}\r\nAction: '{action}'\r\n"
                f"Resource: '{scope.lower()}'\r\nAssignment: (not found)\r\n"
                "DenyAssignmentId: null\r\nDecisionReason: 'DeniedWithNoValidRBAC' \r\n"
                f"Vault: {vault};location=westeurope\r\n")
            return FakeResponse(403, {"error": {"code": "Forbidden", "message": message,
                                                "innererror": {"code": "ForbiddenByRbac"}}})
        return arm_error(
            403, "AuthorizationFailed",
            f"The client '{principal}' with object id '{principal}' does not have "
            f"authorization to perform action '{action}' over scope '{scope}' or the scope is "
            "invalid. If access was recently granted, please refresh your credentials.")

    def _permissions(self, request: Incoming, match: re.Match[str]) -> FakeResponse:
        value: list[dict[str, Any]] = [
            {"actions": list(a.actions), "notActions": list(a.not_actions),
             "dataActions": list(a.data_actions), "notDataActions": []}
            for a in self.applying(request.principal or "", match["scope"])
        ]
        return FakeResponse(200, {"value": value})
