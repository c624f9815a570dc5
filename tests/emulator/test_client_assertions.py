"""Certificate client assertions (private_key_jwt): the real azure-identity and msal get tokens
with a certificate registered on the app, and every way an assertion can be wrong or forged is
refused with Entra's AADSTS code (tenantops.emulator.assertions cites the source of each)."""

from __future__ import annotations

import base64
import gc
import hashlib
import hmac
import json
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import msal
import pytest
from azure.identity import CertificateCredential

from tenantops.emulator.assertions import JWT_BEARER
from tenantops.emulator.directory import Directory, load_directory
from tenantops.emulator.server import EmulatorInfo, EmulatorServer
from tenantops.errors import DirectoryError
from tests.emulator.helpers import (
    CertificateFiles,
    b64url,
    claims_of,
    client_assertion,
    make_certificate,
)

TENANT = "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
ORDERS_SCOPE = "api://orders/.default"
ARM_SCOPE = "https://management.azure.com/.default"


@dataclass(frozen=True)
class Setup:
    info: EmulatorInfo
    server: EmulatorServer
    directory: Directory
    cert: CertificateFiles
    sni_cert: CertificateFiles
    stale_cert: CertificateFiles
    stranger: CertificateFiles

    def client_id(self, name: str) -> str:
        app = self.directory.app_by_name(name)
        assert app is not None
        return app.client_id

    @property
    def token_endpoint(self) -> str:
        return f"{self.info.authority}/{self.info.tenant_id}/oauth2/v2.0/token"

    def post(self, form: dict[str, str], path: str = "oauth2/v2.0/token") -> httpx.Response:
        return httpx.post(f"{self.info.authority}/{self.info.tenant_id}/{path}", data=form,
                          verify=ssl.create_default_context(cafile=self.info.ca_bundle))

    def exchange(self, assertion: str, client: str = "cert-client",
                 **form: str) -> httpx.Response:
        data = {"grant_type": "client_credentials", "client_id": self.client_id(client),
                "client_assertion_type": JWT_BEARER, "client_assertion": assertion,
                "scope": ORDERS_SCOPE, **form}
        return self.post(data)


def _directory(folder: Path, certs: dict[str, CertificateFiles]) -> Directory:
    toml = folder / "directory.toml"
    toml.write_text(f'''
tenant_id = "{TENANT}"

[[apps]]
name = "orders-api"
identifier_uris = ["api://orders"]
[[apps.app_roles]]
value = "Orders.Read"

[[apps]]
name = "cert-client"
[[apps.certificates]]
display_name = "build agent"
certificate_file = "{certs["cert"].certificate_pem.name}"

[[apps]]
name = "sni-client"
[[apps.certificates]]
thumbprint_sha256 = "{certs["sni"].sha256}"

[[apps]]
name = "stale-client"
[[apps.certificates]]
certificate_file = "{certs["stale"].certificate_pem.name}"

[[apps]]
name = "twin-client"
[[apps.certificates]]
certificate_file = "{certs["cert"].certificate_pem.name}"

[[apps]]
name = "desktop-client"
public_client = true
[[apps.certificates]]
certificate_file = "{certs["cert"].certificate_pem.name}"

[[assignments]]
principal = "cert-client"
resource = "orders-api"
role = "Orders.Read"

[[assignments]]
principal = "sni-client"
resource = "orders-api"
role = "Orders.Read"
''', encoding="utf-8")
    return load_directory(toml)


def _start(folder: Path, replay: str) -> tuple[Setup, EmulatorServer]:
    now = time.time()
    certs = {"cert": make_certificate(folder, "cert"), "sni": make_certificate(folder, "sni"),
             "stale": make_certificate(folder, "stale", valid_from=now - 86400 * 30,
                                       valid_until=now - 86400),
             "stranger": make_certificate(folder, "stranger")}
    directory = _directory(folder, certs)
    server = EmulatorServer(directory, folder / "data",
                            assertion_replay=replay)  # type: ignore[arg-type]
    info = server.start()
    return Setup(info, server, directory, certs["cert"], certs["sni"], certs["stale"],
                 certs["stranger"]), server


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    made, server = _start(tmp_path_factory.mktemp("assertions"), "allow")
    yield made
    gc.collect()  # close clients' pooled TLS connections, so the stop is quick
    server.stop()


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """An emulator that refuses a client assertion's jti the second time."""
    made, server = _start(tmp_path_factory.mktemp("assertions-strict"), "refuse")
    yield made
    gc.collect()  # close clients' pooled TLS connections, so the stop is quick
    server.stop()


