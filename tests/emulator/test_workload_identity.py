"""Workload identity federation (AKS, GitHub Actions): the emulator plays the outside issuer,
the real azure-identity exchanges its tokens for Entra tokens, tenantops' own workload-identity
source works through the CLI, and every assertion that matches no federated credential, or is
forged, is refused with Entra's AADSTS code."""

from __future__ import annotations

import gc
import json
import ssl
import stat
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from azure.identity import ClientAssertionCredential, WorkloadIdentityCredential
from cryptography.hazmat.primitives.asymmetric import rsa
from typer.testing import CliRunner

from tenantops.cli.main import app
from tenantops.emulator.assertions import JWT_BEARER
from tenantops.emulator.directory import API_CLIENT_ID, Directory, load_directory
from tenantops.emulator.keys import KeyStore
from tenantops.emulator.server import EmulatorInfo, EmulatorServer
from tenantops.errors import DirectoryError
from tests.emulator.helpers import RUNTIME_VARIABLES, act_as, claims_of

API_SCOPE = f"api://{API_CLIENT_ID}/.default"
AKS_SUBJECT = "system:serviceaccount:tenantops:onboarding"
GITHUB_SUBJECT = "repo:contoso/tenantops:ref:refs/heads/main"
runner = CliRunner()


def client_id(directory: Directory, name: str) -> str:
    principal = directory.identity_by_name(name) or directory.app_by_name(name)
    assert principal is not None
    return principal.client_id


def exchange(info: EmulatorInfo, client: str, assertion: str) -> httpx.Response:
    return httpx.post(
        f"{info.authority}/{info.tenant_id}/oauth2/v2.0/token",
        data={"grant_type": "client_credentials", "client_id": client, "scope": API_SCOPE,
              "client_assertion_type": JWT_BEARER, "client_assertion": assertion},
        verify=ssl.create_default_context(cafile=info.ca_bundle))


def refusal(response: httpx.Response) -> tuple[int, int, str]:
    body: dict[str, Any] = response.json()
    assert body["error_description"].startswith(f"AADSTS{body['error_codes'][0]}: ")
    return response.status_code, body["error_codes"][0], body["error_description"]


def forged(server: EmulatorServer, issuer: str, *, key: rsa.RSAPrivateKey | None = None,
           kid: str | None = None, **claims: Any) -> str:
    """A token in the shape of the issuer's, signed with its own key unless told otherwise."""
    store = KeyStore(server.state.data_dir / "issuers" / issuer)
    active = store.active()
    now = int(time.time())
    payload = {"iss": f"{server.info.authority}/issuers/{issuer}", "sub": AKS_SUBJECT,
               "aud": ["api://AzureADTokenExchange"], "iat": now, "nbf": now,
               "exp": now + 3600, "jti": str(uuid.uuid4()), **claims}
    return jwt.encode(payload, key or active.private_key, algorithm="RS256",
                      headers={"kid": kid or active.kid})


def test_a_hosted_issuer_publishes_discovery_and_keys_its_tokens_verify_against(
    emulator_server: EmulatorServer, emulator: EmulatorInfo,
) -> None:
    context = ssl.create_default_context(cafile=emulator.ca_bundle)
    base = f"{emulator.authority}/issuers/aks"
    discovery = httpx.get(f"{base}/.well-known/openid-configuration", verify=context).json()
    assert discovery["issuer"] == base
    assert discovery["jwks_uri"] == f"{base}/openid/v1/jwks"
    token = emulator_server.state.issuers.mint("aks", AKS_SUBJECT)
    key = jwt.PyJWKClient(discovery["jwks_uri"], ssl_context=context).get_signing_key_from_jwt(
        token)
    claims = jwt.decode(token, key.key, algorithms=["RS256"],
                        audience="api://AzureADTokenExchange", issuer=base)
    assert claims["sub"] == AKS_SUBJECT
    assert claims["exp"] - claims["iat"] == 3600
    assert httpx.get(f"{emulator.authority}/issuers/nope/openid/v1/jwks",
                     verify=context).status_code == 404


