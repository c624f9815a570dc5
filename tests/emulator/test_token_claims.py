"""Every claim of every kind of access token the emulator issues, compared with what Microsoft
documents for Entra v1.0 and v2.0 access tokens.

Sources: Entra docs, "Access token claims reference" (MicrosoftDocs/entra-docs,
docs/identity-platform/access-token-claims-reference.md: header and payload claims, which are
"only present in v1.0 tokens" or "only in v2.0 tokens", appidacr/azpacr values); "Optional claims
reference" (``idtyp``: optional, "only in app-only access tokens"); "Access tokens" (lifetime
"between 60-90 minutes"); MicrosoftDocs/azure-docs#96027 (``xms_mirid`` is "a first party only
optional claim"); shared reference §4 (managed-identity tokens: v1 example, 24 h 5 min).

Each kind of token is obtained the way a client obtains it (client credentials with a secret,
a certificate assertion or a federated assertion; a managed-identity endpoint; a user's
authorization code through the sign-in page), for a v1 and a v2 resource.
"""

from __future__ import annotations

import base64
import gc
import hashlib
import re
import secrets
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest

from tenantops.emulator.assertions import JWT_BEARER
from tenantops.emulator.directory import Directory, load_directory
from tenantops.emulator.server import EmulatorInfo, EmulatorServer
from tests.emulator.helpers import CertificateFiles, client_assertion, make_certificate

TENANT = "3b4c5d6e-7f80-4192-a3b4-c5d6e7f80912"
GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
ARM = "https://management.core.windows.net/"


@dataclass(frozen=True)
class Spec:
    """What the documentation says a kind of token carries."""

    present: frozenset[str]
    absent: frozenset[str]
    values: dict[str, object] = field(default_factory=dict)


# Payload claims "Claims used for access token validation are always present" plus those the
# reference lists for every token; aio and rh are opaque but emitted by Entra in every token.
ALWAYS = {"aud", "iss", "iat", "nbf", "exp", "aio", "oid", "sub", "tid", "uti", "rh", "ver"}
V1_ONLY = {"appid", "appidacr", "acr", "amr", "unique_name", "upn", "ipaddr", "onprem_sid",
           "pwd_exp", "pwd_url", "in_corp", "nickname", "family_name", "given_name"}
"""Claims "only present in v1.0 tokens", and the v1.0 basic claims "not v2.0 tokens by
default"."""
V2_ONLY = {"azp", "azpacr", "preferred_username"}
USER_ONLY = {"scp", "name", "preferred_username", "upn", "unique_name", "amr", "acr",
             "given_name", "family_name"}
"""scp: "Only included for user tokens"; name/upn/amr...: a user's; client credential flows
"are on behalf of applications that don't have names"."""


def spec(version: int, user: bool, acr: str) -> Spec:
    present = set(ALWAYS) | ({"appid", "appidacr"} if version == 1 else {"azp", "azpacr"})
    absent = V2_ONLY if version == 1 else set(V1_ONLY)
    if user:
        present |= {"scp", "name"} | ({"upn", "unique_name", "amr", "acr"} if version == 1
                                      else {"preferred_username"})
        absent = set(absent) | {"idtyp", "xms_mirid"}
    else:
        present.add("roles")
        absent = set(absent) | USER_ONLY | {"idtyp", "xms_mirid"}
        if version == 1:
            present.add("idp")
    values: dict[str, object] = {"ver": f"{version}.0",
                                 ("appidacr" if version == 1 else "azpacr"): acr}
    return Spec(frozenset(present), frozenset(absent - present), values)


