"""Shared by tests/auth and tests/api: settings for an emulator, real tokens from it, forged
tokens, Easy Auth headers, and an in-process HTTP caller for the FastAPI app.

Real tokens come from the emulator over HTTP, exactly as a runbook or CI job gets them.
Forged tokens are signed in process, either with the emulator's own signing key (a token the
tenant "issued" with wrong claims) or with an attacker's key.
"""

from __future__ import annotations

import base64
import gc
import hashlib
import hmac
import json
import re
import ssl
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import anyio
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import Depends, FastAPI
from jwt.algorithms import RSAAlgorithm

from tenantops.api import create_app
from tenantops.api.deps import require_role
from tenantops.auth import Principal
from tenantops.config import AuthSettings, Settings
from tenantops.emulator.directory import API_CLIENT_ID, Directory, default_directory
from tenantops.emulator.server import EmulatorInfo, EmulatorServer

__all__ = [
    "API_CLIENT_ID",
    "ARM",
    "CI_CLIENT_ID",
    "CI_SECRET",
    "DROP",
    "OTHER_TENANT",
    "Api",
    "CountingTransport",
    "FakeClock",
    "FakeEntra",
    "Forge",
    "api_for",
    "attacker_key",
    "auth_settings",
    "b64url",
    "b64url_json",
    "client_credentials_token",
    "easy_auth_header",
    "foreign_directory",
    "foreign_emulator_server",
    "hs256_token",
    "mi_token",
    "parse_challenge",
    "public_jwk",
    "settings_for",
    "ssl_context",
    "unsigned_token",
    "v1_client_credentials_token",
]

OTHER_TENANT = "0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"
ARM = "https://management.core.windows.net/"
CI_CLIENT_ID = "4d3c2b1a-0f9e-4d8c-b7a6-5f4e3d2c1b0a"
CI_SECRET = "ci-local-secret"
DROP = object()
"""As a claim override: remove the claim."""

_CHALLENGE = re.compile(
    r'Bearer realm="tenantops"'
    r'(?:, error="(?P<error>[a-z_]+)", error_description="(?P<description>[ -!#-\[\]-~]*)")?'
    r', resource_id="(?P<resource_id>[^"]*)", authorization_uri="(?P<authorization_uri>[^"]*)"'
)


def parse_challenge(value: str) -> dict[str, str | None]:
    """The parts of a tenantops ``WWW-Authenticate`` value; fails the test if malformed."""
    assert value.isascii(), value
    match = _CHALLENGE.fullmatch(value)
    assert match is not None, f"malformed WWW-Authenticate: {value}"
    return match.groupdict()


def auth_settings(info: EmulatorInfo, **overrides: Any) -> AuthSettings:
    values: dict[str, Any] = {
        "authority": info.authority, "tenant_id": info.tenant_id, "client_id": API_CLIENT_ID,
        "ca_bundle": Path(info.ca_bundle),
    }
    values.update(overrides)
    return AuthSettings(**values)


def settings_for(info: EmulatorInfo, **overrides: Any) -> Settings:
    return Settings(auth=auth_settings(info, **overrides))


def ssl_context(info: EmulatorInfo) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=info.ca_bundle)