def test_workload_identity_credential_exchanges_the_projected_token_file(
    monkeypatch: pytest.MonkeyPatch, emulator_server: EmulatorServer, emulator: EmulatorInfo,
    directory: Directory,
) -> None:
    env = act_as(monkeypatch, emulator_server, "uami-aks-onboarding", "workload-identity")
    assert set(env) == {"AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE",
                        "AZURE_AUTHORITY_HOST", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"}
    token_file = Path(env["AZURE_FEDERATED_TOKEN_FILE"])
    assert token_file.is_relative_to(emulator.data_dir)
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    federated = claims_of(token_file.read_text())
    assert (federated["iss"], federated["sub"], federated["aud"]) == (
        f"{emulator.authority}/issuers/aks", AKS_SUBJECT, ["api://AzureADTokenExchange"])

    credential = WorkloadIdentityCredential(disable_instance_discovery=True,
                                            connection_verify=emulator.ca_bundle)
    with credential:
        claims = claims_of(credential.get_token(API_SCOPE).token)
    uami = directory.identity_by_name("uami-aks-onboarding")
    assert uami is not None
    assert claims["appid"] == uami.client_id
    assert claims["oid"] == uami.principal_id
    assert claims["roles"] == ["Tenants.Read", "Tenants.Write"]
    assert claims["appidacr"] == "2"
    assert claims["exp"] - claims["iat"] < 3700  # a token-endpoint token, not a 24 h MI token


def test_client_assertion_credential_with_a_github_actions_token(
    emulator_server: EmulatorServer, emulator: EmulatorInfo, directory: Directory,
) -> None:
    def github_oidc_token() -> str:
        return emulator_server.state.issuers.mint("github-actions", GITHUB_SUBJECT)

    credential = ClientAssertionCredential(
        emulator.tenant_id, client_id(directory, "github-deploy"), github_oidc_token,
        authority=emulator.authority, disable_instance_discovery=True,
        connection_verify=emulator.ca_bundle)
    with credential:
        claims = claims_of(credential.get_token(API_SCOPE).token)
    assert claims["appid"] == client_id(directory, "github-deploy")
    assert claims["roles"] == ["Tenants.Read"]


# Through tenantops' CLI --------------------------------------------------------------------


def _cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: dict[str, str]) -> None:
    for name in RUNTIME_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name in ("TENANTOPS_IDENTITY__SOURCE", "TENANTOPS_IDENTITY__IDENTITY", "TENANTOPS_CONFIG",
                 "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no tenantops.toml from the checkout
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def test_emulator_env_then_auth_token_work_as_on_aks(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, emulator: EmulatorInfo,
    directory: Directory,
) -> None:
    _cli_env(monkeypatch, tmp_path, {})
    printed = runner.invoke(app, ["--data-dir", emulator.data_dir, "emulator", "env",
                                  "--identity", "uami-aks-onboarding", "--runtime",
                                  "workload-identity", "--token-lifetime", "600"])
    assert printed.exit_code == 0, printed.output
    env = dict(line.split("=", 1) for line in printed.stdout.splitlines())
    assert env["AZURE_CLIENT_ID"] == client_id(directory, "uami-aks-onboarding")
    assert env["AZURE_TENANT_ID"] == emulator.tenant_id
    assert env["AZURE_AUTHORITY_HOST"] == emulator.authority
    federated = claims_of(Path(env["AZURE_FEDERATED_TOKEN_FILE"]).read_text())
    assert federated["exp"] - federated["iat"] == 600
    assert "eyJ" not in printed.output  # the token goes to the file, never to the terminal

    _cli_env(monkeypatch, tmp_path, env)
    decoded = runner.invoke(app, ["auth", "token", "--resource", API_CLIENT_ID, "--decode"])
    assert decoded.exit_code == 0, decoded.output
    shown = json.loads(decoded.stdout)
    assert shown["source"].startswith("workload-identity: app "
                                      f"{env['AZURE_CLIENT_ID']} in tenant {emulator.tenant_id}")
    assert shown["claims"]["appid"] == env["AZURE_CLIENT_ID"]
    assert shown["claims"]["roles"] == ["Tenants.Read", "Tenants.Write"]
    forced = runner.invoke(app, ["auth", "token", "--resource", API_CLIENT_ID,
                                 "--source", "workload-identity"])
    assert forced.exit_code == 0, forced.output
    assert claims_of(forced.stdout.strip())["aud"] == API_CLIENT_ID


def test_emulator_env_for_an_identity_without_federation_says_how_to_add_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, emulator: EmulatorInfo,
) -> None:
    _cli_env(monkeypatch, tmp_path, {})
    result = runner.invoke(app, ["--data-dir", emulator.data_dir, "emulator", "env",
                                 "--identity", "aa-onboarding", "--runtime", "workload-identity"])
    assert result.exit_code == 1
    assert "'aa-onboarding' has no federated credential trusting an issuer the emulator " \
        "plays (aks, github-actions); add one" in result.stderr


