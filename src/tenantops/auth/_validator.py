"""Bearer token validation equivalent to App Service Authentication (Easy Auth), and stricter.

`TokenValidator.validate` accepts a token only when all of these hold, checked in this order:

1. size: at most `MAX_TOKEN_BYTES`, refused before any parsing;
2. shape: a JWS in compact form: three segments of canonical, unpadded base64url (JWE is
   refused), the header and the payload JSON objects; a ``crit`` header is refused (no
   critical extension is understood, RFC 7515 §4.1.11);
3. ``alg`` is RS256: an allow-list, never the token's own choice (``none``, ``HS256`` and
   everything else are refused);
4. ``kid`` names a key of the configured tenant's JWKS (refreshed, rate-limited, on an unknown
   ``kid``); ``jku``, ``x5u``, ``jwk`` and ``x5c`` headers are never read;
5. the RS256 signature (RSASSA-PKCS1-v1_5 with SHA-256, ``cryptography``) verifies with that
   key over the first two segments exactly as sent; only then is the payload read; the
   claims ``exp``, ``iat``, ``iss``, ``aud``, ``tid``, ``oid`` are present (not null), and
   ``sub`` and ``jti`` are strings when present;
6. ``exp`` and ``nbf`` hold with ``leeway_seconds``; ``iat`` is not in the future beyond the
   leeway, and ``exp - iat`` is at most ``max_token_lifetime_seconds`` (plus the leeway);
7. ``iss`` is the tenant's v1 or v2 issuer, as its discovery documents state them;
8. ``aud`` is one string: the client ID, ``api://<client ID>`` or one of ``extra_audiences``,
   compared by the one rule of `tenantops.auth._audience`;
9. ``tid`` is the configured tenant; ``appid`` (v1) or ``azp`` (v2) is present;
10. ``roles``, when present, is a JSON list of strings.

Policy (allowed applications, identities, tenants) and app roles are `AccessPolicy`'s job.
Every refusal is a precise `InvalidTokenError` subclass carrying the expected and the received
values. The compact serialization is parsed here rather than by PyJWT, whose per-character
base64url check (its fix for GHSA-hxm8-2xgr-2p9m, kept here as one regular expression) was
over half of a first-sight validation; PyJWT's checks for the parts used here are all kept
(tests/auth, tests/api/test_attacks.py).

A token that passed is remembered (by its SHA-256, never the token itself) until it expires,
so a caller that presents the same token again (managed-identity tokens live 24 hours) skips
the signature check; its time window is checked again every time, and the entry is ignored
once its signing key is no longer published.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import logging
import math
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.hashes import SHA256

from tenantops.auth._audience import audience_matches
from tenantops.auth._jwks import JwksCache, TenantIssuers
from tenantops.auth._principal import Principal
from tenantops.auth._safe_text import shown
from tenantops.config import AuthSettings
from tenantops.errors import (
    ConfigError,
    DisallowedAlgorithmError,
    InvalidClaimError,
    MalformedTokenError,
    MissingClaimError,
    SignatureMismatchError,
    TokenExpiredError,
    TokenIssuedInTheFutureError,
    TokenLifetimeTooLongError,
    TokenNotYetValidError,
    TokenTooLargeError,
    UnknownSigningKeyError,
    WrongAudienceError,
    WrongIssuerError,
    WrongTenantError,
)
from tenantops.first_party import first_party_resource

__all__ = [
    "ALLOWED_ALGORITHMS",
    "MAX_TOKEN_BYTES",
    "TokenValidator",
    "expected_audiences",
    "request_hint",
]

log = logging.getLogger("tenantops.auth")

ALLOWED_ALGORITHMS = ("RS256",)
MAX_TOKEN_BYTES = 16 * 1024
REQUIRED_CLAIMS = ("exp", "iat", "iss", "aud", "tid", "oid")

_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")
_GUID = re.compile(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_TO_STANDARD_ALPHABET = bytes.maketrans(b"-_", b"+/")
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# The last character of a segment whose length is 2 or 3 modulo 4 carries 4 or 2 unused bits,
# which must be zero: the characters whose value is a multiple of 16 or 4.
_CANONICAL_LAST = {2: frozenset(_ALPHABET[::16]), 3: frozenset(_ALPHABET[::4])}
# Claims that, when present, must be strings (PyJWT's verify_sub and verify_jti, kept).
_STRING_IF_PRESENT = ("sub", "jti")


def expected_audiences(settings: AuthSettings) -> tuple[str, ...]:
    """The client ID, ``api://<client ID>`` and ``extra_audiences``, in that order."""
    client_id = settings.client_id or ""
    return tuple(dict.fromkeys([client_id, f"api://{client_id}", *settings.extra_audiences]))


