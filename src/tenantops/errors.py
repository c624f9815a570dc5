"""Every error tenantops raises on purpose derives from one root, `TenantOpsError`.

Messages answer three questions: what failed, with which values, and what to do next.
Third-party exceptions are translated at the boundary (``raise ... from exc``) so a caller
never has to catch a library's exception type.

    TenantOpsError
    ├── ConfigError                  a setting is missing or invalid; names the setting
    ├── EmulatorError                the local Entra ID / managed-identity emulator
    │   └── DirectoryError           the emulator's directory file is invalid
    ├── IdentityError                client side: getting a token (tenantops.identity)
    │   ├── AudienceError            the audience given cannot be turned into a resource/scope
    │   ├── AudienceDiscoveryError   the API did not say which audience it expects
    │   ├── CredentialUnavailableError   no identity source could even be tried
    │   ├── TokenRequestError        a source was tried and the identity platform refused
    │   └── CallRejectedError        the API answered 401/403; carries token vs expectation
    └── AuthError                    server side: checking a token (tenantops.auth)
        ├── InvalidTokenError        → HTTP 401, WWW-Authenticate error="invalid_token"
        └── AccessDeniedError        → HTTP 403, WWW-Authenticate error="insufficient_scope"
"""

from __future__ import annotations

__all__ = [
    "AccessDeniedError",
    "AudienceDiscoveryError",
    "AudienceError",
    "AuthError",
    "CallRejectedError",
    "ConfigError",
    "CredentialUnavailableError",
    "DirectoryError",
    "EmulatorError",
    "IdentityError",
    "InvalidTokenError",
    "TenantOpsError",
    "TokenRequestError",
]


class TenantOpsError(Exception):
    """Root of every error tenantops raises on purpose."""


class ConfigError(TenantOpsError):
    """A setting is missing or invalid. The message names the setting and where it came from."""


class EmulatorError(TenantOpsError):
    """The emulator cannot start or cannot do what was asked."""


class DirectoryError(EmulatorError):
    """The emulator's directory (TOML) is invalid; the message names the entry and field."""


class IdentityError(TenantOpsError):
    """Client side: a token for the API could not be obtained or was refused."""


class AudienceError(IdentityError):
    """The audience value cannot be used as a managed-identity resource or a /.default scope."""


class AudienceDiscoveryError(IdentityError):
    """The expected audience could not be discovered from the API or configuration."""


class CredentialUnavailableError(IdentityError):
    """No identity source could even be tried (nothing configured in this environment)."""


class TokenRequestError(IdentityError):
    """An identity source was tried and the identity platform refused to issue a token."""


class CallRejectedError(IdentityError):
    """The API rejected the call with 401 or 403."""


class AuthError(TenantOpsError):
    """Server side: a request's credentials were checked and refused."""

    status_code = 401
    error_code = "invalid_token"


class InvalidTokenError(AuthError):
    """The token is malformed, unsigned, badly signed, expired, or for someone else (401)."""


class AccessDeniedError(AuthError):
    """The token is valid but the caller is not allowed (403)."""

    status_code = 403
    error_code = "insufficient_scope"
