"""The attack catalogue: every token or header here must be refused, over HTTP, with a 401 or
403 whose WWW-Authenticate challenge and JSON body name what was wrong; never a 2xx, never a
5xx, and the token is never echoed back.

Forged tokens are signed with the tenant's real key (a token the tenant "issued" with wrong
claims), with an attacker's key, or not at all; real ones come from the emulator over HTTP.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tenantops.emulator.server import EmulatorServer
from tests.auth.support import (
    API_CLIENT_ID,
    ARM,
    DROP,
    OTHER_TENANT,
    Api,
    Forge,
    api_for,
    b64url,
    b64url_json,
    hs256_token,
    mi_token,
    parse_challenge,
    settings_for,
    unsigned_token,
)

HeaderList = list[tuple[str, str | bytes]]


@dataclass(frozen=True)
class Kit:
    server: EmulatorServer
    foreign: EmulatorServer
    forge: Forge
    attacker: rsa.RSAPrivateKey

    @property
    def tenant(self) -> str:
        return self.server.info.tenant_id

    @property
    def authority(self) -> str:
        return self.server.info.authority

    def public_pem(self) -> bytes:
        return self.forge.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def attacker_jwk(self) -> dict[str, object]:
        jwk: dict[str, object] = json.loads(RSAAlgorithm.to_jwk(self.attacker.public_key()))
        jwk["kid"] = "attacker-kid"
        return jwk


def _nothing(kit: Kit) -> Sequence[str]:
    return ()


@dataclass(frozen=True)
class Attack:
    id: str
    authorization: Callable[[Kit], HeaderList]
    status: int = 401
    error: str | None = "invalid_token"
    says: Callable[[Kit], Sequence[str]] = field(default=_nothing)
    path: str = "/api/whoami"


def bearer(token: str) -> HeaderList:
    return [("Authorization", f"Bearer {token}")]


def raw(value: str | bytes) -> Callable[[Kit], HeaderList]:
    return lambda kit: [("Authorization", value)]


def tampered_roles(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["roles"] = ["Tenants.Read", "Tenants.Write", "Tenants.Delete"]
    return f"{header}.{b64url_json(claims)}.{signature}"


def embedded_key_attack(header: str, kid_of: str) -> Attack:
    """The attacker's key advertised in ``header``; the token must still be refused."""

    def build(kit: Kit) -> HeaderList:
        pointer: object = {
            "jku": "https://attacker.example/keys.json",
            "x5u": "https://attacker.example/cert.pem",
            "jwk": kit.attacker_jwk(),
            "x5c": [base64.b64encode(kit.public_pem()).decode()],
        }[header]
        kid = "attacker-kid" if kid_of == "attacker" else kit.forge.kid
        return bearer(kit.forge.sign(kit.forge.claims(), key=kit.attacker, kid=kid,
                                     headers={header: pointer}))

    says: Callable[[Kit], Sequence[str]] = (
        (lambda kit: ["kid='attacker-kid'", "does not publish"]) if kid_of == "attacker"
        else (lambda kit: ["signature does not verify"]))
    return Attack(f"{header}-header-attacker-key-with-{kid_of}-kid", build, says=says)


def _now() -> int:
    return int(time.time())


_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def respelled_signature(token: str) -> str:
    """The same signature bytes spelled another way: the last character's unused low bits
    set (a 256-byte signature leaves 4 of them), which a lenient decoder ignores."""
    head, _, signature = token.rpartition(".")
    last = _ALPHABET[_ALPHABET.index(signature[-1]) | 1]
    return f"{head}.{signature[:-1]}{last}"


