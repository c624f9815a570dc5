"""The real azure-identity, through tenantops' credential layer, against the emulator's
managed-identity endpoints: one test body per runtime (App Service, Automation, IMDS, legacy
MSI in its App Service and Azure ML flavours, Arc). The legacy endpoint is asked by tenantops'
own `LegacyMsiCredential` (see the last test for why)."""

from __future__ import annotations

import logging

import pytest
from azure.identity import ManagedIdentityCredential

from tenantops.config import IdentitySettings
from tenantops.emulator.directory import API_CLIENT_ID, Directory
from tenantops.errors import TokenRequestError
from tenantops.identity import Audience, IdentityCredential, parse_audience
from tests.identity.conftest import MI_COUNTER, RUNTIMES, ActAs, Stats, no_imds

AUDIENCE = parse_audience(f"api://{API_CLIENT_ID}/.default")
SELECTING_RUNTIMES = tuple(r for r in RUNTIMES if r not in {"msi-legacy", "azure-ml"})
VAGUE_500_RUNTIMES = {"app-service", "automation", "msi-legacy", "azure-ml"}


def _credential(settings: IdentitySettings | None = None) -> IdentityCredential:
    return IdentityCredential(settings, azure_options={"retry_total": 0}, imds_probe=no_imds)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_system_assigned_identity_gets_a_token(
    runtime: str, act_as: ActAs, stats: Stats, directory: Directory
) -> None:
    act_as("aa-onboarding", runtime)
    before = stats().get(MI_COUNTER[runtime], 0)
    with _credential() as credential:
        claims = credential.get_token(AUDIENCE).decode()
    identity = directory.identity_by_name("aa-onboarding")
    assert identity is not None
    assert claims.aud == f"api://{API_CLIENT_ID}"
    assert claims.app_id == identity.client_id
    assert claims.roles == ["Tenants.Read", "Tenants.Write"]
    assert credential.source is not None
    assert credential.source.runtime is not None
    assert "system-assigned identity" in credential.source.detail
    assert stats().get(MI_COUNTER[runtime], 0) > before


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_user_assigned_identity_is_named_by_azure_client_id(
    runtime: str, act_as: ActAs, directory: Directory
) -> None:
    env = act_as("uami-reader", runtime)
    identity = directory.identity_by_name("uami-reader")
    assert identity is not None
    assert env["AZURE_CLIENT_ID"] == identity.client_id
    with _credential() as credential:
        claims = credential.get_token(AUDIENCE).decode()
    assert claims.app_id == identity.client_id
    assert claims.roles == ["Tenants.Read"]
    assert credential.source is not None
    assert (f"user-assigned identity client_id={identity.client_id} (from AZURE_CLIENT_ID)"
            in credential.source.detail)


@pytest.mark.parametrize("runtime", SELECTING_RUNTIMES)
@pytest.mark.parametrize("kind", ["object_id", "resource_id"])
def test_user_assigned_identity_is_named_by_object_or_resource_id(
    runtime: str, kind: str, act_as: ActAs, directory: Directory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    act_as("uami-reader", runtime)
    monkeypatch.delenv("AZURE_CLIENT_ID")
    identity = directory.identity_by_name("uami-reader")
    assert identity is not None
    value = identity.principal_id if kind == "object_id" else identity.resource_id
    with _credential(IdentitySettings(identity=f"{kind}={value}")) as credential:
        claims = credential.get_token(AUDIENCE).decode()
    assert claims.app_id == identity.client_id
    assert claims.oid == identity.principal_id


def test_legacy_msi_names_a_user_assigned_identity_only_by_client_id(
    act_as: ActAs, directory: Directory, monkeypatch: pytest.MonkeyPatch
) -> None:
    act_as("uami-reader", "msi-legacy")
    monkeypatch.delenv("AZURE_CLIENT_ID")
    identity = directory.identity_by_name("uami-reader")
    assert identity is not None
    settings = IdentitySettings(identity=f"object_id={identity.principal_id}")
    with _credential(settings) as credential, pytest.raises(TokenRequestError) as caught:
        credential.get_token(AUDIENCE)
    assert ("the msi endpoint can select a user-assigned identity only by client_id, not by "
            "object_id") in str(caught.value)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_no_role_on_an_assignment_required_app_is_explained_as_aadsts501051(
    runtime: str, act_as: ActAs
) -> None:
    act_as("aa-onboarding", runtime)
    with _credential() as credential, pytest.raises(TokenRequestError) as caught:
        credential.get_token(parse_audience("api://billing"))
    message = str(caught.value)
    assert "it asked for a token for resource 'api://billing' and was refused: HTTP " in message
    if runtime in VAGUE_500_RUNTIMES:
        assert "HTTP 500 'An unexpected error occured while fetching the AAD Token.' " \
            "(diagnostic header: AADSTS501051: Application" in message
    assert "the identity holds no app role on the API" in message
    assert ("az rest -m POST -u https://graph.microsoft.com/v1.0/servicePrincipals/"
            "<principal-sp-object-id>/appRoleAssignments") in message
    assert "az ad sp show --id 0b7c4e2d-6f1a-4d3b-8c5e-9a2f1e7d4b60 --query id -o tsv" \
        in message


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_resource_entra_does_not_know_is_explained_as_aadsts500011(
    runtime: str, act_as: ActAs
) -> None:
    act_as("aa-onboarding", runtime)
    with _credential() as credential, pytest.raises(TokenRequestError) as caught:
        credential.get_token(Audience("api://tenantops-api"))
    message = str(caught.value)
    assert "AADSTS500011: The resource principal named api://tenantops-api was not found" \
        in message
    assert ("Entra has no application whose client ID or App ID URI is 'api://tenantops-api' "
            "(AADSTS500011)") in message


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_an_identity_not_attached_to_the_host_is_named_in_the_error(
    runtime: str, act_as: ActAs, monkeypatch: pytest.MonkeyPatch
) -> None:
    act_as("aa-onboarding", runtime)
    monkeypatch.setenv("AZURE_CLIENT_ID", API_CLIENT_ID)  # the classic mistake (#35015)
    with _credential() as credential, pytest.raises(TokenRequestError) as caught:
        credential.get_token(AUDIENCE)
    message = str(caught.value)
    assert f"user-assigned identity client_id={API_CLIENT_ID} (from AZURE_CLIENT_ID)" in message
    assert ("no managed identity attached to this host matches the one requested" in message
            or "the host has no system-assigned identity, or no identity matches" in message)


def test_a_stale_identity_header_is_explained(act_as: ActAs,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    act_as("aa-onboarding", "app-service")
    monkeypatch.setenv("IDENTITY_HEADER", "rotated-away")
    with _credential() as credential, pytest.raises(TokenRequestError) as caught:
        credential.get_token(AUDIENCE)
    assert "HTTP 401 'Unauthorized request.'" in str(caught.value)
    assert "IDENTITY_HEADER / MSI_SECRET is stale or wrong" in str(caught.value)
    assert "rotated-away" not in str(caught.value)


def test_azure_identity_1_27_cannot_parse_legacy_msi_dates(
    act_as: ActAs, caplog: pytest.LogCaptureFixture
) -> None:
    """Why tenantops asks the 2017-09-01 endpoint itself (docs/decisions.md, 2026-11-30).

    When this starts failing, azure-identity parses the date again and LegacyMsiCredential can
    go.
    """
    caplog.set_level(logging.CRITICAL, logger="azure")
    act_as("aa-onboarding", "msi-legacy")
    with ManagedIdentityCredential() as credential, \
            pytest.raises(ValueError, match="invalid literal for int"):
        credential.get_token(API_CLIENT_ID)