def raw_jwt(header: dict[str, Any], claims: dict[str, Any],
            sign: Callable[[bytes], bytes]) -> str:
    """A JWT put together by hand, for what PyJWT refuses to make."""
    signing = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    return f"{signing}.{b64url(sign(signing.encode()))}"


def refusal(response: httpx.Response) -> tuple[int, int, str]:
    body: dict[str, Any] = response.json()
    assert body["error_description"].startswith(f"AADSTS{body['error_codes'][0]}: ")
    return response.status_code, body["error_codes"][0], body["error_description"]


# The real clients --------------------------------------------------------------------------


def test_certificate_credential_gets_a_token_signed_with_its_registered_certificate(
    setup: Setup,
) -> None:
    credential = CertificateCredential(
        setup.info.tenant_id, setup.client_id("cert-client"),
        certificate_path=str(setup.cert.combined_pem), authority=setup.info.authority,
        disable_instance_discovery=True, connection_verify=setup.info.ca_bundle)
    with credential:
        claims = claims_of(credential.get_token(ORDERS_SCOPE).token)
    assert claims["appid"] == setup.client_id("cert-client")
    assert claims["appidacr"] == "2"  # "When you use a client certificate ... the value is 2"
    assert claims["roles"] == ["Orders.Read"]
    assert claims["aud"] == "api://orders"


def test_certificate_credential_with_the_chain_satisfies_a_thumbprint_only_registration(
    setup: Setup,
) -> None:
    """An app trusting a certificate by thumbprint alone (SNI) needs it in the assertion's
    x5c header: azure-identity sends it with send_certificate_chain=True."""
    credential = CertificateCredential(
        setup.info.tenant_id, setup.client_id("sni-client"),
        certificate_path=str(setup.sni_cert.combined_pem), send_certificate_chain=True,
        authority=setup.info.authority, disable_instance_discovery=True,
        connection_verify=setup.info.ca_bundle)
    with credential:
        assert claims_of(credential.get_token(ORDERS_SCOPE).token)["appidacr"] == "2"


