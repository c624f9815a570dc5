"""How a refusal is told to the caller: the ``WWW-Authenticate`` challenge and the JSON body.

The challenge follows RFC 6750 and adds Entra's ``resource_id`` and ``authorization_uri``, so a
client can find the audience to request without reading documentation::

    Bearer realm="tenantops", error="invalid_token", error_description="...",
        resource_id="<client id>", authorization_uri="<authority>/<tid>/oauth2/authorize"

A request without credentials gets no ``error`` (RFC 6750 §3.1). tenantops' own client
(`tenantops.identity`) parses exactly this format; change both together.
"""

from __future__ import annotations

from typing import Any

from tenantops.auth._safe_text import header_safe
from tenantops.errors import AuthError, MissingTokenError, SigningKeysUnavailableError

__all__ = ["REALM", "error_body", "www_authenticate"]

REALM = "tenantops"


def www_authenticate(
    error: AuthError | None, *, client_id: str, authority: str, tenant_id: str
) -> str:
    """The ``WWW-Authenticate`` value for ``error`` (``None``: a plain challenge)."""
    parts = [f'realm="{REALM}"']
    if error is not None and error.error_code is not None:
        parts.append(f'error="{error.error_code}"')
        parts.append(f'error_description="{header_safe(str(error))}"')
    parts.append(f'resource_id="{header_safe(client_id)}"')
    uri = f"{authority.rstrip('/')}/{tenant_id}/oauth2/authorize"
    parts.append(f'authorization_uri="{header_safe(uri)}"')
    return "Bearer " + ", ".join(parts)


def error_body(error: AuthError) -> dict[str, Any]:
    """``{"error", "error_description", "expected", "received"}``; never the token."""
    if isinstance(error, MissingTokenError):
        code = "missing_token"
    elif isinstance(error, SigningKeysUnavailableError):
        code = "temporarily_unavailable"
    else:
        code = error.error_code or "invalid_token"
    return {
        "error": code,
        "error_description": header_safe(str(error)),
        "expected": error.expected,
        "received": error.received,
    }