def mi_token(server: EmulatorServer, identity: str, resource: str) -> str:
    """A managed-identity token the way App Service hands it out (IDENTITY_ENDPOINT)."""
    mi = server.state.directory.identity_by_name(identity)
    assert mi is not None
    params = {"resource": resource, "api-version": "2019-08-01"}
    if mi.kind == "user":
        params["client_id"] = mi.client_id
    response = httpx.get(
        f"{server.info.mi_url}/msi/token", params=params,
        headers={"X-IDENTITY-HEADER": server.state.host_secret(identity)},
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def client_credentials_token(
    info: EmulatorInfo, scope: str, *, client_id: str = CI_CLIENT_ID, secret: str = CI_SECRET
) -> str:
    """client_credentials on the v2 token endpoint (scope ``<resource>/.default``)."""
    return _client_credentials(info, "oauth2/v2.0/token", client_id, secret, scope=scope)


def v1_client_credentials_token(
    info: EmulatorInfo, resource: str, *, client_id: str = CI_CLIENT_ID, secret: str = CI_SECRET
) -> str:
    """client_credentials on the v1 token endpoint (``resource``)."""
    return _client_credentials(info, "oauth2/token", client_id, secret, resource=resource)


def _client_credentials(info: EmulatorInfo, endpoint: str, client_id: str, secret: str,
                        **target: str) -> str:
    response = httpx.post(
        f"{info.authority}/{info.tenant_id}/{endpoint}",
        data={"grant_type": "client_credentials", "client_id": client_id,
              "client_secret": secret, **target},
        verify=ssl_context(info),
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_json(value: object) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def unsigned_token(header: Mapping[str, Any], claims: Mapping[str, Any],
                   signature: bytes = b"") -> str:
    return f"{b64url_json(dict(header))}.{b64url_json(dict(claims))}.{b64url(signature)}"


def hs256_token(header: Mapping[str, Any], claims: Mapping[str, Any], secret: bytes) -> str:
    """HMAC-signed by hand: PyJWT rightly refuses to use a public key as an HMAC secret."""
    signing_input = f"{b64url_json(dict(header))}.{b64url_json(dict(claims))}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


class Forge:
    """Builds claims like the emulator's v1 app tokens for the API, and signs them."""

    def __init__(self, server: EmulatorServer) -> None:
        self.server = server

    @property
    def kid(self) -> str:
        return self.server.state.keys.active().kid

    @property
    def private_key(self) -> rsa.RSAPrivateKey:
        return self.server.state.keys.active().private_key

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        identity = self.server.state.directory.identity_by_name("aa-onboarding")
        assert identity is not None
        claims: dict[str, Any] = {
            "aud": API_CLIENT_ID, "iss": self.server.state.tokens.issuer(1),
            "iat": now, "nbf": now, "exp": now + 3600, "tid": self.server.info.tenant_id,
            "oid": identity.principal_id, "sub": identity.principal_id,
            "appid": identity.client_id, "appidacr": "2", "idtyp": "app",
            "roles": ["Tenants.Read", "Tenants.Write"], "ver": "1.0",
        }
        for name, value in overrides.items():
            if value is DROP:
                claims.pop(name, None)
            else:
                claims[name] = value
        return claims

    def sign(
        self,
        claims: Mapping[str, Any],
        *,
        key: rsa.RSAPrivateKey | None = None,
        kid: str | None = None,
        headers: Mapping[str, Any] | None = None,
    ) -> str:
        all_headers: dict[str, Any] = {"typ": "JWT", "kid": kid or self.kid}
        all_headers.update(headers or {})
        return jwt.encode(dict(claims), key or self.private_key, algorithm="RS256",
                          headers=all_headers)

    def token(self, **overrides: Any) -> str:
        return self.sign(self.claims(**overrides))


def easy_auth_header(
    claims: Sequence[tuple[str, str]], *, role_typ: str = "roles", auth_typ: str = "aad"
) -> str:
    body = {
        "auth_typ": auth_typ,
        "claims": [{"typ": typ, "val": val} for typ, val in claims],
        "name_typ": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
        "role_typ": role_typ,
    }
    return base64.b64encode(json.dumps(body).encode()).decode("ascii")


def api_for(settings: Settings) -> FastAPI:
    """The API, plus two probe routes that need Tenants.Read / Tenants.Write (until the tenant
    routes of a later issue exist, they are how role checks are exercised over HTTP)."""
    app = create_app(settings)

    @app.get("/api/_probe/read")
    async def probe_read(
        principal: Annotated[Principal, Depends(require_role("Tenants.Read"))],
    ) -> dict[str, str]:
        return {"oid": principal.oid}

    @app.get("/api/_probe/write")
    async def probe_write(
        principal: Annotated[Principal, Depends(require_role("Tenants.Write"))],
    ) -> dict[str, str]:
        return {"oid": principal.oid}

    return app


HeaderList = Sequence[tuple[str, str | bytes]]


class Api:
    """Calls the FastAPI app over HTTP, in process (httpx ASGITransport)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def get(self, path: str, headers: HeaderList = ()) -> httpx.Response:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport,
                                         base_url="http://tenantops.test") as client:
                return await client.get(path, headers=raw)

        raw = [(name.encode("latin-1"), value if isinstance(value, bytes) else
                value.encode("latin-1")) for name, value in headers]

        return anyio.run(call)

    def bearer(self, token: str, path: str = "/api/whoami") -> httpx.Response:
        return self.get(path, [("Authorization", f"Bearer {token}")])


def foreign_directory() -> Directory:
    """The default directory moved to another tenant, its API set to v2 tokens."""
    base = default_directory()
    apps = [
        a.model_copy(update={"access_token_accepted_version": 2}) if a.name == "tenantops-api"
        else a
        for a in base.apps
    ]
    return base.model_copy(update={"tenant_id": OTHER_TENANT, "apps": apps})


@pytest.fixture(scope="session")
def foreign_emulator_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    """A second emulator: another tenant, other signing keys, and an API issuing v2 tokens."""
    server = EmulatorServer(foreign_directory(), tmp_path_factory.mktemp("foreign-emulator"))
    server.start()
    yield server
    gc.collect()
    server.stop()


@pytest.fixture(scope="session")
def attacker_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class CountingTransport(httpx.BaseTransport):
    """Passes requests to ``inner`` and records their paths (thread-safe)."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.paths: list[str] = []
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.paths.append(request.url.path)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()

    def jwks_fetches(self) -> int:
        return sum(1 for p in self.paths if p.endswith("/keys"))


def public_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid=kid, use="sig")
    return jwk


class FakeEntra:
    """Entra ID's discovery documents and JWKS for one tenant, shaped as login.microsoftonline.com
    serves them (v1 issuer on sts.windows.net). Real Entra cannot run offline; this serves the
    documents in process through the validator's transport seam."""

    authority = "https://login.microsoftonline.com"

    def __init__(self, tenant: str, keys: Mapping[str, rsa.RSAPrivateKey]) -> None:
        self.tenant = tenant
        self.keys = dict(keys)
        self.v1_jwks: list[dict[str, Any]] | None = None
        self.v2_jwks: list[dict[str, Any]] | None = None
        self.status = 200
        self.transport = CountingTransport(httpx.MockTransport(self._handle))

    @property
    def v1_issuer(self) -> str:
        return f"https://sts.windows.net/{self.tenant}/"

    @property
    def v2_issuer(self) -> str:
        return f"{self.authority}/{self.tenant}/v2.0"

    def _handle(self, request: httpx.Request) -> httpx.Response:
        base = f"/{self.tenant}"
        keys = [public_jwk(k, kid) for kid, k in self.keys.items()]
        documents: dict[str, object] = {
            f"{base}/.well-known/openid-configuration": {
                "issuer": self.v1_issuer,
                "jwks_uri": f"{self.authority}{base}/discovery/keys"},
            f"{base}/v2.0/.well-known/openid-configuration": {
                "issuer": self.v2_issuer,
                "jwks_uri": f"{self.authority}{base}/discovery/v2.0/keys"},
            f"{base}/discovery/keys": {"keys": self.v1_jwks if self.v1_jwks is not None
                                       else keys},
            f"{base}/discovery/v2.0/keys": {"keys": self.v2_jwks if self.v2_jwks is not None
                                            else keys},
        }
        if self.status != 200:
            return httpx.Response(self.status, text="unavailable")
        body = documents.get(request.url.path)
        if body is None:
            return httpx.Response(404, json={"error": "not found"})
        return httpx.Response(200, json=body)

    def settings(self, **overrides: Any) -> AuthSettings:
        values: dict[str, Any] = {"authority": self.authority, "tenant_id": self.tenant,
                                  "client_id": API_CLIENT_ID}
        values.update(overrides)
        return AuthSettings(**values)

    def claims(self, now: float, **overrides: Any) -> dict[str, Any]:
        claims: dict[str, Any] = {
            "aud": f"api://{API_CLIENT_ID}", "iss": self.v1_issuer, "iat": int(now),
            "nbf": int(now), "exp": int(now) + 3600, "tid": self.tenant,
            "oid": "0a1b2c3d-0000-4000-8000-000000000001",
            "appid": "0a1b2c3d-0000-4000-8000-000000000002", "roles": ["Tenants.Read"],
            "ver": "1.0",
        }
        for name, value in overrides.items():
            if value is DROP:
                claims.pop(name, None)
            else:
                claims[name] = value
        return claims

    def sign(self, claims: Mapping[str, Any], kid: str) -> str:
        return jwt.encode(dict(claims), self.keys[kid], algorithm="RS256",
                          headers={"kid": kid, "typ": "JWT"})