@pytest.mark.parametrize("credential", ["thumbprint-rs256-x5t", "certificate-ps256-x5t-s256"])
def test_msal_confidential_client_with_a_certificate_gets_a_token(
    monkeypatch: pytest.MonkeyPatch, setup: Setup, credential: str,
) -> None:
    """msal signs RS256 with x5t when given a SHA-1 thumbprint, PS256 with x5t#S256 (and x5c)
    when given the public certificate (msal/application.py)."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", setup.info.ca_bundle)
    given: dict[str, str] = {"private_key": setup.cert.key_pem}
    if credential.startswith("thumbprint"):
        given["thumbprint"] = setup.cert.sha1
    else:
        given["public_certificate"] = setup.cert.public_pem
    app = msal.ConfidentialClientApplication(
        setup.client_id("cert-client"), client_credential=given,
        authority=f"{setup.info.authority}/{setup.info.tenant_id}", instance_discovery=False)
    result = app.acquire_token_for_client(scopes=[ORDERS_SCOPE])
    assert "access_token" in result, result.get("error_description")
    assert claims_of(result["access_token"])["roles"] == ["Orders.Read"]


def _msal_two_scopes(monkeypatch: pytest.MonkeyPatch, setup: Setup) -> list[dict[str, Any]]:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", setup.info.ca_bundle)
    app = msal.ConfidentialClientApplication(
        setup.client_id("cert-client"),
        client_credential={"private_key": setup.cert.key_pem, "thumbprint": setup.cert.sha1},
        authority=f"{setup.info.authority}/{setup.info.tenant_id}", instance_discovery=False)
    return [app.acquire_token_for_client(scopes=[ORDERS_SCOPE]),
            app.acquire_token_for_client(scopes=[ARM_SCOPE])]


def test_msal_reuses_its_assertion_for_a_second_scope_and_entra_accepts_it(
    monkeypatch: pytest.MonkeyPatch, setup: Setup,
) -> None:
    """msal keeps one assertion for up to 540 s (oauth2cli/assertion.py AutoRefresher): Entra
    accepts it again, so the emulator does by default."""
    first, second = _msal_two_scopes(monkeypatch, setup)
    assert "access_token" in first, first
    assert "access_token" in second, second
    assert claims_of(second["access_token"])["aud"].startswith("https://management.azure.com")


def test_replayed_assertion_is_refused_when_replay_protection_is_on(
    monkeypatch: pytest.MonkeyPatch, strict: Setup,
) -> None:
    """With assertion_replay = "refuse" the same msal client fails on its second scope, which
    shows it did send the same assertion twice."""
    first, second = _msal_two_scopes(monkeypatch, strict)
    assert "access_token" in first, first
    assert second["error_codes"] == [50013]
    assert "was already used" in second["error_description"]


def test_replayed_hand_made_assertion_is_refused_when_replay_protection_is_on(
    strict: Setup,
) -> None:
    assertion = client_assertion(strict.cert, strict.client_id("cert-client"),
                                 strict.token_endpoint)
    assert strict.exchange(assertion).status_code == 200
    status, code, _ = refusal(strict.exchange(assertion))
    assert (status, code) == (401, 50013)
    without_jti = client_assertion(strict.cert, strict.client_id("cert-client"),
                                   strict.token_endpoint, jti=None)
    assert refusal(strict.exchange(without_jti))[1] == 50013


def test_v1_token_endpoint_takes_a_certificate_assertion_with_resource(setup: Setup) -> None:
    """ADAL and older scripts use /oauth2/token with resource= and an assertion whose aud is the
    v1 token endpoint."""
    audience = f"{setup.info.authority}/{setup.info.tenant_id}/oauth2/token"
    response = setup.post({
        "grant_type": "client_credentials", "client_id": setup.client_id("cert-client"),
        "client_assertion_type": JWT_BEARER, "resource": "api://orders",
        "client_assertion": client_assertion(setup.cert, setup.client_id("cert-client"),
                                             audience)}, path="oauth2/token")
    assert response.status_code == 200, response.text
    assert claims_of(response.json()["access_token"])["appidacr"] == "2"


# Refusals, one per attack ------------------------------------------------------------------


def test_assertion_signed_with_an_unregistered_certificate_is_refused_with_aadsts700027(
    setup: Setup,
) -> None:
    assertion = client_assertion(setup.stranger, setup.client_id("cert-client"),
                                 setup.token_endpoint)
    status, code, description = refusal(setup.exchange(assertion))
    assert (status, code) == (401, 700027)
    assert "[Reason - The key was not found., Thumbprint of key used by client: " \
        f"'{setup.stranger.sha256.upper()}'" in description
    assert setup.client_id("cert-client") in description


def test_assertion_forged_under_the_registered_thumbprint_is_refused_with_aadsts700027(
    setup: Setup,
) -> None:
    """The header names the registered certificate; the signature is another key's."""
    assertion = client_assertion(setup.cert, setup.client_id("cert-client"),
                                 setup.token_endpoint, sign_with=setup.stranger.key)
    status, code, description = refusal(setup.exchange(assertion))
    assert (status, code) == (401, 700027)
    assert "The provided signature value did not match the expected signature value." \
        in description
    assert "Found key 'Start=" in description


def test_tampered_assertion_for_another_client_is_refused_with_aadsts700027(
    setup: Setup,
) -> None:
    """A genuine assertion of cert-client with its claims rewritten for twin-client (which
    registers the same certificate) no longer matches its signature."""
    genuine = client_assertion(setup.cert, setup.client_id("cert-client"), setup.token_endpoint)
    header, _, signature = genuine.split(".")
    claims = jwt.decode(genuine, options={"verify_signature": False})
    claims.update(iss=setup.client_id("twin-client"), sub=setup.client_id("twin-client"))
    payload = b64url(json.dumps(claims).encode())
    status, code, description = refusal(setup.exchange(f"{header}.{payload}.{signature}",
                                                       client="twin-client"))
    assert (status, code) == (401, 700027)
    assert "did not match the expected signature value" in description


def test_assertion_with_a_chain_of_another_certificate_does_not_satisfy_a_thumbprint_only_app(
    setup: Setup,
) -> None:
    """SNI registration: x5t#S256 names the registered thumbprint but x5c carries the
    attacker's certificate, whose key signed the assertion."""
    headers = {"x5t#S256": b64url(bytes.fromhex(setup.sni_cert.sha256)),
               "x5c": [base64.b64encode(setup.stranger.der).decode()]}
    assertion = client_assertion(setup.stranger, setup.client_id("sni-client"),
                                 setup.token_endpoint, headers=headers)
    status, code, description = refusal(setup.exchange(assertion, client="sni-client"))
    assert (status, code) == (401, 700027)
    assert "SNI may be configured on the app" in description


