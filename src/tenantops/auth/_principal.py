"""Who is calling: the identity a request proved, from a bearer token or from Easy Auth."""

from __future__ import annotations

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
