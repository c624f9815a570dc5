"""The real azure-identity and msal obtain tokens from the emulator, unchanged, and PyJWT
validates them against the emulator's JWKS."""

from __future__ import annotations

import ssl

import jwt
import msal
import pytest
import requests
from azure.identity import (
    ClientSecretCredential,
    DefaultAzureCredential,
    ManagedIdentityCredential,
)

from tenantops.emulator.directory import API_CLIENT_ID, Directory
from tenantops.emulator.server import EmulatorInfo, EmulatorServer
from tests.emulator.helpers import act_as, claims_of

API_SCOPE = f"api://{API_CLIENT_ID}/.default"
ARM_SCOPE = "https://management.core.windows.net//.default"


def verify(token: str, info: EmulatorInfo, audience: str) -> dict[str, object]:
    """Validate signature, audience, issuer and expiry with PyJWT + PyJWKClient."""
    context = ssl.create_default_context(cafile=info.ca_bundle)
    client = jwt.PyJWKClient(f"{info.authority}/{info.tenant_id}/discovery/v2.0/keys",
                             ssl_context=context)
    key = client.get_signing_key_from_jwt(token)
    claims: dict[str, object] = jwt.decode(
        token, key.key, algorithms=["RS256"], audience=audience,
        issuer=[f"{info.authority}/{info.tenant_id}/", f"{info.authority}/{info.tenant_id}/v2.0"],
    )
    return claims


# azure-identity reads MSI_ENDPOINT + MSI_SECRET as Azure ML (epoch expires_on); App Service's
# 2017-09-01 date-string flavour ("msi") is exercised by the raw-HTTP and runbook tests.
RUNTIMES = ["app-service", "automation", "imds", "azure-ml", "arc"]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_managed_identity_credential_gets_api_token_in_every_runtime(
    monkeypatch: pytest.MonkeyPatch, emulator_server: EmulatorServer, emulator: EmulatorInfo,
    directory: Directory, runtime: str,
) -> None:
    act_as(monkeypatch, emulator_server, "aa-onboarding", runtime)
    token = ManagedIdentityCredential().get_token(API_SCOPE)
    claims = verify(token.token, emulator, f"api://{API_CLIENT_ID}")
    identity = directory.identity_by_name("aa-onboarding")
    assert identity is not None
    assert claims["appid"] == identity.client_id
    assert claims["oid"] == identity.principal_id
    assert claims["roles"] == ["Tenants.Read", "Tenants.Write"]
    # xms_mirid is "a first party only optional claim" (MicrosoftDocs/azure-docs#96027): never
    # in a token for an API of your own (test_token_claims.py has the ARM case).
    assert "xms_mirid" not in claims
    # IMDS and Arc answer expires_in; the client adds it to its own clock (a second may tick).
    assert abs(token.expires_on - int(claims["exp"])) <= 1  # type: ignore[call-overload]
    assert 86000 < token.expires_on - int(claims["iat"]) < 87000  # type: ignore[call-overload]


# The 2017-09-01 endpoint selects a user-assigned identity by client ID only.
SELECTABLE = [(r, s) for r in RUNTIMES for s in ("client_id", "object_id", "resource_id")
              if r != "azure-ml" or s == "client_id"]


@pytest.mark.parametrize(("runtime", "selector"), SELECTABLE)
def test_user_assigned_identity_is_selected_by_each_kind_of_id(
    monkeypatch: pytest.MonkeyPatch, emulator_server: EmulatorServer, emulator: EmulatorInfo,
    directory: Directory, runtime: str, selector: str,
) -> None:
    # The host's own identity is aa-onboarding; uami-reader is attached and chosen explicitly.
    act_as(monkeypatch, emulator_server, "aa-onboarding", runtime)
    uami = directory.identity_by_name("uami-reader")
    assert uami is not None
    value = {"client_id": uami.client_id, "object_id": uami.principal_id,
             "resource_id": uami.resource_id}[selector]
    credential = ManagedIdentityCredential(identity_config={selector: value}) if (
        selector != "client_id") else ManagedIdentityCredential(client_id=value)
    claims = claims_of(credential.get_token(API_SCOPE).token)
    assert claims["appid"] == uami.client_id
    assert claims["oid"] == uami.principal_id
    assert claims["roles"] == ["Tenants.Read"]


def test_client_secret_credential_gets_token_from_the_emulator_authority(
    emulator: EmulatorInfo, directory: Directory
) -> None:
    ci = directory.app_by_name("ci-pipeline")
    assert ci is not None
    credential = ClientSecretCredential(
        emulator.tenant_id, ci.client_id, "ci-local-secret", authority=emulator.authority,
        disable_instance_discovery=True, connection_verify=emulator.ca_bundle,
    )
    token = credential.get_token(API_SCOPE)
    claims = verify(token.token, emulator, f"api://{API_CLIENT_ID}")
    assert claims["appid"] == ci.client_id
    assert claims["appidacr"] == "1"
    assert "idtyp" not in claims  # optional; tenantops-api does not ask for it
    assert claims["roles"] == ["Tenants.Read", "Tenants.Write"]


def test_default_azure_credential_uses_the_managed_identity_it_finds(
    monkeypatch: pytest.MonkeyPatch, emulator_server: EmulatorServer, emulator: EmulatorInfo,
) -> None:
    act_as(monkeypatch, emulator_server, "aa-onboarding", "app-service")
    monkeypatch.setenv("AZURE_TOKEN_CREDENTIALS", "prod")
    token = DefaultAzureCredential().get_token(API_SCOPE)
    assert claims_of(token.token)["aud"] == f"api://{API_CLIENT_ID}"


def test_msal_confidential_client_gets_token(
    monkeypatch: pytest.MonkeyPatch, emulator: EmulatorInfo, directory: Directory
) -> None:
    ci = directory.app_by_name("ci-pipeline")
    assert ci is not None
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", emulator.ca_bundle)  # as `emulator env` prints
    app = msal.ConfidentialClientApplication(
        ci.client_id, client_credential="ci-local-secret",
        authority=f"{emulator.authority}/{emulator.tenant_id}", instance_discovery=False,
    )
    result = app.acquire_token_for_client(scopes=[API_SCOPE])
    assert "access_token" in result, result.get("error_description")
    assert verify(result["access_token"], emulator, f"api://{API_CLIENT_ID}")["roles"] == [
        "Tenants.Read", "Tenants.Write"]


def test_msal_managed_identity_client_gets_token(
    monkeypatch: pytest.MonkeyPatch, emulator_server: EmulatorServer, emulator: EmulatorInfo,
) -> None:
    act_as(monkeypatch, emulator_server, "aa-onboarding", "app-service")
    with requests.Session() as session:
        client = msal.ManagedIdentityClient(msal.SystemAssignedManagedIdentity(),
                                            http_client=session)
        result = client.acquire_token_for_client(resource=API_CLIENT_ID)
    assert "access_token" in result, result
    assert claims_of(result["access_token"])["aud"] == API_CLIENT_ID