def test_emulator_federated_token_writes_a_github_token_for_client_assertion(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, emulator: EmulatorInfo,
    directory: Directory,
) -> None:
    _cli_env(monkeypatch, tmp_path, {})
    out = tmp_path / "github-oidc.jwt"
    result = runner.invoke(app, ["--data-dir", emulator.data_dir, "emulator",
                                 "federated-token", "--issuer", "github-actions", "--subject",
                                 GITHUB_SUBJECT, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "eyJ" not in result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    response = exchange(emulator, client_id(directory, "github-deploy"), out.read_text())
    assert response.status_code == 200, response.text
    unknown = runner.invoke(app, ["--data-dir", emulator.data_dir, "emulator",
                                  "federated-token", "--issuer", "gitlab", "--subject", "x",
                                  "--out", str(out)])
    assert unknown.exit_code == 1
    assert "no issuer named 'gitlab' is played by the emulator; hosted issuers: aks, " \
        "github-actions" in unknown.stderr


# Refusals, one per attack ------------------------------------------------------------------


def test_token_from_an_issuer_the_identity_does_not_trust_is_refused_with_aadsts700211(
    emulator_server: EmulatorServer, emulator: EmulatorInfo, directory: Directory,
) -> None:
    """A GitHub Actions token presented for the AKS identity."""
    token = emulator_server.state.issuers.mint("github-actions", AKS_SUBJECT)
    status, code, description = refusal(
        exchange(emulator, client_id(directory, "uami-aks-onboarding"), token))
    assert (status, code) == (401, 700211)
    assert ("No matching federated identity record found for presented assertion issuer "
            f"'{emulator.authority}/issuers/github-actions'") in description


def test_an_entra_access_token_presented_as_a_federated_assertion_is_refused_with_aadsts700211(
    emulator_server: EmulatorServer, emulator: EmulatorInfo, directory: Directory,
) -> None:
    """A token the emulator itself issued (as Entra) is no federated credential."""
    response = httpx.post(
        f"{emulator.authority}/{emulator.tenant_id}/oauth2/v2.0/token",
        data={"grant_type": "client_credentials", "client_id": client_id(directory, "ci-pipeline"),
              "client_secret": "ci-local-secret", "scope": API_SCOPE},
        verify=ssl.create_default_context(cafile=emulator.ca_bundle))
    entra_token = response.json()["access_token"]
    status, code, _ = refusal(
        exchange(emulator, client_id(directory, "uami-aks-onboarding"), entra_token))
    assert (status, code) == (401, 700211)


def test_token_for_another_service_account_is_refused_with_aadsts700213(
    emulator_server: EmulatorServer, emulator: EmulatorInfo, directory: Directory,
) -> None:
    other = "system:serviceaccount:kube-system:default"
    token = emulator_server.state.issuers.mint("aks", other)
    status, code, description = refusal(
        exchange(emulator, client_id(directory, "uami-aks-onboarding"), token))
    assert (status, code) == (401, 700213)
    assert f"presented assertion subject '{other}'" in description


def test_subject_differing_only_in_case_is_refused_with_aadsts7002138(
    emulator_server: EmulatorServer, emulator: EmulatorInfo, directory: Directory,
) -> None:
    token = emulator_server.state.issuers.mint("github-actions",
                                               "repo:Contoso/TenantOps:ref:refs/heads/main")
    status, code, description = refusal(
        exchange(emulator, client_id(directory, "github-deploy"), token))
    assert (status, code) == (401, 7002138)
    assert "matches with case-insensitive comparison, but not with case-sensitive" \
        in description


def test_token_for_another_audience_is_refused_with_aadsts700212(
    emulator_server: EmulatorServer, emulator: EmulatorInfo, directory: Directory,
) -> None:
    token = emulator_server.state.issuers.mint("aks", AKS_SUBJECT, audience="api://AzureADMyOrg")
    status, code, description = refusal(
        exchange(emulator, client_id(directory, "uami-aks-onboarding"), token))
    assert (status, code) == (401, 700212)
    assert "presented assertion audience 'api://AzureADMyOrg'" in description


def test_token_forged_under_the_issuers_key_id_is_refused_with_aadsts50027(
    emulator_server: EmulatorServer, emulator: EmulatorInfo, directory: Directory,
) -> None:
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = forged(emulator_server, "aks", key=attacker)
    status, code, description = refusal(
        exchange(emulator, client_id(directory, "uami-aks-onboarding"), token))
    assert (status, code) == (401, 50027)
    assert "failed signature verification" in description


def test_token_signed_with_a_key_the_issuer_does_not_publish_is_refused_with_aadsts7000272(
    emulator_server: EmulatorServer, emulator: EmulatorInfo, directory: Directory,
) -> None:
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = forged(emulator_server, "aks", key=attacker, kid="attacker-key")
    status, code, description = refusal(
        exchange(emulator, client_id(directory, "uami-aks-onboarding"), token))
    assert (status, code) == (401, 7000272)
    assert "The certificate with identifier attacker-key used to sign the federated credential " \
        f"could not be found in the metadata of identity provider {emulator.authority}" \
        "/issuers/aks" in description


def test_token_of_one_issuer_relabelled_as_another_is_refused_with_aadsts7000272(
    emulator_server: EmulatorServer, emulator: EmulatorInfo, directory: Directory,
) -> None:
    """Signed by the AKS issuer, claiming to come from GitHub Actions."""
    token = forged(emulator_server, "aks", iss=f"{emulator.authority}/issuers/github-actions",
                   sub=GITHUB_SUBJECT)
    status, code, _ = refusal(exchange(emulator, client_id(directory, "github-deploy"), token))
    assert (status, code) == (401, 7000272)


def test_expired_federated_token_is_refused_with_aadsts700024(
    emulator_server: EmulatorServer, emulator: EmulatorInfo, directory: Directory,
) -> None:
    now = int(time.time())
    token = forged(emulator_server, "aks", iat=now - 7200, nbf=now - 7200, exp=now - 3600)
    status, code, description = refusal(
        exchange(emulator, client_id(directory, "uami-aks-onboarding"), token))
    assert (status, code) == (401, 700024)
    assert "Client assertion is not within its valid time range." in description


def test_federated_token_for_a_system_assigned_identity_finds_no_client(
    emulator_server: EmulatorServer, emulator: EmulatorInfo, directory: Directory,
) -> None:
    """Only user-assigned identities (and apps) can be federated clients."""
    token = emulator_server.state.issuers.mint("aks", AKS_SUBJECT)
    status, code, _ = refusal(exchange(emulator, client_id(directory, "aa-onboarding"), token))
    assert (status, code) == (400, 700016)


# Outside issuers: known by a JWKS file, or unreachable -------------------------------------


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmulatorInfo, Directory,
                                                                          rsa.RSAPrivateKey]]:
    folder = tmp_path_factory.mktemp("outside-issuers")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    (folder / "kind-jwks.json").write_text(json.dumps({"keys": [{**jwk, "kid": "kind-1"}]}),
                                           encoding="utf-8")
    toml = folder / "directory.toml"
    toml.write_text('''
tenant_id = "2a3b4c5d-6e7f-4a8b-9c0d-1e2f3a4b5c6d"
[[issuers]]
name = "kind"
url = "https://kubernetes.default.svc.cluster.local"
jwks_file = "kind-jwks.json"
[[issuers]]
name = "private-gitlab"
url = "https://gitlab.internal.example"
[[apps]]
name = "api"
identifier_uris = ["api://api"]
[[identities]]
name = "kind-workload"
kind = "user"
[[identities.federated_credentials]]
name = "kind"
issuer = "kind"
subject = "system:serviceaccount:default:app"
[[identities.federated_credentials]]
name = "gitlab"
issuer = "https://gitlab.internal.example"
subject = "project_path:group/app:ref_type:branch:ref:main"
''', encoding="utf-8")
    directory = load_directory(toml)
    server = EmulatorServer(directory, folder / "data")
    info = server.start()
    yield info, directory, key
    gc.collect()  # close clients' pooled TLS connections, so the stop is quick
    server.stop()