def request_hint(client_id: str) -> str:
    """How to ask for a token this API accepts, for every way a caller gets tokens."""
    return (
        f"request the token with resource={client_id} (scope api://{client_id}/.default), e.g. "
        f"az account get-access-token --resource {client_id}, or from a managed identity "
        f"GET IDENTITY_ENDPOINT?resource={client_id}&api-version=2019-08-01 with the "
        "X-IDENTITY-HEADER header"
    )


def _require_guid(value: str | None, setting: str, how: str) -> str:
    if not value:
        raise ConfigError(f"{setting} is not set (TENANTOPS_{setting.upper().replace('.', '__')}); "
                          f"{how}")
    if not _GUID.fullmatch(value):
        raise ConfigError(f"{setting} = {value!r} is not a GUID; {how}")
    return value


@dataclass(frozen=True)
class _Verified:
    principal: Principal
    exp: float
    nbf: float | None
    kid: str


class TokenValidator:
    """Checks bearer tokens for one API app registration in one tenant (module docstring).

    Constructing it does no I/O; the first `validate` fetches discovery and keys.
    ``verified_cache_size`` bounds the verified-token memory (0 turns it off).
    """

    def __init__(
        self,
        settings: AuthSettings,
        *,
        jwks: JwksCache | None = None,
        clock: Callable[[], float] = time.time,
        verified_cache_size: int = 4096,
    ) -> None:
        self.tenant_id = _require_guid(
            settings.tenant_id, "auth.tenant_id",
            "set it to the directory (tenant) ID, e.g. from 'az account show --query tenantId'")
        self.client_id = _require_guid(
            settings.client_id, "auth.client_id",
            "set it to the API app registration's Application (client) ID")
        self.settings = settings
        self.authority = settings.authority.rstrip("/")
        self.jwks = jwks if jwks is not None else JwksCache.from_settings(settings)
        self.audiences = expected_audiences(settings)
        self._leeway = float(settings.leeway_seconds)
        self._max_lifetime = float(settings.max_token_lifetime_seconds)
        self._clock = clock
        self._cache_size = verified_cache_size
        self._verified: dict[bytes, _Verified] = {}
        self._cache_lock = threading.Lock()

    def validate(self, token: str) -> Principal:
        """The principal ``token`` proves, or a precise `InvalidTokenError` (module docstring)."""
        if len(token) > MAX_TOKEN_BYTES:
            raise TokenTooLargeError(
                f"the token is {len(token)} bytes; tokens over {MAX_TOKEN_BYTES} bytes are "
                "refused unread. Send the access token itself, nothing else",
                expected={"max_bytes": MAX_TOKEN_BYTES}, received={"bytes": len(token)})
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        remembered = self._remembered(digest)
        if remembered is not None:
            return remembered
        verified = self._verify(token)
        if self._cache_size > 0:
            self._remember(digest, verified)
        return verified.principal

    def remembered(self, token: str) -> Principal | None:
        """The principal of ``token`` when it passed `validate` before and its key is still
        published, with its time window checked again; None when it needs a full `validate`.
        Does no I/O and no signature check, so an event loop may call it."""
        if len(token) > MAX_TOKEN_BYTES:
            return None
        return self._remembered(hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest())

    def _remembered(self, digest: bytes) -> Principal | None:
        remembered = self._verified.get(digest)
        if remembered is None or not self.jwks.is_published(remembered.kid):
            return None
        self._check_time(remembered.exp, remembered.nbf)
        return remembered.principal

    def _remember(self, digest: bytes, verified: _Verified) -> None:
        with self._cache_lock:
            if len(self._verified) >= self._cache_size:
                now = self._clock()
                for stale in [d for d, v in self._verified.items() if v.exp + self._leeway < now]:
                    del self._verified[stale]
                while len(self._verified) >= self._cache_size:
                    del self._verified[next(iter(self._verified))]
            self._verified[digest] = verified

    def _verify(self, token: str) -> _Verified:
        header, segments = _read_header(token)
        payload_segment = segments[1]
        alg = header.get("alg")
        if alg not in ALLOWED_ALGORITHMS:
            raise DisallowedAlgorithmError(
                f"the token is signed with alg {shown(alg)!r}; this API accepts only "
                f"{', '.join(ALLOWED_ALGORITHMS)} tokens from Microsoft Entra ID tenant "
                f"{self.tenant_id}. Use an access token issued by Entra ID",
                expected={"alg": list(ALLOWED_ALGORITHMS)}, received={"alg": shown(alg)})
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise UnknownSigningKeyError(
                "the token's header has no 'kid', so no signing key of tenant "
                f"{self.tenant_id} can be chosen. Use an access token issued by Entra ID",
                expected={"kid": "one of the tenant's signing keys"},
                received={"kid": shown(kid)})
        if "crit" in header or header.get("b64", True) is not True:
            raise MalformedTokenError(
                "the token's header lists critical extensions ('crit') or an unencoded "
                "payload ('b64'), which this API does not understand (RFC 7515 §4.1.11) and "
                "Entra ID never sends. Send the access token exactly as Entra ID issued it",
                expected={"header": "no 'crit', no 'b64'"},
                received={"crit": shown(header.get("crit")), "b64": shown(header.get("b64"))})
        key = self.jwks.key(kid)
        if key is None:
            self._unknown_key(kid, _unverified_claims(payload_segment))
        claims = self._decode(segments, key, kid)
        exp = _numeric(claims, "exp")
        nbf = _numeric(claims, "nbf") if "nbf" in claims else None
        self._check_time(exp, nbf)
        self._check_issued(_numeric(claims, "iat"), exp)
        principal = self._principal(claims)
        return _Verified(principal=principal, exp=exp, nbf=nbf, kid=kid)

    def _unknown_key(self, kid: str, unverified: dict[str, Any]) -> NoReturn:
        iss = unverified.get("iss")
        hint = ""
        if isinstance(iss, str) and self.tenant_id.lower() not in iss.lower():
            hint = (f" The token says it was issued by {shown(iss)!r}, not by tenant "
                    f"{self.tenant_id}; get a token from tenant {self.tenant_id}.")
        wait = self.jwks.seconds_until_refresh_allowed()
        raise UnknownSigningKeyError(
            f"the token is signed with key kid={shown(kid)!r}, which tenant {self.tenant_id} "
            f"does not publish at {', '.join(self.jwks.jwks_uris) or self.authority} (known: "
            f"{', '.join(self.jwks.known_kids()) or 'none'}); it was not issued by that tenant "
            f"or its key is not published yet (next key refresh possible in {wait:.0f} s).{hint}",
            expected={"kid": list(self.jwks.known_kids()), "jwks_uri": list(self.jwks.jwks_uris)},
            received={"kid": shown(kid), "iss": shown(iss)})

    def _decode(self, segments: list[str], key: RSAPublicKey, kid: str) -> dict[str, Any]:
        """The payload of a token whose RS256 signature verifies with ``key``; the payload is
        parsed only after the signature has verified."""
        header_segment, payload_segment, signature_segment = segments
        payload = _segment_bytes(payload_segment)
        signature = _segment_bytes(signature_segment)
        if payload is None or signature is None:
            which = "payload" if payload is None else "signature"
            raise MalformedTokenError(
                f"the token cannot be decoded: its {which} is not canonical, unpadded "
                "base64url. Send the access token exactly as Entra ID issued it",
                expected={"format": "a JWS in compact form"},
                received={"failure": f"{which} is not base64url"})
        signing_input = f"{header_segment}.{payload_segment}".encode("ascii")
        try:
            key.verify(signature, signing_input, PKCS1v15(), SHA256())
        except InvalidSignature as exc:
            raise SignatureMismatchError(
                f"the token's signature does not verify with key kid={shown(kid)!r} of tenant "
                f"{self.tenant_id}: the token was altered after it was issued, or signed by "
                "someone else. Send the token exactly as Entra ID issued it",
                expected={"kid": kid, "alg": "RS256"}, received={"kid": shown(kid)}) from exc
        claims = _json_object(payload)
        if claims is None:
            raise MalformedTokenError(
                "the token cannot be decoded: its payload is not a JSON object. Send the "
                "access token exactly as Entra ID issued it",
                expected={"format": "a JWS in compact form"},
                received={"failure": "payload is not a JSON object"})
        for claim in REQUIRED_CLAIMS:
            if claims.get(claim) is None:
                self._missing(claim, claims, None)
        for name in _STRING_IF_PRESENT:
            if name in claims and not isinstance(claims[name], str):
                raise InvalidClaimError(
                    f"the token's {name!r} claim is {_json_type(claims[name])}, not a string; "
                    "use an access token issued by Entra ID",
                    expected={name: "a string"}, received={name: shown(claims[name])})
        return claims

    def _missing(self, claim: str, unverified: dict[str, Any], cause: Exception | None) -> NoReturn:
        raise MissingClaimError(
            f"the token has no {claim!r} claim; Entra ID access tokens always carry it. Use an "
            f"access token (not an ID token) issued by tenant {self.tenant_id} for this API",
            claim=claim, expected={"claims": list(REQUIRED_CLAIMS)},
            received={"claims": sorted(unverified)[:40]}) from cause

    def _check_time(self, exp: float, nbf: float | None) -> None:
        now = self._clock()
        if exp <= now - self._leeway:
            raise TokenExpiredError(
                f"the token expired at {_utc(exp)} ({now - exp:.0f} s ago; leeway "
                f"{self._leeway:.0f} s). Get a new token",
                expected={"exp": f"after {_utc(now - self._leeway)}"},
                received={"exp": _utc(exp)})
        if nbf is not None and nbf > now + self._leeway:
            raise TokenNotYetValidError(
                f"the token is not valid before {_utc(nbf)} ({nbf - now:.0f} s from now; "
                f"leeway {self._leeway:.0f} s). Check the clocks of this server and of the "
                "token issuer",
                expected={"nbf": f"before {_utc(now + self._leeway)}"},
                received={"nbf": _utc(nbf)})

    def _check_issued(self, iat: float, exp: float) -> None:
        """``iat`` not in the future, and a lifetime Entra could have issued (checked once,
        when a token is first verified; neither changes with time passing)."""
        now = self._clock()
        if iat > now + self._leeway:
            raise TokenIssuedInTheFutureError(
                f"the token says it was issued at {_utc(iat)}, {iat - now:.0f} s from now "
                f"(leeway {self._leeway:.0f} s): a clock is wrong, or the token was not issued "
                "by Entra ID. Check the clocks of this server and of the token issuer",
                expected={"iat": f"before {_utc(now + self._leeway)}"},
                received={"iat": _utc(iat)})
        lifetime = exp - iat
        if lifetime > self._max_lifetime + self._leeway:
            raise TokenLifetimeTooLongError(
                f"the token lives {lifetime:.0f} s (iat {_utc(iat)}, exp {_utc(exp)}); this API "
                f"accepts at most {self._max_lifetime:.0f} s (auth.max_token_lifetime_seconds, "
                f"plus leeway {self._leeway:.0f} s), the longest lifetime Entra ID issues. Use "
                "an access token issued by Entra ID",
                expected={"lifetime_seconds": f"at most {self._max_lifetime:.0f}"},
                received={"lifetime_seconds": int(lifetime)})

    def _principal(self, claims: dict[str, Any]) -> Principal:
        issuers = self.jwks.issuers()
        iss = _string(claims, "iss")
        if iss not in issuers.all():
            self._wrong_issuer(iss, issuers)
        self._check_audience(claims.get("aud"))
        tid = _string(claims, "tid")
        if tid.lower() != self.tenant_id.lower():
            raise WrongTenantError(
                f"the token is for tenant {shown(tid)!r}; this API trusts only tenant "
                f"{self.tenant_id}. Get the token from tenant {self.tenant_id}",
                expected={"tid": self.tenant_id}, received={"tid": shown(tid)})
        appid = claims.get("appid", claims.get("azp"))
        if appid is None:
            self._missing("appid", claims, None)
        if not isinstance(appid, str):
            raise InvalidClaimError(
                "the token's 'appid'/'azp' claim is not a string; use an access token issued "
                "by Entra ID", expected={"appid": "a string"}, received={"appid": shown(appid)})
        roles = claims.get("roles", [])
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise InvalidClaimError(
                f"the token's 'roles' claim is {_json_type(roles)}, not a JSON list of strings "
                f"({shown(roles)!r}); Entra ID always sends app roles as a list. Use an access "
                "token issued by Entra ID",
                expected={"roles": "a JSON list of strings"},
                received={"roles": shown(roles), "type": _json_type(roles)})
        version = claims.get("ver")
        if version not in ("1.0", "2.0"):
            version = issuers.version_of(iss)
        return Principal(
            oid=_string(claims, "oid"), appid=appid, tid=tid, roles=tuple(roles),
            token_version=str(version), source="bearer",
            name=_optional_string(claims, "name"),
            upn=_optional_string(claims, "upn") or _optional_string(claims, "preferred_username"),
        )

    def _wrong_issuer(self, iss: str, issuers: TenantIssuers) -> NoReturn:
        other = _tenant_in(iss)
        why = (f" It was issued by tenant {other}, not {self.tenant_id}."
               if other and other.lower() != self.tenant_id.lower() else "")
        raise WrongIssuerError(
            f"the token's issuer is {shown(iss)!r}; this API accepts only the issuers of tenant "
            f"{self.tenant_id}: {issuers.v1!r} (v1 tokens) and {issuers.v2!r} (v2 tokens).{why} "
            f"Get the token from tenant {self.tenant_id} ({self.authority}/{self.tenant_id})",
            expected={"iss": list(issuers.all())}, received={"iss": shown(iss)})

    def _check_audience(self, aud: object) -> None:
        accepted = ", ".join(repr(a) for a in self.audiences)
        if isinstance(aud, list):
            raise WrongAudienceError(
                f"the token's 'aud' claim is a list of {len(aud)} ({shown(aud)!r}); this API "
                f"accepts a token with exactly one audience, one of {accepted}. "
                f"{_sentence(request_hint(self.client_id))}",
                expected={"aud": list(self.audiences)}, received={"aud": shown(aud)})
        if not isinstance(aud, str):
            raise InvalidClaimError(
                f"the token's 'aud' claim is {_json_type(aud)}, not a string; this API accepts "
                f"one of {accepted}", expected={"aud": list(self.audiences)},
                received={"aud": shown(aud), "type": _json_type(aud)})
        if audience_matches(aud, self.audiences):
            return
        what = ""
        service = first_party_resource(aud)
        if service is not None and service.name == "Azure Resource Manager":
            what = (" That is the Azure Resource Manager audience, which az account "
                    "get-access-token and managed identities return when no resource is named.")
        elif service is not None:
            what = f" That is the audience of {service.name}, a Microsoft service."
        raise WrongAudienceError(
            f"the token's audience is {shown(aud)!r}, but this API accepts only {accepted}.{what} "
            f"{_sentence(request_hint(self.client_id))}",
            expected={"aud": list(self.audiences)}, received={"aud": shown(aud)})


