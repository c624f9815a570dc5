"""Sessions in encrypted cookies: no token is kept anywhere.

At sign-in the access token is checked once and only what it proved (the `Principal`: object
ID, name, app roles) is kept, with a CSRF token and an expiry no later than the token's own.
The cookie is a Fernet token (AES-128-CBC + HMAC-SHA256, with a timestamp) under a key derived
from ``dashboard.session_secret``, so people can neither read nor forge it and every instance
that shares the secret accepts it; nothing lives in a process's memory.

Cookies are ``HttpOnly``, ``SameSite=Lax``, ``Path=/``, and ``Secure`` (named with the
``__Host-`` prefix) unless the request came over plain HTTP to a loopback address.
"""

from __future__ import annotations

import base64
import dataclasses
import hmac
import ipaddress
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from starlette.requests import Request
from starlette.responses import Response

from tenantops.auth import Principal

__all__ = ["CookieJar", "Session", "SignInState", "new_csrf_token"]

SESSION_COOKIE = "tenantops_session"
SIGNIN_COOKIE = "tenantops_signin"
_SIGNIN_SECONDS = 600


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def _fernet(secret: bytes, purpose: bytes) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"tenantops.dashboard",
               info=purpose).derive(secret)
    return Fernet(base64.urlsafe_b64encode(key))


@dataclass(frozen=True)
class Session:
    """A signed-in person (``principal``; ``None`` behind Easy Auth, where the platform says
    who it is on every request), this session's CSRF token and when the session ends."""

    csrf: str
    expires_at: float
    principal: Principal | None = None
    easy_auth_oid: str | None = None

    def csrf_matches(self, candidate: str) -> bool:
        return bool(candidate) and hmac.compare_digest(candidate.encode(), self.csrf.encode())

    def to_json(self) -> bytes:
        body: dict[str, Any] = {"v": 1, "csrf": self.csrf, "exp": self.expires_at,
                                "eo": self.easy_auth_oid}
        if self.principal is not None:
            body["p"] = dataclasses.asdict(self.principal)
            body["p"]["roles"] = list(self.principal.roles)
        return json.dumps(body, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Session | None:
        try:
            body = json.loads(raw)
            p = body.get("p")
            principal = None
            if p is not None:
                principal = Principal(**{**p, "roles": tuple(p["roles"])})
            return cls(csrf=str(body["csrf"]), expires_at=float(body["exp"]),
                       principal=principal, easy_auth_oid=body.get("eo"))
        except (ValueError, KeyError, TypeError):
            return None


@dataclass(frozen=True)
class SignInState:
    """What the callback needs to finish a sign-in it started (PKCE verifier, state, nonce),
    kept in the browser for ten minutes, encrypted."""

    state: str
    nonce: str
    verifier: str
    next_path: str
    redirect_uri: str


def _is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class CookieJar:
    """Reads and writes the session and sign-in cookies (module docstring)."""

    def __init__(self, secret: bytes, *, max_age: float, secure: bool | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._session = _fernet(secret, b"session")
        self._signin = _fernet(secret, b"sign-in")
        self.max_age = max_age
        self._secure = secure
        self._clock = clock

    def secure(self, request: Request) -> bool:
        if self._secure is not None:
            return self._secure
        forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
        if request.url.scheme == "https" or forwarded == "https":
            return True
        return not _is_loopback(request.url.hostname or "")

    def _name(self, request: Request, base: str) -> str:
        return f"__Host-{base}" if self.secure(request) else base

    def _set(self, request: Request, response: Response, base: str, value: str,
             max_age: int) -> None:
        response.set_cookie(self._name(request, base), value, max_age=max_age, path="/",
                            httponly=True, samesite="lax", secure=self.secure(request))

    def _clear(self, request: Request, response: Response, base: str) -> None:
        response.delete_cookie(self._name(request, base), path="/", httponly=True,
                               samesite="lax", secure=self.secure(request))

    # -- the session ------------------------------------------------------------------------

    def read_session(self, request: Request) -> Session | None:
        value = request.cookies.get(self._name(request, SESSION_COOKIE))
        if not value:
            return None
        try:
            raw = self._session.decrypt(value.encode(), ttl=int(self.max_age))
        except (InvalidToken, ValueError):
            return None
        session = Session.from_json(raw)
        if session is None or session.expires_at <= self._clock():
            return None
        return session

    def write_session(self, request: Request, response: Response, session: Session) -> None:
        token = self._session.encrypt(session.to_json()).decode()
        seconds = max(1, int(session.expires_at - self._clock()))
        self._set(request, response, SESSION_COOKIE, token, seconds)

    def clear_session(self, request: Request, response: Response) -> None:
        self._clear(request, response, SESSION_COOKIE)

    # -- the sign-in round trip --------------------------------------------------------------

    def read_signin(self, request: Request) -> SignInState | None:
        value = request.cookies.get(self._name(request, SIGNIN_COOKIE))
        if not value:
            return None
        try:
            body = json.loads(self._signin.decrypt(value.encode(), ttl=_SIGNIN_SECONDS))
            return SignInState(**body)
        except (InvalidToken, ValueError, TypeError):
            return None

    def write_signin(self, request: Request, response: Response, state: SignInState) -> None:
        token = self._signin.encrypt(json.dumps(dataclasses.asdict(state)).encode()).decode()
        self._set(request, response, SIGNIN_COOKIE, token, _SIGNIN_SECONDS)

    def clear_signin(self, request: Request, response: Response) -> None:
        self._clear(request, response, SIGNIN_COOKIE)