@dataclass(frozen=True)
class World:
    server: EmulatorServer
    info: EmulatorInfo
    directory: Directory
    cert: CertificateFiles

    def client_id(self, name: str) -> str:
        principal = self.directory.app_by_name(name) or self.directory.identity_by_name(name)
        assert principal is not None
        return principal.client_id

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=f"{self.info.authority}/{self.info.tenant_id}",
                            verify=ssl.create_default_context(cafile=self.info.ca_bundle))

    def token_endpoint(self) -> str:
        return f"{self.info.authority}/{self.info.tenant_id}/oauth2/v2.0/token"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("claims")
    cert = make_certificate(folder, "client")
    toml = folder / "directory.toml"
    toml.write_text(f'''
tenant_id = "{TENANT}"
[[issuers]]
name = "ci"
[[apps]]
name = "api-v1"
identifier_uris = ["api://api-v1"]
access_token_accepted_version = 1
[[apps.app_roles]]
value = "Things.Read"
[[apps]]
name = "api-v2"
identifier_uris = ["api://api-v2"]
access_token_accepted_version = 2
[[apps.app_roles]]
value = "Things.Read"
[[apps]]
name = "api-idtyp"
identifier_uris = ["api://api-idtyp"]
optional_claims = ["idtyp"]
[[apps.app_roles]]
value = "Things.Read"
[[apps]]
name = "secret-client"
client_secrets = ["s3cret"]
[[apps]]
name = "cert-client"
[[apps.certificates]]
certificate_file = "client.crt.pem"
[[apps]]
name = "fed-client"
[[apps.federated_credentials]]
name = "ci-main"
issuer = "ci"
subject = "repo:contoso/app:ref:refs/heads/main"
[[apps]]
name = "web"
client_secrets = ["web-s3cret"]
redirect_uris = ["http://localhost/cb"]
[[apps]]
name = "cli"
public_client = true
redirect_uris = ["http://localhost"]
[[identities]]
name = "mi-job"
[[users]]
username = "ada@contoso.test"
display_name = "Ada"
password = "pw"
''' + "".join(
        f'[[assignments]]\nprincipal = "{who}"\nresource = "{api}"\nrole = "Things.Read"\n'
        for who in ("secret-client", "cert-client", "fed-client", "mi-job", "ada@contoso.test")
        for api in ("api-v1", "api-v2", "api-idtyp")), encoding="utf-8")
    directory = load_directory(toml)
    server = EmulatorServer(directory, folder / "data")
    info = server.start()
    yield World(server, info, directory, cert)
    gc.collect()  # close clients' pooled TLS connections, so the stop is quick
    server.stop()


def _client_credentials(world: World, scope: str, **form: str) -> str:
    with world.http() as http:
        response = http.post("/oauth2/v2.0/token", data={"grant_type": "client_credentials",
                                                         "scope": scope, **form})
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def secret_token(world: World, resource: str) -> str:
    return _client_credentials(world, f"{resource}/.default",
                               client_id=world.client_id("secret-client"), client_secret="s3cret")


def certificate_token(world: World, resource: str) -> str:
    client = world.client_id("cert-client")
    return _client_credentials(
        world, f"{resource}/.default", client_id=client, client_assertion_type=JWT_BEARER,
        client_assertion=client_assertion(world.cert, client, world.token_endpoint()))


def federated_token(world: World, resource: str) -> str:
    assertion = world.server.state.issuers.mint("ci", "repo:contoso/app:ref:refs/heads/main")
    return _client_credentials(world, f"{resource}/.default",
                               client_id=world.client_id("fed-client"),
                               client_assertion_type=JWT_BEARER, client_assertion=assertion)


