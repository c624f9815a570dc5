"""Server side of the identity path: is this request's token good for this API?

`Authenticator` turns request headers into a `Principal`, through `TokenValidator` (bearer
tokens, checked as App Service Authentication checks them, plus more), `JwksCache` (the
tenant's signing keys and issuers from OIDC discovery), the Easy Auth principal header when
trusted, and `AccessPolicy` (allowed applications, identities, tenants; app roles).
Refusals are `tenantops.errors.AuthError` subclasses; `www_authenticate` and `error_body` say
how the API words them.
"""

from __future__ import annotations

from tenantops.auth._audience import audience_matches
from tenantops.auth._authenticator import (
    Authenticator,
    app_service_authentication_enabled,
    bearer_token,
)
from tenantops.auth._challenge import REALM, error_body, www_authenticate
from tenantops.auth._easy_auth import (
    CLIENT_PRINCIPAL_HEADER,
    MAX_PRINCIPAL_HEADER_BYTES,
    principal_from_easy_auth,
)
from tenantops.auth._jwks import JwksCache, TenantIssuers
from tenantops.auth._policy import AccessPolicy
from tenantops.auth._principal import Principal, PrincipalSource
from tenantops.auth._safe_text import header_safe
from tenantops.auth._validator import (
    ALLOWED_ALGORITHMS,
    MAX_TOKEN_BYTES,
    TokenValidator,
    expected_audiences,
    request_hint,
)

__all__ = [
    "ALLOWED_ALGORITHMS",
    "CLIENT_PRINCIPAL_HEADER",
    "MAX_PRINCIPAL_HEADER_BYTES",
    "MAX_TOKEN_BYTES",
    "REALM",
    "AccessPolicy",
    "Authenticator",
    "JwksCache",
    "Principal",
    "PrincipalSource",
    "TenantIssuers",
    "TokenValidator",
    "app_service_authentication_enabled",
    "audience_matches",
    "bearer_token",
    "error_body",
    "expected_audiences",
    "header_safe",
    "principal_from_easy_auth",
    "request_hint",
    "www_authenticate",
]
