"""The principal App Service Authentication (Easy Auth) passes in ``X-MS-CLIENT-PRINCIPAL``.

Behind Easy Auth the platform validates the token itself and hands the application the
caller's claims as base64 JSON::

    {"auth_typ": "aad", "name_typ": "...", "role_typ": "roles",
     "claims": [{"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier",
                 "val": "..."}, {"typ": "roles", "val": "Tenants.Read"}, ...]}

Claim types arrive either short (``oid``, ``tid``) or mapped to the long URIs; both are read.
This header proves nothing by itself: it is trustworthy only because App Service strips any
copy a client sends before the request reaches the application. See docs/auth.md.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from typing import Any

from tenantops.auth._audience import audience_matches
from tenantops.auth._principal import Principal
from tenantops.auth._safe_text import shown
from tenantops.errors import MalformedPrincipalHeaderError, WrongAudienceError, WrongTenantError

__all__ = ["CLIENT_PRINCIPAL_HEADER", "MAX_PRINCIPAL_HEADER_BYTES", "principal_from_easy_auth"]

CLIENT_PRINCIPAL_HEADER = "X-MS-CLIENT-PRINCIPAL"
MAX_PRINCIPAL_HEADER_BYTES = 32 * 1024

_OID = ("oid", "http://schemas.microsoft.com/identity/claims/objectidentifier")
_TID = ("tid", "http://schemas.microsoft.com/identity/claims/tenantid")
_APPID = ("appid", "azp")
_UPN = ("upn", "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn",
        "preferred_username")
_ROLES = ("roles", "http://schemas.microsoft.com/ws/2008/06/identity/claims/role")


def _malformed(why: str, received: dict[str, object]) -> MalformedPrincipalHeaderError:
    return MalformedPrincipalHeaderError(
        f"the {CLIENT_PRINCIPAL_HEADER} header {why}; App Service Authentication sends base64 "
        "JSON with auth_typ, claims [{typ, val}], name_typ and role_typ. Check that App Service "
        "Authentication is enabled in front of this API, or set "
        "auth.trust_easy_auth_principal = false",
        expected={"header": "base64 JSON from App Service Authentication"}, received=received)


def _decode(value: str) -> dict[str, Any]:
    if len(value) > MAX_PRINCIPAL_HEADER_BYTES:
        raise _malformed(f"is {len(value)} bytes (limit {MAX_PRINCIPAL_HEADER_BYTES})",
                         {"bytes": len(value)})
    try:
        raw = base64.b64decode(value.strip() + "=" * (-len(value.strip()) % 4), validate=True)
        body = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError) as exc:
        raise _malformed("is not base64-encoded JSON", {"failure": type(exc).__name__}) from exc
    if not isinstance(body, dict):
        raise _malformed("is not a JSON object", {"type": type(body).__name__})
    return body


def principal_from_easy_auth(
    value: str, *, tenant_id: str, audiences: Iterable[str]
) -> Principal:
    """The caller described by an ``X-MS-CLIENT-PRINCIPAL`` value, for tenant ``tenant_id``.

    Checks what the platform leaves to the application: ``auth_typ`` is ``aad``, the claims
    needed are present, the tenant is ``tenant_id`` and, when an ``aud`` claim is passed, that
    it is one of ``audiences`` (the validator's audience rule).
    """
    body = _decode(value)
    if "auth_typ" not in body:
        raise _malformed("has no 'auth_typ'; App Service Authentication always names the "
                         "identity provider that signed the caller in ('aad')",
                         {"auth_typ": "(missing)"})
    auth_typ = body["auth_typ"]
    if auth_typ != "aad":
        raise _malformed(f"names the identity provider {shown(auth_typ)!r}, not 'aad'",
                         {"auth_typ": shown(auth_typ)})
    claims = body.get("claims")
    if not isinstance(claims, list) or not all(
        isinstance(c, dict) and isinstance(c.get("typ"), str) and isinstance(c.get("val"), str)
        for c in claims
    ):
        raise _malformed("has no 'claims' list of {typ, val} strings", {"claims": "malformed"})
    role_typ = body.get("role_typ")
    role_typ = role_typ if isinstance(role_typ, str) else "roles"
    name_typ = body.get("name_typ")
    name_typ = name_typ if isinstance(name_typ, str) else "name"

    def first(types: Iterable[str]) -> str | None:
        wanted = set(types)
        return next((c["val"] for c in claims if c["typ"] in wanted), None)

    # A browser session's principal is built from its ID token, which names the application
    # in ``aud`` (it has no appid/azp); an access token names it in appid (v1) or azp (v2).
    oid, tid, appid = first(_OID), first(_TID), first(_APPID) or first(("aud",))
    missing = [n for n, v in (("oid", oid), ("tid", tid), ("appid/azp/aud", appid))
               if v is None]
    if oid is None or tid is None or appid is None:
        raise _malformed(f"lacks the claims {missing}", {"missing": missing})
    if tid.lower() != tenant_id.lower():
        raise WrongTenantError(
            f"App Service Authentication admitted a caller from tenant {shown(tid)!r}; this API "
            f"trusts only tenant {tenant_id}. Set the issuer of App Service Authentication to "
            f"tenant {tenant_id}, or get the token from that tenant",
            expected={"tid": tenant_id}, received={"tid": shown(tid)})
    aud = first(("aud",))
    accepted = list(audiences)
    if aud is not None and not audience_matches(aud, accepted):
        raise WrongAudienceError(
            f"App Service Authentication admitted a token for audience {shown(aud)!r}; this API "
            f"accepts only {', '.join(accepted)}. Remove that audience from the allowed token "
            "audiences of App Service Authentication",
            expected={"aud": accepted}, received={"aud": shown(aud)})
    roles = tuple(dict.fromkeys(c["val"] for c in claims if c["typ"] in {role_typ, *_ROLES}))
    version = first(("ver",))
    iss = first(("iss",)) or ""
    if version not in ("1.0", "2.0"):
        version = "2.0" if iss.rstrip("/").endswith("v2.0") else "1.0"
    return Principal(
        oid=oid, appid=appid, tid=tid, roles=roles, token_version=version, source="easy-auth",
        name=first((name_typ, "name")), upn=first(_UPN),
    )
