"""Fake of ``Microsoft.Authorization/permissions`` (api-version 2022-04-01): what the caller
may do at a scope, as ARM computes it from the caller's role assignments.

``GET {scope}/providers/Microsoft.Authorization/permissions`` answers
``{"value": [{"actions", "notActions", "dataActions", "notDataActions"}]}``, one entry per
role assignment that applies at the scope (inherited from resource group and subscription
included). Tests grant with `grant`, naming the built-in role's actions.
"""

from __future__ import annotations

import re
from typing import Any

from tests.azure_fake._transport import FakeClock, FakeResponse, FakeTransport, Incoming

__all__ = ["ROLE_ACTIONS", "FakeAuthorization"]

API_VERSION = "2022-04-01"

ROLE_ACTIONS: dict[str, list[str]] = {
    "Reader": ["*/read"],
    "Website Contributor": ["Microsoft.Web/sites/*", "Microsoft.Web/certificates/*",
                            "Microsoft.Web/serverFarms/join/action",
                            "Microsoft.Web/serverFarms/read",
                            "Microsoft.Resources/subscriptions/resourceGroups/read"],
    "DNS Zone Contributor": ["Microsoft.Network/dnsZones/*",
                             "Microsoft.Resources/subscriptions/resourceGroups/read"],
    "SQL DB Contributor": ["Microsoft.Sql/servers/databases/*", "Microsoft.Sql/servers/read",
                           "Microsoft.Sql/servers/elasticPools/read"],
    "Contributor": ["*"],
}


class FakeAuthorization(FakeTransport):
    def __init__(self, *, clock: FakeClock | None = None) -> None:
        super().__init__(api_version=API_VERSION, clock=clock)
        self.assignments: list[tuple[str, list[str], list[str]]] = []
        self.route("GET", r"(?P<scope>/subscriptions/.+?)/providers/Microsoft\.Authorization/"
                   r"permissions", self._permissions)

    def grant(self, scope: str, role: str, not_actions: list[str] | None = None) -> None:
        """Assign ``role`` (a key of `ROLE_ACTIONS`) at ``scope``; it applies below it too."""
        self.assignments.append((scope.lower().rstrip("/"), ROLE_ACTIONS[role],
                                 list(not_actions or [])))

    def _permissions(self, _request: Incoming, match: re.Match[str]) -> FakeResponse:
        scope = match["scope"].lower().rstrip("/")
        scope = re.sub(r"/resourcegroups/", "/resourcegroups/", scope)
        value: list[dict[str, Any]] = [
            {"actions": list(actions), "notActions": list(not_actions), "dataActions": [],
             "notDataActions": []}
            for assigned, actions, not_actions in self.assignments
            if scope == assigned or scope.startswith(assigned + "/")
        ]
        return FakeResponse(200, {"value": value})