def managed_identity_token(world: World, resource: str) -> str:
    secret = world.server.state.host_secret("mi-job")
    response = httpx.get(f"{world.info.mi_url}/imds/{secret}/metadata/identity/oauth2/token",
                         params={"api-version": "2018-02-01", "resource": resource},
                         headers={"Metadata": "true"})
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def _user_token(world: World, resource: str, client: str, redirect: str,
                secret: str | None) -> str:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    scope = f"{resource}/.default openid profile"
    with world.http() as http:
        page = http.get("/oauth2/v2.0/authorize", params={
            "client_id": world.client_id(client), "response_type": "code",
            "redirect_uri": redirect, "scope": scope, "code_challenge_method": "S256",
            "code_challenge": challenge.rstrip(b"=").decode()})
        hidden = dict(re.findall(r'type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
        signed_in = http.post("/oauth2/v2.0/authorize", data={
            **hidden, "username": "ada@contoso.test", "password": "pw"})
        code = parse_qs(urlsplit(signed_in.headers["location"]).query)["code"][0]
        form = {"grant_type": "authorization_code", "client_id": world.client_id(client),
                "code": code, "redirect_uri": redirect, "code_verifier": verifier,
                "scope": scope, **({"client_secret": secret} if secret else {})}
        response = http.post("/oauth2/v2.0/token", data=form)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def confidential_user_token(world: World, resource: str) -> str:
    return _user_token(world, resource, "web", "http://localhost/cb", "web-s3cret")


def public_user_token(world: World, resource: str) -> str:
    return _user_token(world, resource, "cli", "http://localhost", None)


@dataclass(frozen=True)
class Kind:
    name: str
    get: Callable[[World, str], str]
    user: bool
    acr: str
    lifetime: tuple[int, int]
    caller: str


HOUR = (3000, 5400)  # "a random value ranging between 60-90 minutes" (Entra docs, access tokens)
KINDS = [
    Kind("client-secret", secret_token, False, "1", HOUR, "secret-client"),
    Kind("certificate", certificate_token, False, "2", HOUR, "cert-client"),
    Kind("federated", federated_token, False, "2", HOUR, "fed-client"),
    # "24 h 5 min" observed (shared reference §4; microsoft-identity-web#1290)
    Kind("managed-identity", managed_identity_token, False, "2", (86000, 87000), "mi-job"),
    Kind("user-confidential-client", confidential_user_token, True, "1", HOUR, "web"),
    Kind("user-public-client", public_user_token, True, "0", HOUR, "cli"),
]


@pytest.mark.parametrize("version", [1, 2], ids=["v1", "v2"])
@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
def test_token_claims_are_the_documented_ones_for_its_kind_and_version(
    world: World, kind: Kind, version: int,
) -> None:
    api = world.directory.app_by_name(f"api-v{version}")
    assert api is not None
    requested = f"api://api-v{version}"
    token = kind.get(world, requested)
    header = jwt.get_unverified_header(token)
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    expected = spec(version, kind.user, kind.acr)

    # Header: typ JWT, alg RS256, kid; x5t (= kid) "emitted only in v1.0 access tokens".
    assert header["typ"] == "JWT"
    assert header["alg"] == "RS256"
    assert isinstance(header["kid"], str)
    assert (header.get("x5t") == header["kid"]) if version == 1 else ("x5t" not in header)

    missing = sorted(expected.present - set(claims))
    assert missing == [], f"{kind.name} v{version} lacks {missing}"
    unexpected = sorted(expected.absent & set(claims))
    assert unexpected == [], f"{kind.name} v{version} carries {unexpected}"
    undocumented = sorted(set(claims) - ALWAYS - V1_ONLY - V2_ONLY - USER_ONLY
                          - {"roles", "idp", "idtyp", "xms_mirid"})
    assert undocumented == []
    for name, value in expected.values.items():
        assert claims[name] == value, name

    # Shapes and values.
    base = f"{world.info.authority}/{TENANT}"
    assert claims["iss"] == (f"{base}/" if version == 1 else f"{base}/v2.0")
    assert claims["aud"] == (requested if version == 1 else api.client_id)
    assert claims["tid"] == TENANT
    assert all(isinstance(claims[t], int) for t in ("iat", "nbf", "exp"))
    assert claims["nbf"] <= claims["iat"] < claims["exp"]
    low, high = kind.lifetime
    assert low <= claims["exp"] - claims["iat"] <= high
    assert GUID.fullmatch(claims["oid"])
    assert isinstance(claims["uti"], str)
    assert claims["uti"]
    client = claims["appid"] if version == 1 else claims["azp"]
    assert client == world.client_id(kind.caller)
    if kind.user:
        assert isinstance(claims["scp"], str)
        assert claims["sub"] != claims["oid"]  # pairwise per application
        if version == 1:
            assert claims["amr"] == ["pwd"]
            assert claims["upn"] == claims["unique_name"] == "ada@contoso.test"
        else:
            assert claims["preferred_username"] == "ada@contoso.test"
        assert claims["roles"] == ["Things.Read"]  # "the assigned roles of the user"
    else:
        assert claims["sub"] == claims["oid"]  # an app's subject is its service principal
        assert claims["roles"] == ["Things.Read"]
        if version == 1:
            assert claims["idp"] == claims["iss"]


def test_idtyp_is_emitted_only_when_the_api_asks_for_it(world: World) -> None:
    """Optional claims reference: idtyp "The value is app when the token is an app-only
    token", "only in app-only access tokens"."""
    assert jwt.decode(secret_token(world, "api://api-idtyp"),
                      options={"verify_signature": False})["idtyp"] == "app"
    user = jwt.decode(confidential_user_token(world, "api://api-idtyp"),
                      options={"verify_signature": False})
    assert "idtyp" not in user


def test_a_managed_identity_token_for_a_microsoft_resource_carries_xms_mirid(
    world: World,
) -> None:
    """xms_mirid and idtyp are first-party optional claims Microsoft's resources receive."""
    claims = jwt.decode(managed_identity_token(world, ARM), options={"verify_signature": False})
    mi = world.directory.identity_by_name("mi-job")
    assert mi is not None
    assert claims["xms_mirid"] == mi.resource_id
    assert claims["idtyp"] == "app"
    assert claims["aud"] == ARM
    assert "roles" not in claims  # "Present only when an app role is assigned"

