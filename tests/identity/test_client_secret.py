"""A service principal with a client secret, through azure-identity, against the emulator's
authority (https, its own CA, no instance discovery)."""

from __future__ import annotations

import pytest

from tenantops.config import IdentitySettings
from tenantops.emulator.directory import API_CLIENT_ID
from tenantops.emulator.server import EmulatorInfo
from tenantops.errors import TokenRequestError
from tenantops.identity import IdentityCredential, parse_audience
from tests.identity.conftest import no_imds

CI_CLIENT_ID = "4d3c2b1a-0f9e-4d8c-b7a6-5f4e3d2c1b0a"


@pytest.fixture
def service_principal(monkeypatch: pytest.MonkeyPatch, emulator: EmulatorInfo) -> None:
    monkeypatch.setenv("AZURE_TENANT_ID", emulator.tenant_id)
    monkeypatch.setenv("AZURE_CLIENT_ID", CI_CLIENT_ID)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "ci-local-secret")
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", emulator.authority)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", emulator.ca_bundle)


@pytest.mark.usefixtures("service_principal")
@pytest.mark.parametrize("audience", [API_CLIENT_ID, f"api://{API_CLIENT_ID}",
                                      f"api://{API_CLIENT_ID}/.default"])
def test_client_secret_gets_a_token_for_any_form_of_the_audience(
    audience: str, emulator: EmulatorInfo
) -> None:
    settings = IdentitySettings(source="client-secret")
    with IdentityCredential(settings, imds_probe=no_imds) as credential:
        claims = credential.get_token(parse_audience(audience)).decode()
    assert parse_audience(API_CLIENT_ID).matches(claims.aud or "")
    assert claims.app_id == CI_CLIENT_ID
    assert claims.tid == emulator.tenant_id
    assert claims.roles == ["Tenants.Read", "Tenants.Write"]


@pytest.mark.usefixtures("service_principal")
def test_client_secret_refusal_keeps_entras_words_and_explains_them() -> None:
    with IdentityCredential(IdentitySettings(source="client-secret"),
                            imds_probe=no_imds) as credential, \
            pytest.raises(TokenRequestError) as caught:
        credential.get_token(parse_audience("api://billing"))
    message = str(caught.value)
    assert message.startswith(f"client-secret: service principal {CI_CLIENT_ID} in tenant ")
    assert f"AADSTS501051: Application '{CI_CLIENT_ID}'(ci-pipeline) is not assigned" in message
    assert "What it means: the identity holds no app role on the API" in message
    assert "ci-local-secret" not in message


@pytest.mark.usefixtures("service_principal")
def test_an_unknown_tenant_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_TENANT_ID", "00000000-0000-0000-0000-000000000001")
    with IdentityCredential(imds_probe=no_imds) as credential, \
            pytest.raises(TokenRequestError) as caught:
        credential.get_token(parse_audience(API_CLIENT_ID))
    assert "the tenant does not exist (AADSTS90002); check AZURE_TENANT_ID" in str(caught.value)