def test_thumbprint_only_registration_without_x5c_is_refused_with_aadsts700027_naming_sni(
    setup: Setup,
) -> None:
    assertion = client_assertion(setup.sni_cert, setup.client_id("sni-client"),
                                 setup.token_endpoint)
    status, code, description = refusal(setup.exchange(assertion, client="sni-client"))
    assert (status, code) == (401, 700027)
    assert "sent with the x5c claim in the JWT header" in description


def test_assertion_with_an_expired_certificate_is_refused_with_aadsts700027(
    setup: Setup,
) -> None:
    assertion = client_assertion(setup.stale_cert, setup.client_id("stale-client"),
                                 setup.token_endpoint)
    status, code, description = refusal(setup.exchange(assertion, client="stale-client"))
    assert (status, code) == (401, 700027)
    assert "The key used is expired." in description


@pytest.mark.parametrize(
    "audience",
    ["issuer-v2", "other-tenant", "other-host", "authorize-endpoint"],
)
def test_assertion_for_another_audience_is_refused_with_aadsts700023(
    setup: Setup, audience: str,
) -> None:
    base = f"{setup.info.authority}/{setup.info.tenant_id}"
    aud = {"issuer-v2": f"{base}/v2.0",
           "other-tenant": f"{setup.info.authority}/72f988bf-86f1-41af-91ab-2d7cd011db47/"
                           "oauth2/v2.0/token",
           "other-host": f"https://login.microsoftonline.com/{setup.info.tenant_id}/oauth2/"
                         "v2.0/token",
           "authorize-endpoint": f"{base}/oauth2/v2.0/authorize"}[audience]
    assertion = client_assertion(setup.cert, setup.client_id("cert-client"), aud)
    status, code, description = refusal(setup.exchange(assertion))
    assert (status, code) == (401, 700023)
    assert description.startswith(
        "AADSTS700023: Client assertion audience claim does not match Realm issuer.")
    assert f"aud '{aud}'" in description


def test_assertion_with_an_audience_list_is_refused_with_aadsts50027(setup: Setup) -> None:
    """panva/openid-client#348: Entra refused aud = [issuer, token endpoint]."""
    base = f"{setup.info.authority}/{setup.info.tenant_id}"
    assertion = client_assertion(setup.cert, setup.client_id("cert-client"),
                                 [f"{base}/v2.0", setup.token_endpoint])
    assert refusal(setup.exchange(assertion))[:2] == (401, 50027)


@pytest.mark.parametrize("when", ["expired", "not-yet-valid"])
def test_assertion_outside_its_lifetime_is_refused_with_aadsts700024(
    setup: Setup, when: str,
) -> None:
    now = time.time()
    if when == "expired":
        assertion = client_assertion(setup.cert, setup.client_id("cert-client"),
                                     setup.token_endpoint, not_before=now - 1800,
                                     lifetime=-900)
    else:
        assertion = client_assertion(setup.cert, setup.client_id("cert-client"),
                                     setup.token_endpoint, not_before=now + 1800,
                                     lifetime=2400)
    status, code, description = refusal(setup.exchange(assertion))
    assert (status, code) == (401, 700024)
    assert "Client assertion is not within its valid time range. Current time: " in description
    assert ", expiry time of assertion " in description


def test_assertion_within_the_clock_skew_is_accepted(setup: Setup) -> None:
    """Expired 2 minutes ago, or valid 2 minutes from now: inside five minutes of skew."""
    now = time.time()
    late = client_assertion(setup.cert, setup.client_id("cert-client"), setup.token_endpoint,
                            not_before=now - 600, lifetime=-120)
    early = client_assertion(setup.cert, setup.client_id("cert-client"), setup.token_endpoint,
                             not_before=now + 120, lifetime=600)
    assert setup.exchange(late).status_code == 200
    assert setup.exchange(early).status_code == 200


def test_assertion_presented_for_another_client_id_is_refused_with_aadsts700021(
    setup: Setup,
) -> None:
    assertion = client_assertion(setup.cert, setup.client_id("cert-client"),
                                 setup.token_endpoint)
    status, code, _ = refusal(setup.exchange(assertion, client="sni-client"))
    assert (status, code) == (401, 700021)


def test_assertion_whose_subject_is_not_its_issuer_is_refused_with_aadsts50048(
    setup: Setup,
) -> None:
    assertion = client_assertion(setup.cert, setup.client_id("cert-client"),
                                 setup.token_endpoint, sub=setup.client_id("sni-client"))
    status, code, description = refusal(setup.exchange(assertion))
    assert (status, code) == (401, 50048)
    assert "Subject mismatches Issuer claim in the client assertion" in description


