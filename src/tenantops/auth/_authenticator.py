"""From a request's headers to a `Principal`: the one entry point the API calls.

Precedence, decided here and nowhere else:

1. an ``Authorization`` header is always validated as a bearer token, and its principal wins,
   even when ``X-MS-CLIENT-PRINCIPAL`` is present too;
2. otherwise, only when ``auth.trust_easy_auth_principal`` is on, ``X-MS-CLIENT-PRINCIPAL``;
3. otherwise `MissingTokenError`.

The allow-lists of `AccessPolicy` then apply to the principal, whatever its source.

Trusting ``X-MS-CLIENT-PRINCIPAL`` is safe only behind App Service Authentication, which
strips the copies clients send. App Service sets ``WEBSITE_AUTH_ENABLED=True`` when it is on;
without it an `Authenticator` with ``trust_easy_auth_principal`` refuses to be built
(`ConfigError`) unless ``auth.trust_easy_auth_principal_outside_app_service`` forces it, and
then it logs a warning every time it is built.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence

from tenantops import telemetry
from tenantops.auth._easy_auth import CLIENT_PRINCIPAL_HEADER, principal_from_easy_auth
from tenantops.auth._policy import AccessPolicy
from tenantops.auth._principal import Principal
from tenantops.auth._safe_text import header_safe, shown
from tenantops.auth._validator import MAX_TOKEN_BYTES, TokenValidator, request_hint
from tenantops.config import AuthSettings
from tenantops.errors import (
    AuthError,
    ConfigError,
    MalformedTokenError,
    MissingTokenError,
    TokenTooLargeError,
)

__all__ = ["Authenticator", "app_service_authentication_enabled", "bearer_token"]

log = logging.getLogger("tenantops.auth")

_WHITESPACE = re.compile(r"\s")  # in C: a per-character Python loop cost 50 µs per request


def bearer_token(authorization: str) -> str:
    """The token of an ``Authorization: Bearer <token>`` value (scheme case-insensitive)."""
    if len(authorization) > MAX_TOKEN_BYTES + 64:
        raise TokenTooLargeError(
            f"the Authorization header is {len(authorization)} bytes; tokens over "
            f"{MAX_TOKEN_BYTES} bytes are refused unread. Send 'Bearer <access token>'",
            expected={"max_bytes": MAX_TOKEN_BYTES}, received={"bytes": len(authorization)})
    scheme, _, rest = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        shown_scheme = shown(scheme[:32]) if scheme else "(empty)"
        raise MalformedTokenError(
            f"the Authorization header uses the scheme {shown_scheme!r}; this API expects "
            "'Authorization: Bearer <access token>'",
            expected={"scheme": "Bearer"}, received={"scheme": shown_scheme})
    token = rest.strip()
    if not token:
        raise MalformedTokenError(
            "the Authorization header says Bearer but carries no token; send "
            "'Authorization: Bearer <access token>'",
            expected={"credentials": "Bearer <access token>"}, received={"token": "(empty)"})
    if _WHITESPACE.search(token):
        raise MalformedTokenError(
            "the Authorization header carries several values after Bearer; send exactly one "
            "access token",
            expected={"credentials": "Bearer <access token>"},
            received={"values": len(token.split())})
    return token


def app_service_authentication_enabled(environ: Mapping[str, str]) -> bool:
    """Whether App Service Authentication runs in front of this process: App Service sets
    ``WEBSITE_AUTH_ENABLED`` to ``True`` when it is enabled."""
    return environ.get("WEBSITE_AUTH_ENABLED", "").strip().lower() in ("true", "1")


def _check_easy_auth_trust(settings: AuthSettings, environ: Mapping[str, str]) -> None:
    if not settings.trust_easy_auth_principal or app_service_authentication_enabled(environ):
        return
    if not settings.trust_easy_auth_principal_outside_app_service:
        raise ConfigError(
            "auth.trust_easy_auth_principal is true, but WEBSITE_AUTH_ENABLED is not set, so "
            "App Service Authentication is not in front of this API: any caller could send an "
            "X-MS-CLIENT-PRINCIPAL header naming any identity and any role, and it would be "
            "believed. Next: set auth.trust_easy_auth_principal = false "
            "(TENANTOPS_AUTH__TRUST_EASY_AUTH_PRINCIPAL), or enable App Service Authentication; "
            "to start anyway (a proxy of your own strips the header), also set "
            "auth.trust_easy_auth_principal_outside_app_service = true")
    log.warning(
        "auth.trust_easy_auth_principal is forced on outside App Service Authentication "
        "(WEBSITE_AUTH_ENABLED is not set; auth.trust_easy_auth_principal_outside_app_service "
        "= true): X-MS-CLIENT-PRINCIPAL is believed as sent, so whatever sits in front of this "
        "API must remove the copies clients send")


class Authenticator:
    """Turns request headers into a checked `Principal` (module docstring).

    Constructing it does no I/O; it reads ``environ`` (default: the process environment) to
    know whether App Service Authentication is in front, and raises `ConfigError` when the
    Easy Auth header would be trusted without it.
    """

    def __init__(
        self,
        settings: AuthSettings,
        *,
        validator: TokenValidator | None = None,
        policy: AccessPolicy | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        _check_easy_auth_trust(settings, os.environ if environ is None else environ)
        self.validator = validator if validator is not None else TokenValidator(settings)
        self.policy = policy if policy is not None else AccessPolicy.from_settings(settings)
        self.trust_easy_auth = settings.trust_easy_auth_principal
        self.client_id = self.validator.client_id
        self.tenant_id = self.validator.tenant_id
        self.authority = self.validator.authority

    def authenticate(
        self, authorization: Sequence[str], client_principal: Sequence[str] = ()
    ) -> Principal:
        """The caller, from every ``Authorization`` and ``X-MS-CLIENT-PRINCIPAL`` value sent."""
        try:
            principal = self._principal(authorization, client_principal)
            self.policy.check(principal)
        except AuthError as exc:
            log.info("request refused (%s %s): %s", exc.status_code, type(exc).__name__,
                     header_safe(str(exc)))
            telemetry.token_refused(exc, exc.status_code)
            raise
        return principal

    def remembered(self, authorization: Sequence[str]) -> Principal | None:
        """The caller when its one bearer token passed `authenticate` before (the validator
        remembers it) and still passes every check that can change: the token's time window,
        its key still published, the allow-lists. No I/O and no signature check, so the request
        edge calls it on the event loop; None (never a refusal) means "call `authenticate`",
        which gives the refusal with its message and log line."""
        if len(authorization) != 1:
            return None
        try:
            principal = self.validator.remembered(bearer_token(authorization[0]))
            if principal is not None:
                self.policy.check(principal)
        except AuthError:
            return None
        return principal

    def require_role(self, principal: Principal, role: str, *, operation: str = "") -> None:
        try:
            self.policy.require_role(principal, role, operation=operation)
        except AuthError as exc:
            log.info("request refused (403 %s): %s", type(exc).__name__, header_safe(str(exc)))
            telemetry.token_refused(exc, exc.status_code)
            raise

    def _principal(
        self, authorization: Sequence[str], client_principal: Sequence[str]
    ) -> Principal:
        if len(authorization) > 1:
            raise MalformedTokenError(
                f"the request has {len(authorization)} Authorization headers; send exactly one "
                "'Authorization: Bearer <access token>'",
                expected={"authorization_headers": 1},
                received={"authorization_headers": len(authorization)})
        if authorization:
            return self.validator.validate(bearer_token(authorization[0]))
        if self.trust_easy_auth and client_principal:
            if len(client_principal) > 1:
                raise MalformedTokenError(
                    f"the request has {len(client_principal)} {CLIENT_PRINCIPAL_HEADER} headers; "
                    "App Service Authentication sends one",
                    expected={"client_principal_headers": 1},
                    received={"client_principal_headers": len(client_principal)})
            return principal_from_easy_auth(
                client_principal[0], tenant_id=self.tenant_id,
                audiences=self.validator.audiences)
        raise MissingTokenError(
            f"the request carries no access token; send 'Authorization: Bearer <token>' with a "
            f"token for this API (audience {self.client_id} or api://{self.client_id}): "
            f"{request_hint(self.client_id)}",
            expected={"aud": list(self.validator.audiences), "tid": self.tenant_id},
            received={"authorization": "(none)"})