def _outside_token(key: rsa.RSAPrivateKey, issuer: str, subject: str) -> str:
    now = int(time.time())
    return jwt.encode({"iss": issuer, "sub": subject, "aud": "api://AzureADTokenExchange",
                       "iat": now, "exp": now + 600}, key, algorithm="RS256",
                      headers={"kid": "kind-1"})


def test_outside_issuer_is_trusted_through_its_jwks_file(
    outside: tuple[EmulatorInfo, Directory, rsa.RSAPrivateKey],
) -> None:
    info, directory, key = outside
    token = _outside_token(key, "https://kubernetes.default.svc.cluster.local",
                           "system:serviceaccount:default:app")
    response = httpx.post(
        f"{info.authority}/{info.tenant_id}/oauth2/v2.0/token",
        data={"grant_type": "client_credentials",
              "client_id": client_id(directory, "kind-workload"), "scope": "api://api/.default",
              "client_assertion_type": JWT_BEARER, "client_assertion": token},
        verify=ssl.create_default_context(cafile=info.ca_bundle))
    assert response.status_code == 200, response.text


def test_issuer_whose_metadata_cannot_be_fetched_is_refused_with_aadsts90061(
    outside: tuple[EmulatorInfo, Directory, rsa.RSAPrivateKey],
) -> None:
    info, directory, key = outside
    token = _outside_token(key, "https://gitlab.internal.example",
                           "project_path:group/app:ref_type:branch:ref:main")
    response = httpx.post(
        f"{info.authority}/{info.tenant_id}/oauth2/v2.0/token",
        data={"grant_type": "client_credentials",
              "client_id": client_id(directory, "kind-workload"), "scope": "api://api/.default",
              "client_assertion_type": JWT_BEARER, "client_assertion": token},
        verify=ssl.create_default_context(cafile=info.ca_bundle))
    assert refusal(response)[:2] == (400, 90061)


