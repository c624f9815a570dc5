"""`ArmCredential`: the azure-core ``TokenCredential`` the Azure SDK clients are given.

It asks tenantops' own `IdentityCredential` (one identity source, no silent fallback to
another identity; docs/decisions.md) for a token for the scope the SDK wants
(``https://management.azure.com/.default`` for ARM, ``https://vault.azure.net/.default`` for
Key Vault), and hands it over as an ``AccessToken``. tenantops' identity errors keep their
type and message (they say which source was chosen and what to do); the providers translate
them into `PermanentProviderError`.
"""

from __future__ import annotations

from typing import Any

from azure.core.credentials import AccessToken

from tenantops.config import IdentitySettings
from tenantops.identity import IdentityCredential, TokenProvider, parse_audience

__all__ = ["ArmCredential"]


class ArmCredential:
    """A ``TokenCredential`` over a `TokenProvider` (an `IdentityCredential` by default).

    Construction does no I/O; the identity source is chosen on the first token request.
    """

    def __init__(self, provider: TokenProvider | None = None, *,
                 settings: IdentitySettings | None = None) -> None:
        self._provider: TokenProvider = provider or IdentityCredential(settings)

    def get_token(self, *scopes: str, claims: str | None = None, tenant_id: str | None = None,
                  enable_cae: bool = False, **kwargs: Any) -> AccessToken:
        if len(scopes) != 1:
            raise ValueError(f"ArmCredential takes exactly one scope, got {len(scopes)}")
        token = self._provider.get_token(parse_audience(scopes[0]))
        return AccessToken(token.value, token.expires_on)

    def close(self) -> None:
        closer = getattr(self._provider, "close", None)
        if callable(closer):
            closer()