def _read_header(token: str) -> tuple[dict[str, Any], list[str]]:
    """The unverified header (only to pick the key) and the three segments."""
    segments = token.split(".")
    if len(segments) != 3:
        kind = " (a JWE: encrypted tokens are not accepted)" if len(segments) == 5 else ""
        raise MalformedTokenError(
            f"the bearer value has {len(segments)} dot-separated segments{kind}; an access "
            "token is a JWT of three base64url segments (header.payload.signature). Send the "
            "access_token value of the token response",
            expected={"segments": 3}, received={"segments": len(segments)})
    header = _segment_json(segments[0])
    if header is None:
        raise MalformedTokenError(
            "the token's header is not base64url-encoded JSON object; send the access_token "
            "value of the token response unchanged",
            expected={"header": "base64url JSON object"}, received={"header": "undecodable"})
    return header, segments


def _unverified_claims(payload_segment: str) -> dict[str, Any]:
    """Best effort, and only to word an error: the claims of a token that was refused."""
    return _segment_json(payload_segment) or {}


def _segment_bytes(segment: str) -> bytes | None:
    """The bytes of a canonical, unpadded base64url segment (RFC 7515 §2), else None: a
    character outside the alphabet, a length no encoding has, or unused bits that are not
    zero (two spellings of one signature) are all refused."""
    if not _BASE64URL.fullmatch(segment):
        return None
    tail = len(segment) % 4
    if tail == 1 or (tail and segment[-1] not in _CANONICAL_LAST[tail]):
        return None
    try:
        return binascii.a2b_base64(
            segment.encode("ascii").translate(_TO_STANDARD_ALPHABET) + b"=" * (-tail % 4))
    except binascii.Error:
        return None


