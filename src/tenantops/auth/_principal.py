"""Who is calling: the identity a request proved, from a bearer token or from Easy Auth."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = ["Principal", "PrincipalSource"]

PrincipalSource = Literal["bearer", "easy-auth"]


@dataclass(frozen=True)
class Principal:
    """The caller, as the checked token (or App Service Authentication) describes it.

    ``oid`` is the caller's object ID in the tenant (for a managed identity: its principal ID);
    ``appid`` the calling application's client ID (v1 ``appid`` or v2 ``azp``; for a managed
    identity: its client ID); ``token_version`` is ``"1.0"`` or ``"2.0"``.
    """

    oid: str
    appid: str
    tid: str
    roles: tuple[str, ...]
    token_version: str
    source: PrincipalSource
    name: str | None = None
    upn: str | None = None

    def has_role(self, role: str) -> bool:
        return role in self.roles

    def describe(self, application_names: Mapping[str, str] | None = None) -> str:
        """The caller as people read it (runs record it as who asked): a person's name and
        UPN; for an application or managed identity, its display name from
        ``application_names`` (client ID to name; ``auth.application_names``), else its app
        ID. At most 256 characters."""
        if self.upn or self.name:
            text = (f"{self.name} ({self.upn})" if self.name and self.upn and
                    self.name != self.upn else self.upn or self.name or "")
        else:
            names = {k.lower(): v for k, v in (application_names or {}).items()}
            named = names.get(self.appid.lower())
            text = f"{named} (app {self.appid})" if named else f"app {self.appid}"
        return text[:256]