@pytest.mark.parametrize("attack", ["alg-none", "hs256-signed-with-the-certificate",
                                    "no-thumbprint-header", "not-a-jwt", "no-exp"])
def test_malformed_or_unsigned_assertion_is_refused_with_aadsts50027(
    setup: Setup, attack: str,
) -> None:
    client = setup.client_id("cert-client")
    header = {"x5t#S256": b64url(bytes.fromhex(setup.cert.sha256))}
    claims = {"aud": setup.token_endpoint, "iss": client, "sub": client,
              "exp": int(time.time()) + 600}
    if attack == "alg-none":
        assertion = raw_jwt({**header, "alg": "none"}, claims, lambda _: b"")
    elif attack == "hs256-signed-with-the-certificate":  # key confusion
        assertion = raw_jwt({**header, "alg": "HS256"}, claims, lambda signing: hmac.new(
            setup.cert.public_pem.encode(), signing, hashlib.sha256).digest())
    elif attack == "no-thumbprint-header":
        assertion = client_assertion(setup.cert, client, setup.token_endpoint, headers={})
    elif attack == "not-a-jwt":
        assertion = "this.is-not.a-jwt"
    else:
        assertion = client_assertion(setup.cert, client, setup.token_endpoint, exp=None)
    status, code, _ = refusal(setup.exchange(assertion))
    assert (status, code) == (401, 50027)


def test_public_client_presenting_an_assertion_is_refused_with_aadsts700025(
    setup: Setup,
) -> None:
    assertion = client_assertion(setup.cert, setup.client_id("desktop-client"),
                                 setup.token_endpoint)
    status, code, description = refusal(setup.exchange(assertion, client="desktop-client"))
    assert (status, code) == (401, 700025)
    assert "Client is public so neither 'client_assertion' nor 'client_secret'" in description


def test_assertion_without_its_type_is_refused_with_aadsts900144(setup: Setup) -> None:
    response = setup.post({
        "grant_type": "client_credentials", "client_id": setup.client_id("cert-client"),
        "scope": ORDERS_SCOPE, "client_assertion": client_assertion(
            setup.cert, setup.client_id("cert-client"), setup.token_endpoint)})
    status, code, description = refusal(response)
    assert (status, code) == (400, 900144)
    assert "'client_assertion_type'" in description


def test_request_without_any_credential_is_refused_with_aadsts7000218(setup: Setup) -> None:
    response = setup.post({"grant_type": "client_credentials",
                           "client_id": setup.client_id("cert-client"), "scope": ORDERS_SCOPE})
    status, code, description = refusal(response)
    assert (status, code) == (401, 7000218)
    assert "'client_assertion' or 'client_secret'" in description


# The directory ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('thumbprint = "abc"', "thumbprint = 'abc': expected 40 hexadecimal digits"),
        ('certificate = "-----BEGIN PRIVATE KEY-----"',
         "certificate is not a PEM X.509 certificate"),
        ('certificate_file = "missing.pem"', "certificate_file = '"),
        ('display_name = "nothing"', "a certificate credential needs certificate, "
         "certificate_file, thumbprint or thumbprint_sha256"),
    ],
    ids=["short-thumbprint", "private-key-instead", "missing-file", "empty"],
)
def test_invalid_certificate_credential_names_the_field(
    tmp_path: Path, entry: str, message: str
) -> None:
    toml = tmp_path / "d.toml"
    toml.write_text(f'tenant_id = "t"\n[[apps]]\nname = "a"\n[[apps.certificates]]\n{entry}\n',
                    encoding="utf-8")
    with pytest.raises(DirectoryError) as error:
        load_directory(toml)
    assert "apps.0.certificates.0" in str(error.value)
    assert message in str(error.value)


def test_a_thumbprint_given_beside_its_certificate_must_be_the_certificates(
    tmp_path: Path,
) -> None:
    cert = make_certificate(tmp_path, "c")
    toml = tmp_path / "d.toml"
    toml.write_text(f'tenant_id = "t"\n[[apps]]\nname = "a"\n[[apps.certificates]]\n'
                    f'certificate_file = "c.crt.pem"\nthumbprint = "{"0" * 40}"\n',
                    encoding="utf-8")
    with pytest.raises(DirectoryError, match=f"is not the certificate's \\({cert.sha1}\\)"):
        load_directory(toml)