def _segment_json(segment: str) -> dict[str, Any] | None:
    if not segment:
        return None
    decoded = _segment_bytes(segment)
    return None if decoded is None else _json_object(decoded)


def _json_object(data: bytes) -> dict[str, Any] | None:
    """``data`` as a JSON object; JWT JSON is UTF-8 (RFC 7519 §7.1), nothing else is read."""
    try:
        decoded = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    return decoded if isinstance(decoded, dict) else None


def _numeric(claims: dict[str, Any], name: str) -> float:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidClaimError(
            f"the token's {name!r} claim is {_json_type(value)}, not a number of seconds since "
            "1970; use an access token issued by Entra ID",
            expected={name: "a NumericDate"}, received={name: shown(value)})
    return float(value)


def _string(claims: dict[str, Any], name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str):
        raise InvalidClaimError(
            f"the token's {name!r} claim is {_json_type(value)}, not a string; use an access "
            "token issued by Entra ID",
            expected={name: "a string"}, received={name: shown(value), "type": _json_type(value)})
    return value


def _optional_string(claims: dict[str, Any], name: str) -> str | None:
    value = claims.get(name)
    return value if isinstance(value, str) else None


def _json_type(value: object) -> str:
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "missing (or null)" if value is None else f"a {type(value).__name__}"


def _tenant_in(issuer: str) -> str | None:
    for part in issuer.split("/"):
        try:
            return str(uuid.UUID(part))
        except ValueError:
            continue
    return None


def _utc(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(max(0.0, min(seconds, 253402300799))))


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]