ATTACKS: list[Attack] = [
    Attack("no-credentials", lambda kit: [], error=None),
    Attack(
        "alg-none",
        lambda kit: bearer(unsigned_token({"alg": "none", "typ": "JWT", "kid": kit.forge.kid},
                                          kit.forge.claims())),
        says=lambda kit: ["alg 'none'", "only RS256"]),
    Attack(
        "alg-none-mixed-case-with-signature",
        lambda kit: bearer(unsigned_token({"alg": "NoNe", "kid": kit.forge.kid},
                                          kit.forge.claims(), b"sig")),
        says=lambda kit: ["alg 'NoNe'"]),
    Attack(
        "alg-missing",
        lambda kit: bearer(unsigned_token({"typ": "JWT", "kid": kit.forge.kid},
                                          kit.forge.claims(), b"sig")),
        says=lambda kit: ["alg None", "only RS256"]),
    Attack(
        "hs256-signed-with-the-tenant-public-key",
        lambda kit: bearer(hs256_token({"alg": "HS256", "typ": "JWT", "kid": kit.forge.kid},
                                       kit.forge.claims(), kit.public_pem())),
        says=lambda kit: ["alg 'HS256'", "only RS256"]),
    Attack(
        "rs256-header-with-hmac-signature",
        lambda kit: bearer(hs256_token({"alg": "RS256", "typ": "JWT", "kid": kit.forge.kid},
                                       kit.forge.claims(), kit.public_pem())),
        says=lambda kit: ["signature does not verify"]),
    Attack(
        "unknown-kid",
        lambda kit: bearer(kit.forge.sign(kit.forge.claims(), key=kit.attacker,
                                          kid="attacker-kid")),
        says=lambda kit: ["kid='attacker-kid'", "does not publish", kit.forge.kid]),
    Attack(
        "missing-kid",
        lambda kit: bearer(unsigned_token({"alg": "RS256", "typ": "JWT"}, kit.forge.claims(),
                                          b"sig")),
        says=lambda kit: ["no 'kid'"]),
    Attack(
        "real-token-of-another-tenant",
        lambda kit: bearer(mi_token(kit.foreign, "aa-onboarding", API_CLIENT_ID)),
        says=lambda kit: [kit.foreign.state.keys.active().kid, "does not publish",
                          f"not by tenant {kit.tenant}"]),
    Attack(
        "key-of-another-tenant-with-our-claims",
        lambda kit: bearer(kit.forge.sign(
            kit.forge.claims(), key=kit.foreign.state.keys.active().private_key,
            kid=kit.foreign.state.keys.active().kid)),
        says=lambda kit: [kit.foreign.state.keys.active().kid, "does not publish"]),
    Attack(
        "key-of-another-tenant-under-our-kid",
        lambda kit: bearer(kit.forge.sign(
            kit.forge.claims(), key=kit.foreign.state.keys.active().private_key)),
        says=lambda kit: ["signature does not verify", "altered"]),
    Attack(
        "tampered-payload-adds-roles",
        lambda kit: bearer(tampered_roles(mi_token(kit.server, "uami-reader", API_CLIENT_ID))),
        says=lambda kit: ["signature does not verify"], path="/api/_probe/write"),
    Attack(
        "expired",
        lambda kit: bearer(kit.forge.token(exp=_now() - 3600, nbf=_now() - 7200,
                                           iat=_now() - 7200)),
        says=lambda kit: ["expired at", "Get a new token"]),
    Attack(
        "expired-just-beyond-the-leeway",
        lambda kit: bearer(kit.forge.token(exp=_now() - 75)),
        says=lambda kit: ["expired at", "leeway 60 s"]),
    Attack(
        "not-yet-valid",
        lambda kit: bearer(kit.forge.token(nbf=_now() + 3600)),
        says=lambda kit: ["not valid before", "clocks"]),
    Attack(
        "wrong-issuer",
        lambda kit: bearer(kit.forge.token(iss=f"https://evil.example.com/{kit.tenant}/")),
        says=lambda kit: ["issuer is 'https://evil.example.com/",
                          f"'{kit.authority}/{kit.tenant}/' (v1 tokens)",
                          f"'{kit.authority}/{kit.tenant}/v2.0' (v2 tokens)"]),
    Attack(
        "v1-issuer-of-another-tenant",
        lambda kit: bearer(kit.forge.token(iss=f"{kit.authority}/{OTHER_TENANT}/",
                                           tid=OTHER_TENANT)),
        says=lambda kit: [f"issued by tenant {OTHER_TENANT}, not {kit.tenant}"]),
    Attack(
        "v2-issuer-of-another-tenant",
        lambda kit: bearer(kit.forge.token(iss=f"{kit.authority}/{OTHER_TENANT}/v2.0",
                                           tid=OTHER_TENANT, ver="2.0")),
        says=lambda kit: [f"issued by tenant {OTHER_TENANT}, not {kit.tenant}"]),
    Attack(
        "entra-v1-issuer-of-another-tenant",
        lambda kit: bearer(kit.forge.token(iss=f"https://sts.windows.net/{OTHER_TENANT}/",
                                           tid=OTHER_TENANT)),
        says=lambda kit: [f"https://sts.windows.net/{OTHER_TENANT}/"]),
    Attack(
        "entra-v2-issuer-of-another-tenant",
        lambda kit: bearer(kit.forge.token(
            iss=f"https://login.microsoftonline.com/{OTHER_TENANT}/v2.0", tid=OTHER_TENANT)),
        says=lambda kit: [f"https://login.microsoftonline.com/{OTHER_TENANT}/v2.0"]),
    Attack(
        "our-issuer-but-another-tenant-id",
        lambda kit: bearer(kit.forge.token(tid=OTHER_TENANT)),
        says=lambda kit: [f"for tenant '{OTHER_TENANT}'", f"only tenant {kit.tenant}"]),
    Attack(
        "arm-audience-from-a-managed-identity",
        lambda kit: bearer(mi_token(kit.server, "aa-onboarding", ARM)),
        says=lambda kit: [
            f"audience is '{ARM}'", f"'{API_CLIENT_ID}', 'api://{API_CLIENT_ID}'",
            "Azure Resource Manager", f"resource={API_CLIENT_ID}",
            f"az account get-access-token --resource {API_CLIENT_ID}",
            f"IDENTITY_ENDPOINT?resource={API_CLIENT_ID}&api-version=2019-08-01"]),
    Attack(
        "key-vault-audience",
        lambda kit: bearer(mi_token(kit.server, "aa-onboarding", "https://vault.azure.net")),
        says=lambda kit: ["audience is 'https://vault.azure.net'", f"resource={API_CLIENT_ID}"]),
    Attack(
        "iat-in-the-future",
        lambda kit: bearer(kit.forge.token(iat=_now() + 3600, nbf=_now(), exp=_now() + 7200)),
        says=lambda kit: ["says it was issued at", "a clock is wrong"]),
    Attack(
        "lifetime-longer-than-entra-issues",
        lambda kit: bearer(kit.forge.token(iat=_now() - 60, nbf=_now() - 60,
                                           exp=_now() + 365 * 86400)),
        says=lambda kit: ["the token lives", "auth.max_token_lifetime_seconds"]),
    Attack(
        "missing-iat",
        lambda kit: bearer(kit.forge.token(iat=DROP)), says=lambda kit: ["no 'iat' claim"]),
    Attack(
        "audience-api-uri-with-two-trailing-slashes",
        lambda kit: bearer(kit.forge.token(aud=f"api://{API_CLIENT_ID}//")),
        says=lambda kit: [f"audience is 'api://{API_CLIENT_ID}//'"]),
    Attack(
        "audience-client-id-with-a-trailing-slash",
        lambda kit: bearer(kit.forge.token(aud=f"{API_CLIENT_ID}/")),
        says=lambda kit: [f"audience is '{API_CLIENT_ID}/'"]),
    Attack(
        "audience-api-uri-with-default-scope",
        lambda kit: bearer(kit.forge.token(aud=f"api://{API_CLIENT_ID}/.default")),
        says=lambda kit: ["/.default'"]),
    Attack(
        "audience-client-id-with-surrounding-space",
        lambda kit: bearer(kit.forge.token(aud=f" {API_CLIENT_ID} ")),
        says=lambda kit: ["but this API accepts only"]),
    Attack(
        "microsoft-graph-audience",
        lambda kit: bearer(mi_token(kit.server, "aa-onboarding", "https://graph.microsoft.com")),
        says=lambda kit: ["the audience of Microsoft Graph"]),
    Attack(
        "workload-identity-token-exchange-audience",
        lambda kit: bearer(kit.forge.token(aud="api://AzureADTokenExchange")),
        says=lambda kit: ["Entra workload identity federation"]),
    Attack(
        "several-audiences",
        lambda kit: bearer(kit.forge.token(aud=[API_CLIENT_ID, ARM])),
        says=lambda kit: ["a list of 2", "exactly one audience"]),
    Attack(
        "audience-as-a-list-of-one",
        lambda kit: bearer(kit.forge.token(aud=[API_CLIENT_ID])),
        says=lambda kit: ["a list of 1", "exactly one audience"]),
    Attack(
        "missing-roles",
        lambda kit: bearer(mi_token(kit.server, "uami-no-role", API_CLIENT_ID)),
        status=403, error="insufficient_scope", path="/api/_probe/write",
        says=lambda kit: ["GET /api/_probe/write needs the app role Tenants.Write",
                          "holds roles: none", "app role assignment"]),
    Attack(
        "reader-calls-a-write-route",
        lambda kit: bearer(mi_token(kit.server, "uami-reader", API_CLIENT_ID)),
        status=403, error="insufficient_scope", path="/api/_probe/write",
        says=lambda kit: ["Tenants.Write", "holds roles: Tenants.Read", "appRoleAssignments"]),
    Attack(
        "roles-as-a-string",
        lambda kit: bearer(kit.forge.token(roles="Tenants.Write")),
        path="/api/_probe/write",
        says=lambda kit: ["'roles' claim is a string", "not a JSON list of strings"]),
    Attack(
        "roles-with-non-strings",
        lambda kit: bearer(kit.forge.token(roles=["Tenants.Write", 7, {"x": 1}])),
        path="/api/_probe/write", says=lambda kit: ["not a JSON list of strings"]),
    Attack(
        "missing-oid",
        lambda kit: bearer(kit.forge.token(oid=DROP)), says=lambda kit: ["no 'oid' claim"]),
    Attack(
        "missing-exp",
        lambda kit: bearer(kit.forge.token(exp=DROP)), says=lambda kit: ["no 'exp' claim"]),
    Attack(
        "exp-as-a-string",
        lambda kit: bearer(kit.forge.token(exp="never")),
        says=lambda kit: ["'exp' claim is a string"]),
    Attack(
        "missing-appid-and-azp",
        lambda kit: bearer(kit.forge.token(appid=DROP)), says=lambda kit: ["no 'appid' claim"]),
    *(embedded_key_attack(header, kid_of)
      for header in ("jku", "x5u", "jwk", "x5c") for kid_of in ("attacker", "tenant")),
    Attack(
        "megabyte-token",
        raw("Bearer " + "A" * (1 << 20)), says=lambda kit: ["bytes", "refused unread"]),
    Attack(
        "megabyte-jwt-shaped-token",
        lambda kit: bearer(f"{b64url_json({'alg': 'RS256', 'kid': kit.forge.kid})}."
                           f"{'A' * (1 << 20)}.{b64url(b'sig')}"),
        says=lambda kit: ["refused unread"]),
    Attack(
        "one-byte-over-the-cap",
        lambda kit: bearer("A" * (16 * 1024 + 1)), says=lambda kit: ["16385 bytes"]),
    Attack("garbage-empty-header", raw(""), says=lambda kit: ["scheme '(empty)'"]),
    Attack("garbage-bearer-without-token", raw("Bearer"), says=lambda kit: ["carries no token"]),
    Attack("garbage-bearer-and-spaces", raw("Bearer    "),
           says=lambda kit: ["carries no token"]),
    Attack("garbage-basic-credentials", raw("Basic dXNlcjpwYXNzd29yZA=="),
           says=lambda kit: ["scheme 'Basic'", "Authorization: Bearer <access token>"]),
    Attack("garbage-unknown-scheme", raw("Token abc.def.ghi"), says=lambda kit: ["'Token'"]),
    Attack("garbage-two-values", raw("Bearer abc def"), says=lambda kit: ["several values"]),
    Attack("garbage-one-segment", raw("Bearer abcdef"),
           says=lambda kit: ["1 dot-separated segments"]),
    Attack("garbage-two-segments", raw("Bearer abc.def"),
           says=lambda kit: ["2 dot-separated segments"]),
    Attack("garbage-empty-segments", raw("Bearer .."),
           says=lambda kit: ["header is not base64url"]),
    Attack("garbage-jwe-five-segments", raw("Bearer a.b.c.d.e"),
           says=lambda kit: ["a JWE: encrypted tokens are not accepted"]),
    Attack("garbage-not-base64url", raw("Bearer !!!.###.$$$"),
           says=lambda kit: ["header is not base64url"]),
    Attack("garbage-header-is-a-json-array",
           lambda kit: bearer(f"{b64url_json([])}.{b64url_json({})}.{b64url(b'x')}"),
           says=lambda kit: ["header is not base64url"]),
    Attack("garbage-deeply-nested-header",
           lambda kit: bearer(f"{b64url(b'[' * 3000 + b']' * 3000)}.e30.{b64url(b'x')}"),
           says=lambda kit: ["header is not base64url"]),
    Attack("garbage-non-ascii-bytes", raw(b"Bearer \xff\xfe\xfd"),
           says=lambda kit: ["segments"]),
    Attack("garbage-payload-after-a-good-header",
           lambda kit: bearer(f"{b64url_json({'alg': 'RS256', 'kid': kit.forge.kid})}"
                              f".!!!.{b64url(b'x')}"),
           says=lambda kit: ["cannot be decoded"]),
    Attack("signature-spelled-another-way",
           lambda kit: bearer(respelled_signature(kit.forge.token())),
           says=lambda kit: ["signature is not canonical"]),
    Attack("padded-signature",
           lambda kit: bearer(kit.forge.token() + "=="),
           says=lambda kit: ["signature is not canonical, unpadded base64url"]),
    Attack("critical-header-extension",
           lambda kit: bearer(kit.forge.sign(kit.forge.claims(), headers={
               "crit": ["x-tenantops"], "x-tenantops": True})),
           says=lambda kit: ["critical extensions ('crit')"]),
    Attack("unencoded-payload-header",
           lambda kit: bearer(unsigned_token({"alg": "RS256", "kid": kit.forge.kid,
                                              "b64": False}, kit.forge.claims(), b"sig")),
           says=lambda kit: ["unencoded payload ('b64')"]),
    Attack("garbage-two-authorization-headers",
           lambda kit: bearer(kit.forge.token()) + bearer(kit.forge.token()),
           says=lambda kit: ["2 Authorization headers"]),
]