# The directory ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[identities]]\nname = "mi"\n[[identities.federated_credentials]]\nname = "f"\n'
         'issuer = "https://x"\nsubject = "s"\n',
         "identity 'mi': federated_credentials need kind = \"user\""),
        ('[[apps]]\nname = "a"\n[[apps.federated_credentials]]\nname = "f"\nissuer = "aks"\n'
         'subject = "s"\n',
         "apps[0].federated_credentials[0].issuer = 'aks': neither a URL nor one of the "
         "directory's issuers []"),
        ('[[apps]]\nname = "a"\n[[apps.federated_credentials]]\nname = "f"\n'
         'issuer = "https://x"\nsubject = "s"\naudiences = ["a", "b"]\n',
         "exactly one audience, as Microsoft Graph allows"),
        ('[[issuers]]\nname = "My Cluster"\n', "'My Cluster': lowercase letters, digits and '-'"),
    ],
    ids=["system-assigned", "unknown-issuer", "two-audiences", "issuer-name"],
)
def test_invalid_federation_entry_names_the_field_and_rule(
    tmp_path: Path, text: str, message: str,
) -> None:
    toml = tmp_path / "d.toml"
    toml.write_text(f'tenant_id = "t"\n{text}', encoding="utf-8")
    with pytest.raises(DirectoryError) as error:
        load_directory(toml)
    assert message in str(error.value)
