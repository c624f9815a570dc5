"""Read an access token: header, claims, expiry in words; verify it only when asked.

Decoding without verification is for *showing* what a token carries (``auth decode``, the
doctor, rejection messages). `verify_token` fetches the issuer's OIDC discovery document and
JWKS and checks the signature (RS256 only) and expiry; it proves who signed the token, not
that tenantops should trust that issuer: the API decides that (``tenantops.auth``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt

from tenantops.errors import (
    DisallowedAlgorithmError,
    MalformedTokenError,
    SignatureMismatchError,
    SigningKeysUnavailableError,
    TokenExpiredError,
    TokenNotYetValidError,
    UnknownSigningKeyError,
    WrongAudienceError,
    WrongIssuerError,
)
from tenantops.first_party import first_party_resource

__all__ = ["DecodedToken", "decode_token", "describe_expiry", "verify_token"]

_ALGORITHMS = ["RS256"]


def _span(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def describe_expiry(expires_on: float, now: float) -> str:
    """``"expires in 23 h 59 min"`` or ``"expired 3 min ago"``."""
    left = expires_on - now
    if left >= 0:
        return f"expires in {_span(left)}"
    return f"expired {_span(-left)} ago"


def is_arm_audience(aud: str) -> bool:
    """True for Azure Resource Manager's audiences, in any cloud (``az account
    get-access-token``'s default); `tenantops.first_party` keeps the list."""
    service = first_party_resource(aud)
    return service is not None and service.name == "Azure Resource Manager"


@dataclass(frozen=True)
class DecodedToken:
    """A JWT's header and claims, read without verification. Never holds the token itself."""

    header: Mapping[str, Any]
    claims: Mapping[str, Any]

    def _str(self, name: str) -> str | None:
        value = self.claims.get(name)
        return value if isinstance(value, str) else None

    @property
    def aud(self) -> str | None:
        value = self.claims.get("aud")
        if isinstance(value, list):
            return " ".join(str(v) for v in value)
        return value if isinstance(value, str) else None

    @property
    def iss(self) -> str | None:
        return self._str("iss")

    @property
    def tid(self) -> str | None:
        return self._str("tid")

    @property
    def oid(self) -> str | None:
        return self._str("oid")

    @property
    def app_id(self) -> str | None:
        """The calling application: ``appid`` in v1 tokens, ``azp`` in v2 tokens."""
        return self._str("appid") or self._str("azp")

    @property
    def version(self) -> str | None:
        return self._str("ver")

    @property
    def roles(self) -> list[str]:
        value = self.claims.get("roles")
        return [str(r) for r in value] if isinstance(value, list) else []

    @property
    def expires_on(self) -> int | None:
        value = self.claims.get("exp")
        return int(value) if isinstance(value, int | float) else None

    def expiry(self, now: float) -> str:
        exp = self.expires_on
        return "no expiry (exp claim missing)" if exp is None else describe_expiry(exp, now)

    def summary(self) -> dict[str, Any]:
        """The claims a person compares against what an API expects."""
        return {
            "aud": self.aud,
            "iss": self.iss,
            "tid": self.tid,
            "roles": self.roles,
            "appid": self.app_id,
            "oid": self.oid,
            "ver": self.version,
            "exp": self.expires_on,
        }

    def describe(self, now: float) -> str:
        """One line: ``aud=... iss=... tid=... roles=... appid=... (expires in ...)``."""
        roles = ",".join(self.roles) if self.roles else "(none)"
        return (f"aud={self.aud} iss={self.iss} tid={self.tid} roles={roles} "
                f"appid={self.app_id} ({self.expiry(now)})")


def decode_token(token: str) -> DecodedToken:
    """Header and claims of ``token`` without verifying anything.

    Raises `MalformedTokenError` when ``token`` is not a JWT; the message never repeats it.
    """
    token = token.strip()
    if token.lower().startswith("bearer "):
        token = token[7:].strip()
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise MalformedTokenError(
            f"this is not a JWT access token ({exc}); pass the access_token value itself, "
            "three base64url parts separated by dots",
            expected={"token": "header.payload.signature (base64url)"},
            received={"token": "(not shown)"},
        ) from exc
    return DecodedToken(header, claims)


def _get_json(http: httpx.Client, url: str, what: str) -> dict[str, Any]:
    def unavailable(failure: str) -> SigningKeysUnavailableError:
        return SigningKeysUnavailableError(f"cannot use the {what} at {url}: {failure}",
                                           expected={"url": url}, received={"failure": failure})
    try:
        response = http.get(url)
    except httpx.HTTPError as exc:
        raise unavailable(f"{type(exc).__name__}: {exc}") from exc
    if response.status_code != 200:
        raise unavailable(f"HTTP {response.status_code}")
    try:
        data = response.json()
    except json.JSONDecodeError as exc:
        raise unavailable("not JSON") from exc
    if not isinstance(data, dict):
        raise unavailable("not a JSON object")
    return data