@pytest.fixture(scope="module")
def kit(
    emulator_server: EmulatorServer, foreign_emulator_server: EmulatorServer,
    attacker_key: rsa.RSAPrivateKey,
) -> Kit:
    return Kit(emulator_server, foreign_emulator_server, Forge(emulator_server), attacker_key)


@pytest.fixture(scope="module")
def api(emulator_server: EmulatorServer) -> Iterator[Api]:
    app = api_for(settings_for(emulator_server.info))
    yield Api(app)
    app.state.authenticator.validator.jwks.close()


def _attempt(api: Api, kit: Kit, attack: Attack) -> tuple[HeaderList, httpx.Response]:
    headers = attack.authorization(kit)
    return headers, api.get(attack.path, headers)


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.id for a in ATTACKS])
def test_attack_is_refused_with_the_reason_named(api: Api, kit: Kit, attack: Attack) -> None:
    headers, response = _attempt(api, kit, attack)

    assert response.status_code == attack.status, response.text
    challenge = parse_challenge(response.headers["www-authenticate"])
    assert challenge["error"] == attack.error
    assert challenge["resource_id"] == API_CLIENT_ID
    assert challenge["authorization_uri"] == f"{kit.authority}/{kit.tenant}/oauth2/authorize"
    body = response.json()
    assert body["error"] == (attack.error or "missing_token")
    assert body["expected"]
    assert isinstance(body["received"], dict)
    description = body["error_description"]
    if attack.error is not None:
        assert challenge["description"] == description
    for fragment in attack.says(kit):
        assert fragment in description, f"{fragment!r} not in {description!r}"
    for _, value in headers:
        credential = value.decode("latin-1") if isinstance(value, bytes) else value
        secret_part = credential.partition(" ")[2].strip()
        if len(secret_part) >= 16:
            assert secret_part not in response.text
            assert secret_part not in response.headers["www-authenticate"]


def test_no_attack_is_accepted_and_none_causes_a_server_error(api: Api, kit: Kit) -> None:
    outcomes = {attack.id: _attempt(api, kit, attack)[1].status_code for attack in ATTACKS}

    accepted = {name: status for name, status in outcomes.items() if status < 400}
    server_errors = {name: status for name, status in outcomes.items() if status >= 500}
    assert accepted == {}
    assert server_errors == {}
    assert len(outcomes) == len(ATTACKS) >= 50
