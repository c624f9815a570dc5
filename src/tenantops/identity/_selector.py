"""Naming a user-assigned identity: by client ID, object (principal) ID or ARM resource ID.

A bare GUID is a client ID, as in azure-identity (``ManagedIdentityCredential(client_id=...)``,
``AZURE_CLIENT_ID``); an object ID must be marked ``object_id=<GUID>`` because the two look alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from tenantops.errors import ConfigError

__all__ = ["IdentitySelector", "parse_identity"]

SelectorKind = Literal["client_id", "object_id", "resource_id"]

_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
_ALIASES: dict[str, SelectorKind] = {
    "client_id": "client_id", "clientid": "client_id",
    "object_id": "object_id", "principal_id": "object_id",
    "resource_id": "resource_id", "mi_res_id": "resource_id", "msi_res_id": "resource_id",
}


@dataclass(frozen=True)
class IdentitySelector:
    """Which user-assigned identity to use, and where that choice came from (for messages)."""

    kind: SelectorKind
    value: str
    origin: str = "identity setting"

    def describe(self) -> str:
        return f"user-assigned identity {self.kind}={self.value} (from {self.origin})"


def parse_identity(value: str, origin: str = "identity setting") -> IdentitySelector:
    """``<GUID>`` | ``client_id=<GUID>`` | ``object_id=<GUID>`` | ``/subscriptions/...``.

    Raises `ConfigError` naming the value and the accepted forms.
    """
    text = value.strip()
    kind: SelectorKind
    if "=" in text and not text.startswith("/"):
        name, _, rest = text.partition("=")
        alias = _ALIASES.get(name.strip().lower())
        if alias is None:
            raise ConfigError(
                f"{origin} = {value!r}: unknown selector {name.strip()!r}; use client_id=, "
                "object_id= or resource_id=")
        kind, text = alias, rest.strip()
    elif text.lower().startswith("/subscriptions/"):
        kind = "resource_id"
    else:
        kind = "client_id"
    if kind == "resource_id":
        if not text.lower().startswith("/subscriptions/") or "/providers/" not in text.lower():
            raise ConfigError(
                f"{origin} = {value!r}: a resource ID looks like /subscriptions/<sub>/"
                "resourceGroups/<rg>/providers/Microsoft.ManagedIdentity/"
                "userAssignedIdentities/<name>")
        return IdentitySelector(kind, text, origin)
    if not _GUID.match(text):
        raise ConfigError(
            f"{origin} = {value!r} is not a user-assigned identity: give its client ID (a GUID), "
            "object_id=<GUID>, or its ARM resource ID (/subscriptions/.../"
            "userAssignedIdentities/<name>)")
    return IdentitySelector(kind, text.lower(), origin)