def verify_token(
    token: str,
    *,
    http: httpx.Client,
    audience: str | None = None,
    clock: Callable[[], float] = time.time,
    leeway: float = 60.0,
) -> DecodedToken:
    """Verify ``token``'s signature with its issuer's published keys, and its expiry.

    Steps: read ``iss`` (must be https), fetch ``<iss>/.well-known/openid-configuration``,
    require its ``issuer`` to equal ``iss``, fetch ``jwks_uri``, pick the key by ``kid``, verify
    with RS256 only, check ``exp``/``nbf`` with ``leeway`` seconds, and ``aud`` when
    ``audience`` is given. Raises the `InvalidTokenError` subclass of the failed check
    (`WrongIssuerError`, `DisallowedAlgorithmError`, `UnknownSigningKeyError`,
    `SignatureMismatchError`, `WrongAudienceError`, `TokenExpiredError`,
    `TokenNotYetValidError`), or `SigningKeysUnavailableError` when the keys cannot be fetched.
    """
    decoded = decode_token(token)
    iss = decoded.iss
    if not iss or urlsplit(iss).scheme != "https":
        raise WrongIssuerError(
            f"the token's issuer {iss!r} is not an https URL; its keys cannot be fetched safely",
            expected={"iss": "https://..."}, received={"iss": iss})
    alg = decoded.header.get("alg")
    if alg not in _ALGORITHMS:
        raise DisallowedAlgorithmError(f"the token is signed with {alg!r}; only RS256 is accepted",
                                       expected={"alg": _ALGORITHMS}, received={"alg": alg})
    config = _get_json(http, f"{iss.rstrip('/')}/.well-known/openid-configuration",
                       "OpenID configuration")
    if config.get("issuer") != iss:
        raise WrongIssuerError(
            f"the issuer's OpenID configuration names issuer {config.get('issuer')!r}, the "
            f"token says {iss!r}; the token was not issued by that authority",
            expected={"iss": config.get("issuer")}, received={"iss": iss})
    jwks_uri = config.get("jwks_uri")
    if not isinstance(jwks_uri, str):
        raise SigningKeysUnavailableError(
            "the issuer's OpenID configuration has no jwks_uri",
            expected={"jwks_uri": "a URL"}, received={"jwks_uri": jwks_uri})
    keys = _get_json(http, jwks_uri, "JWKS").get("keys")
    kid = decoded.header.get("kid")
    jwk = next((k for k in keys or [] if isinstance(k, dict) and k.get("kid") == kid), None)
    if jwk is None:
        raise UnknownSigningKeyError(
            f"no key with kid {kid!r} in {jwks_uri}; the token was not signed by this issuer "
            "or its key was retired", expected={"jwks_uri": jwks_uri}, received={"kid": kid})
    try:
        key = jwt.PyJWK.from_dict(jwk, algorithm="RS256")
        jwt.decode(
            token.strip().removeprefix("Bearer ").strip(), key.key, algorithms=_ALGORITHMS,
            audience=audience, leeway=leeway,
            options={"verify_aud": audience is not None, "verify_exp": False,
                     "verify_nbf": False, "verify_iat": False},
        )
    except jwt.InvalidAudienceError as exc:
        raise WrongAudienceError(
            f"the signature is valid but aud={decoded.aud!r}, not {audience!r}",
            expected={"aud": audience}, received={"aud": decoded.aud}) from exc
    except jwt.PyJWTError as exc:
        raise SignatureMismatchError(
            f"signature check failed: {exc}", expected={"signature": f"valid for key {kid}"},
            received={"signature": "does not verify"}) from exc
    now = clock()
    exp = decoded.expires_on
    if exp is not None and exp + leeway < now:
        raise TokenExpiredError(f"the signature is valid but the token {describe_expiry(exp, now)}",
                                expected={"exp": f"after {int(now - leeway)}"},
                                received={"exp": exp})
    nbf = decoded.claims.get("nbf")
    if isinstance(nbf, int | float) and nbf - leeway > now:
        raise TokenNotYetValidError(
            f"the signature is valid but the token is not valid before {int(nbf)} "
            f"(in {int(nbf - now)} s); check this machine's clock",
            expected={"nbf": f"before {int(now + leeway)}"}, received={"nbf": nbf})
    return decoded
