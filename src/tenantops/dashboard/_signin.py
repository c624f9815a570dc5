"""How people sign in to the dashboard: one class per hosting runtime behind `SignIn`.

`OidcSignIn` (the default, and the emulator locally): OpenID Connect authorization code flow
with PKCE (S256), ``state`` and ``nonce``, as the dashboard's confidential app registration.
The callback redeems the code at the token endpoint, checks the **access token** with the
API's own `Authenticator` (signature, issuer, audience = the API, tenant, allow-lists), so
the dashboard admits exactly whom the API would, and checks the **ID token** (signature with
the tenant's keys, issuer, audience = the dashboard, ``nonce``, same ``oid``). Neither token is
kept: the session holds the checked `Principal` and ends when the access token would expire.

`EasyAuthSignIn` (``auth.trust_easy_auth_principal``): App Service Authentication has signed
the person in; every request carries ``X-MS-CLIENT-PRINCIPAL``, checked by the same
`Authenticator`. Signing in and out are the platform's ``/.auth/login/aad`` and
``/.auth/logout``; the session cookie carries only the CSRF token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import ssl
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from tenantops.auth import CLIENT_PRINCIPAL_HEADER, Authenticator, Principal
from tenantops.dashboard._config import DashboardConfig
from tenantops.dashboard._errors import SignInError
from tenantops.dashboard._session import CookieJar, Session, SignInState, new_csrf_token
from tenantops.errors import AuthError
from tenantops.log import redact

__all__ = ["EasyAuthSignIn", "OidcSignIn", "SignIn", "Viewer", "safe_next_path"]

log = logging.getLogger("tenantops.dashboard")

CALLBACK_PATH = "/auth/callback"
SIGNED_OUT_PATH = "/auth/signed-out"


def safe_next_path(value: str | None) -> str:
    """``value`` if it is a path on this site, else ``/``: sign-in never redirects away."""
    if (not value or not value.startswith("/") or value.startswith("//")
            or "\\" in value or any(ord(c) < 32 for c in value)):
        return "/"
    return value


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class Viewer:
    """The person looking at a page: who (``principal``), the session's CSRF token, and a
    session to write to the response when one was just made."""

    principal: Principal
    csrf: str
    new_session: Session | None = None

    @property
    def display_name(self) -> str:
        return self.principal.name or self.principal.upn or self.principal.oid

    @property
    def account(self) -> str:
        return self.principal.upn or self.principal.oid

    def has(self, role: str) -> bool:
        return self.principal.has_role(role)


class SignIn(ABC):
    """Finds the signed-in person of a request, and starts and ends sign-ins."""

    mode: str

    def __init__(self, config: DashboardConfig, authenticator: Authenticator,
                 cookies: CookieJar) -> None:
        self.config = config
        self.authenticator = authenticator
        self.cookies = cookies

    @abstractmethod
    def viewer(self, request: Request) -> Viewer | None:
        """The signed-in person, or None; an `AuthError` when their credentials are refused."""

    @abstractmethod
    def start(self, request: Request, next_path: str) -> Response:
        """Send the browser to sign in, then back to ``next_path``."""

    @abstractmethod
    def sign_out(self, request: Request) -> Response:
        """End the session."""


class OidcSignIn(SignIn):
    """Authorization code + PKCE against the configured authority (module docstring)."""

    mode = "oidc"

    def __init__(self, config: DashboardConfig, authenticator: Authenticator,
                 cookies: CookieJar, *, transport: httpx.BaseTransport | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(config, authenticator, cookies)
        self._transport = transport
        self._clock = clock

    def viewer(self, request: Request) -> Viewer | None:
        session = self.cookies.read_session(request)
        if session is None or session.principal is None:
            return None
        # Allow-lists may have changed since sign-in; they are cheap to apply again.
        self.authenticator.policy.check(session.principal)
        return Viewer(session.principal, session.csrf)

    def redirect_uri(self, request: Request) -> str:
        if self.config.public_url:
            return self.config.public_url.rstrip("/") + CALLBACK_PATH
        return str(request.url.replace(path=CALLBACK_PATH, query="", fragment=""))

    def start(self, request: Request, next_path: str) -> Response:
        verifier = secrets.token_urlsafe(64)
        state = SignInState(
            state=secrets.token_urlsafe(32), nonce=secrets.token_urlsafe(32), verifier=verifier,
            next_path=safe_next_path(next_path), redirect_uri=self.redirect_uri(request))
        query = urlencode({
            "client_id": self.config.client_id, "response_type": "code",
            "redirect_uri": state.redirect_uri, "response_mode": "query",
            "scope": self.config.scope, "state": state.state, "nonce": state.nonce,
            "code_challenge": _b64url(hashlib.sha256(verifier.encode("ascii")).digest()),
            "code_challenge_method": "S256",
        })
        response = RedirectResponse(f"{self.config.authorize_url}?{query}", status_code=303)
        self.cookies.write_signin(request, response, state)
        return response

    def finish(self, request: Request) -> Response:
        """The callback: check the round trip, redeem the code, check both tokens, and start
        a session; `SignInError` saying what went wrong otherwise."""
        started = self.cookies.read_signin(request)
        params = request.query_params
        if started is None:
            raise SignInError(
                "this sign-in was not started by this browser in the last 10 minutes (its "
                "sign-in cookie is missing or expired); sign in again")
        if not hmac.compare_digest(params.get("state", "").encode(), started.state.encode()):
            raise SignInError(
                "the answer from the identity provider does not belong to this browser's "
                "sign-in (state mismatch); sign in again")
        if params.get("error"):
            raise SignInError(
                f"{self.config.authority} refused the sign-in: {params['error']}: "
                f"{redact(params.get('error_description', '(no description)'))}")
        code = params.get("code")
        if not code:
            raise SignInError("the identity provider answered without a code; sign in again")
        tokens = self._redeem(code, started)
        try:
            principal = self.authenticator.authenticate([f"Bearer {tokens['access_token']}"])
        except AuthError as exc:
            raise SignInError(
                f"the access token {self.config.authority} issued is not good for this API: "
                f"{exc}", expected=exc.expected, received=exc.received) from exc
        expires = self._check_id_token(tokens.get("id_token"), started.nonce, principal)
        request.state.principal = principal  # named in the sign-in's audit record
        session = Session(csrf=new_csrf_token(), principal=principal,
                          expires_at=min(expires, self._clock() + self.config.session_seconds))
        log.info("dashboard sign-in: %s (oid %s), roles %s", principal.upn or principal.name,
                 principal.oid, ", ".join(principal.roles) or "none")
        response = RedirectResponse(started.next_path, status_code=303)
        self.cookies.clear_signin(request, response)
        self.cookies.write_session(request, response, session)
        return response

    def _redeem(self, code: str, started: SignInState) -> dict[str, Any]:
        verify: ssl.SSLContext | bool = True
        if self.config.ca_bundle is not None:
            verify = ssl.create_default_context(cafile=str(self.config.ca_bundle))
        secret = self.config.client_secret
        form = {
            "grant_type": "authorization_code", "client_id": self.config.client_id,
            "code": code, "redirect_uri": started.redirect_uri,
            "code_verifier": started.verifier, "scope": self.config.scope,
            "client_secret": secret.get_secret_value() if secret else "",
        }
        url = self.config.token_url
        try:
            with httpx.Client(verify=verify, timeout=15, transport=self._transport) as http:
                answer = http.post(url, data=form, headers={"Accept": "application/json"})
            body = answer.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise SignInError(
                f"the token endpoint {url} could not be used ({type(exc).__name__}: "
                f"{redact(str(exc))}); check auth.authority and auth.ca_bundle, then sign in "
                "again") from exc
        if answer.status_code != 200 or not isinstance(body, dict) or not isinstance(
                body.get("access_token"), str):
            error = body.get("error", "unknown") if isinstance(body, dict) else "unknown"
            description = body.get("error_description", "") if isinstance(body, dict) else ""
            raise SignInError(
                f"the token endpoint {url} refused the code (HTTP {answer.status_code}, "
                f"{error}): {redact(str(description))}. Check dashboard.client_id and "
                "dashboard.client_secret, then sign in again")
        return body

    def _check_id_token(self, id_token: object, nonce: str, principal: Principal) -> float:
        """The ID token's expiry, once it is shown to be about ``principal``, for this
        dashboard, from this sign-in."""
        if not isinstance(id_token, str):
            raise SignInError("the token endpoint returned no ID token; the dashboard asks for "
                              "the openid scope, so the identity provider should; sign in again")
        jwks = self.authenticator.validator.jwks
        try:
            kid = jwt.get_unverified_header(id_token).get("kid")
            key = jwks.key(kid) if isinstance(kid, str) else None
            if key is None:
                raise SignInError(f"the ID token is signed with key {kid!r}, which tenant "
                                  f"{self.config.tenant_id} does not publish; sign in again")
            claims: dict[str, Any] = jwt.decode(
                id_token, key=key, algorithms=["RS256"], audience=self.config.client_id,
                leeway=self.config.leeway_seconds,
                options={"require": ["exp", "iat", "iss", "aud", "nonce", "oid", "tid"]})
        except jwt.PyJWTError as exc:
            raise SignInError(f"the ID token was refused: {exc}; sign in again") from exc
        if claims["iss"] not in jwks.issuers().all():
            raise SignInError(f"the ID token's issuer {claims['iss']!r} is not tenant "
                              f"{self.config.tenant_id}'s; sign in again")
        if not hmac.compare_digest(str(claims["nonce"]).encode(), nonce.encode()):
            raise SignInError("the ID token's nonce is not this sign-in's (a replayed token?); "
                              "sign in again")
        if claims["oid"] != principal.oid or str(claims["tid"]).lower() != principal.tid.lower():
            raise SignInError("the ID token and the access token are about different people; "
                              "sign in again")
        return float(claims["exp"])

    def sign_out(self, request: Request) -> Response:
        response = RedirectResponse(SIGNED_OUT_PATH, status_code=303)
        self.cookies.clear_session(request, response)
        return response


class EasyAuthSignIn(SignIn):
    """App Service Authentication has signed the person in (module docstring)."""

    mode = "easy-auth"

    def __init__(self, config: DashboardConfig, authenticator: Authenticator,
                 cookies: CookieJar, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(config, authenticator, cookies)
        self._clock = clock

    def viewer(self, request: Request) -> Viewer | None:
        headers = request.headers.getlist(CLIENT_PRINCIPAL_HEADER)
        authorization = request.headers.getlist("authorization")
        if not headers and not authorization:
            return None
        principal = self.authenticator.authenticate(authorization, headers)
        session = self.cookies.read_session(request)
        if session is not None and session.easy_auth_oid == principal.oid:
            return Viewer(principal, session.csrf)
        fresh = Session(csrf=new_csrf_token(), easy_auth_oid=principal.oid,
                        expires_at=self._clock() + self.config.session_seconds)
        return Viewer(principal, fresh.csrf, new_session=fresh)

    def start(self, request: Request, next_path: str) -> Response:
        query = urlencode({"post_login_redirect_uri": safe_next_path(next_path)})
        return RedirectResponse(f"/.auth/login/aad?{query}", status_code=303)

    def sign_out(self, request: Request) -> Response:
        query = urlencode({"post_logout_redirect_uri": SIGNED_OUT_PATH})
        response = RedirectResponse(f"/.auth/logout?{query}", status_code=303)
        self.cookies.clear_session(request, response)
        return response
