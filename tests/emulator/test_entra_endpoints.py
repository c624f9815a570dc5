"""Entra-shaped endpoints: discovery, JWKS, token endpoints (v1, v2), sign-in with PKCE."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import ssl
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tenantops.emulator.directory import API_CLIENT_ID, Directory, load_directory
from tenantops.emulator.server import EmulatorInfo, EmulatorServer
from tests.emulator.helpers import claims_of

CI_SECRET = "ci-local-secret"


@pytest.fixture
def http(emulator: EmulatorInfo) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{emulator.authority}/{emulator.tenant_id}",
                      verify=ssl.create_default_context(cafile=emulator.ca_bundle)) as client:
        yield client


def ci_client_id(directory: Directory) -> str:
    app = directory.app_by_name("ci-pipeline")
    assert app is not None
    return app.client_id


def test_discovery_documents_point_at_the_emulator(
    http: httpx.Client, emulator: EmulatorInfo
) -> None:
    base = f"{emulator.authority}/{emulator.tenant_id}"
    v2 = http.get("/v2.0/.well-known/openid-configuration").json()
    assert v2["issuer"] == f"{base}/v2.0"
    assert v2["token_endpoint"] == f"{base}/oauth2/v2.0/token"
    assert v2["jwks_uri"] == f"{base}/discovery/v2.0/keys"
    v1 = http.get("/.well-known/openid-configuration").json()
    assert v1["issuer"] == f"{base}/"
    assert v1["jwks_uri"] == f"{base}/discovery/keys"


def test_jwks_publishes_rsa_keys_with_kid_matching_tokens(
    http: httpx.Client, directory: Directory
) -> None:
    keys = http.get("/discovery/v2.0/keys").json()["keys"]
    assert {k["kty"] for k in keys} == {"RSA"}
    response = http.post("/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": ci_client_id(directory),
        "client_secret": CI_SECRET, "scope": f"api://{API_CLIENT_ID}/.default"})
    header = response.json()["access_token"].split(".")[0]
    kid = httpx.Response(200, content=base64.urlsafe_b64decode(header + "==")).json()["kid"]
    assert kid in {k["kid"] for k in keys}


def test_v1_token_endpoint_uses_resource_and_returns_string_times(
    http: httpx.Client, directory: Directory
) -> None:
    response = http.post("/oauth2/token", data={
        "grant_type": "client_credentials", "client_id": ci_client_id(directory),
        "client_secret": CI_SECRET, "resource": API_CLIENT_ID})
    assert response.status_code == 200
    body = response.json()
    assert isinstance(body["expires_on"], str)
    assert claims_of(body["access_token"])["aud"] == API_CLIENT_ID


@pytest.mark.parametrize(
    ("form", "status", "error", "code"),
    [
        ({"client_secret": "wrong"}, 401, "invalid_client", 7000215),
        ({"scope": f"api://{API_CLIENT_ID}/Tenants.Write"}, 400, "invalid_scope", 1002012),
        ({"scope": "api://nonexistent/.default"}, 400, "invalid_resource", 500011),
        ({"client_id": "00000000-0000-0000-0000-00000000dead"}, 400, "unauthorized_client",
         700016),
        ({"grant_type": "password"}, 400, "unsupported_grant_type", 70003),
    ],
    ids=["bad-secret", "scope-without-default", "unknown-resource", "unknown-client",
         "unsupported-grant"],
)
def test_token_endpoint_refusals_carry_aadsts_codes(
    http: httpx.Client, directory: Directory, form: dict[str, str], status: int, error: str,
    code: int,
) -> None:
    data = {"grant_type": "client_credentials", "client_id": ci_client_id(directory),
            "client_secret": CI_SECRET, "scope": f"api://{API_CLIENT_ID}/.default", **form}
    response = http.post("/oauth2/v2.0/token", data=data)
    assert response.status_code == status
    body = response.json()
    assert body["error"] == error
    assert body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}: ")


def test_unknown_tenant_is_aadsts90002(emulator: EmulatorInfo) -> None:
    response = httpx.get(f"{emulator.authority}/contoso.onmicrosoft.com/v2.0/"
                         ".well-known/openid-configuration",
                         verify=ssl.create_default_context(cafile=emulator.ca_bundle))
    assert response.status_code == 400
    assert response.json()["error_codes"] == [90002]


def test_v2_resource_app_gets_v2_token_with_guid_audience(tmp_path: Path) -> None:
    toml = tmp_path / "directory.toml"
    toml.write_text(
        'tenant_id = "0e9d8c7b-6a5f-4e3d-2c1b-0a9f8e7d6c5b"\n'
        '[[apps]]\nname = "v2-api"\nidentifier_uris = ["api://v2-api"]\n'
        "access_token_accepted_version = 2\n"
        '[[apps.app_roles]]\nvalue = "Things.Read"\n'
        '[[apps]]\nname = "caller"\nclient_secrets = ["s3cret-value"]\n'
        '[[assignments]]\nprincipal = "caller"\nresource = "v2-api"\nrole = "Things.Read"\n',
        encoding="utf-8",
    )
    directory = load_directory(toml)
    caller = directory.app_by_name("caller")
    api = directory.app_by_name("v2-api")
    assert caller is not None
    assert api is not None
    with EmulatorServer(directory, tmp_path / "data") as info:
        response = httpx.post(
            f"{info.authority}/{info.tenant_id}/oauth2/v2.0/token",
            verify=ssl.create_default_context(cafile=info.ca_bundle),
            data={"grant_type": "client_credentials", "client_id": caller.client_id,
                  "client_secret": "s3cret-value", "scope": "api://v2-api/.default"})
    claims = claims_of(response.json()["access_token"])
    assert claims["ver"] == "2.0"
    assert claims["aud"] == api.client_id  # v2: always the GUID, whatever was requested
    assert claims["iss"] == f"{info.authority}/{info.tenant_id}/v2.0"
    assert claims["azp"] == caller.client_id
    assert claims["azpacr"] == "1"
    assert "appid" not in claims
    assert claims["roles"] == ["Things.Read"]


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def sign_in(http: httpx.Client, client_id: str, username: str, password: str,
            redirect_uri: str, challenge: str, scope: str) -> httpx.Response:
    params = {"client_id": client_id, "response_type": "code", "redirect_uri": redirect_uri,
              "scope": scope, "state": "xyz", "code_challenge": challenge,
              "code_challenge_method": "S256", "nonce": "n-0S6"}
    page = http.get("/oauth2/v2.0/authorize", params=params)
    assert page.status_code == 200
    assert '<label for="username">' in page.text
    hidden = dict(re.findall(r'type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
    return http.post("/oauth2/v2.0/authorize", data={**hidden, "username": username,
                                                      "password": password})


def test_authorization_code_with_pkce_and_refresh_token(http: httpx.Client,
                                                        directory: Directory) -> None:
    cli = directory.app_by_name("tenantops-cli")
    assert cli is not None
    verifier, challenge = pkce()
    redirect = "http://127.0.0.1:53117/callback"  # loopback: any port matches
    scope = f"api://{API_CLIENT_ID}/.default openid offline_access"
    response = sign_in(http, cli.client_id, "operator@contoso.test", "operator",
                       "http://127.0.0.1:53117", challenge, scope)
    assert response.status_code == 302, response.text
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["state"] == ["xyz"]
    del redirect
    form = {"grant_type": "authorization_code", "client_id": cli.client_id,
            "code": query["code"][0], "redirect_uri": "http://127.0.0.1:53117",
            "code_verifier": verifier, "scope": scope}
    tokens = http.post("/oauth2/v2.0/token", data=form).json()
    access = claims_of(tokens["access_token"])
    assert access["upn"] == "operator@contoso.test"
    assert access["roles"] == ["Tenants.Read", "Tenants.Write", "Tenants.Delete",
                              "Audit.Read"]
    assert access["scp"] == "user_impersonation"
    assert claims_of(tokens["id_token"])["nonce"] == "n-0S6"
    # A code works once.
    again = http.post("/oauth2/v2.0/token", data=form)
    assert again.json()["error_codes"] == [70008]
    refreshed = http.post("/oauth2/v2.0/token", data={
        "grant_type": "refresh_token", "client_id": cli.client_id,
        "refresh_token": tokens["refresh_token"], "scope": scope}).json()
    assert claims_of(refreshed["access_token"])["oid"] == access["oid"]
    assert refreshed["refresh_token"] != tokens["refresh_token"]


def test_pkce_verifier_mismatch_is_aadsts50148(http: httpx.Client, directory: Directory) -> None:
    cli = directory.app_by_name("tenantops-cli")
    assert cli is not None
    _, challenge = pkce()
    response = sign_in(http, cli.client_id, "reader@contoso.test", "reader",
                       "http://localhost", challenge, f"{API_CLIENT_ID}/.default")
    code = parse_qs(urlsplit(response.headers["location"]).query)["code"][0]
    result = http.post("/oauth2/v2.0/token", data={
        "grant_type": "authorization_code", "client_id": cli.client_id, "code": code,
        "redirect_uri": "http://localhost", "code_verifier": "not-the-verifier"})
    assert result.status_code == 400
    assert result.json()["error_codes"] == [50148]


def test_wrong_password_shows_aadsts50126_on_the_page(
    http: httpx.Client, directory: Directory
) -> None:
    cli = directory.app_by_name("tenantops-cli")
    assert cli is not None
    _, challenge = pkce()
    response = sign_in(http, cli.client_id, "operator@contoso.test", "wrong",
                       "http://localhost", challenge, "openid")
    assert response.status_code == 200
    assert 'role="alert"' in response.text
    assert "AADSTS50126" in response.text


def test_unregistered_redirect_uri_is_refused_with_aadsts50011(
    http: httpx.Client, directory: Directory
) -> None:
    cli = directory.app_by_name("tenantops-cli")
    assert cli is not None
    response = http.get("/oauth2/v2.0/authorize", params={
        "client_id": cli.client_id, "response_type": "code", "scope": "openid",
        "redirect_uri": "https://evil.example/callback", "code_challenge": "x"})
    assert response.status_code == 400
    assert "AADSTS50011" in response.text
    assert "location" not in response.headers


def test_public_client_without_pkce_is_refused(http: httpx.Client, directory: Directory) -> None:
    cli = directory.app_by_name("tenantops-cli")
    assert cli is not None
    response = http.get("/oauth2/v2.0/authorize", params={
        "client_id": cli.client_id, "response_type": "code", "scope": "openid",
        "redirect_uri": "http://localhost"})
    assert response.status_code == 302
    assert "AADSTS9002325" in parse_qs(urlsplit(response.headers["location"]).query)[
        "error_description"][0]


def test_msal_public_client_auth_code_flow_against_the_sign_in_page(
    monkeypatch: pytest.MonkeyPatch, emulator: EmulatorInfo, directory: Directory,
    http: httpx.Client,
) -> None:
    import msal

    cli = directory.app_by_name("tenantops-cli")
    assert cli is not None
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", emulator.ca_bundle)
    app = msal.PublicClientApplication(
        cli.client_id, authority=f"{emulator.authority}/{emulator.tenant_id}",
        instance_discovery=False)
    flow = app.initiate_auth_code_flow([f"api://{API_CLIENT_ID}/.default"],
                                       redirect_uri="http://localhost:8765",
                                       response_mode="form_post")
    url = urlsplit(flow["auth_uri"])
    page = http.get(url.path.removeprefix(f"/{emulator.tenant_id}"), params=parse_qs(url.query))
    hidden = dict(re.findall(r'type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
    response = http.post(url.path.removeprefix(f"/{emulator.tenant_id}"),
                         data={**hidden, "username": "reader@contoso.test", "password": "reader"})
    assert response.status_code == 200
    assert 'action="http://localhost:8765"' in response.text
    reply = dict(re.findall(r'type="hidden" name="([^"]+)" value="([^"]*)"', response.text))
    result = app.acquire_token_by_auth_code_flow(flow, reply)
    assert "access_token" in result, result
    assert claims_of(result["access_token"])["roles"] == ["Tenants.Read"]
