"""Raw HTTP against the managed-identity endpoints: the original problem, and every faithful
failure with the status and body Azure gives plus the diagnostic header Azure does not."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import httpx
import pytest

from tenantops.emulator.directory import API_CLIENT_ID, Directory
from tenantops.emulator.managed_identity import DIAGNOSTIC_HEADER
from tenantops.emulator.server import EmulatorInfo, EmulatorServer
from tests.emulator.helpers import claims_of

ARM = "https://management.core.windows.net/"
VAGUE_500 = "An unexpected error occured while fetching the AAD Token."


def app_service(server: EmulatorServer, identity: str = "aa-onboarding",
                **params: str) -> httpx.Response:
    query = {"api-version": "2019-08-01", **params}
    return httpx.get(f"{server.info.mi_url}/msi/token", params=query,
                     headers={"X-IDENTITY-HEADER": server.state.host_secret(identity)})


def test_original_problem_arm_resource_yields_arm_audience(emulator_server: EmulatorServer) -> None:
    response = app_service(emulator_server, resource=ARM)
    assert response.status_code == 200
    assert claims_of(response.json()["access_token"])["aud"] == ARM


def test_original_problem_api_client_id_yields_api_audience(
    emulator_server: EmulatorServer,
) -> None:
    response = app_service(emulator_server, resource=API_CLIENT_ID)
    assert response.status_code == 200
    body = response.json()
    claims = claims_of(body["access_token"])
    assert claims["aud"] == API_CLIENT_ID
    assert claims["roles"] == ["Tenants.Read", "Tenants.Write"]
    # Field for field as App Service answers: every value a string, expires_on = exp.
    assert set(body) == {"access_token", "expires_on", "resource", "token_type", "client_id",
                         "not_before"}
    assert body["expires_on"] == str(claims["exp"])
    assert body["resource"] == API_CLIENT_ID
    assert response.headers["server"] == "Kestrel"


def test_automation_post_form_variant_issues_token(emulator_server: EmulatorServer) -> None:
    response = httpx.post(
        f"{emulator_server.info.mi_url}/automation/msi/token",
        data={"resource": f"api://{API_CLIENT_ID}"},
        headers={"X-IDENTITY-HEADER": emulator_server.state.host_secret("aa-onboarding"),
                 "Metadata": "True"},
    )
    assert response.status_code == 200
    assert claims_of(response.json()["access_token"])["aud"] == f"api://{API_CLIENT_ID}"


def test_identity_without_role_gets_token_without_roles_claim(
    emulator_server: EmulatorServer, directory: Directory,
) -> None:
    uami = directory.identity_by_name("uami-no-role")
    assert uami is not None
    response = app_service(emulator_server, resource=API_CLIENT_ID, client_id=uami.client_id)
    assert response.status_code == 200
    assert "roles" not in claims_of(response.json()["access_token"])


@pytest.mark.parametrize("resource", ["api://nonexistent", f"api://{API_CLIENT_ID}/Tenants.Write"])
def test_unknown_resource_is_the_vague_500_with_aadsts500011_diagnostic(
    emulator_server: EmulatorServer, resource: str
) -> None:
    response = app_service(emulator_server, resource=resource)
    assert response.status_code == 500
    assert response.json()["message"] == VAGUE_500
    assert response.json()["statusCode"] == 500
    assert "correlationId" in response.json()
    diagnostic = response.headers[DIAGNOSTIC_HEADER]
    assert diagnostic.startswith("AADSTS500011: The resource principal named " + resource)


def test_unassigned_role_when_assignment_required_is_vague_500_with_aadsts501051(
    emulator_server: EmulatorServer, directory: Directory
) -> None:
    response = app_service(emulator_server, resource="api://billing")
    assert response.status_code == 500
    assert response.json()["message"] == VAGUE_500
    identity = directory.identity_by_name("aa-onboarding")
    assert identity is not None
    assert response.headers[DIAGNOSTIC_HEADER] == (
        f"AADSTS501051: Application '{identity.client_id}'(aa-onboarding) is not assigned to a "
        "role for the application '0b7c4e2d-6f1a-4d3b-8c5e-9a2f1e7d4b60'(billing-api)."
    )


@pytest.mark.parametrize("header", [None, "wrong-value"])
def test_missing_or_wrong_identity_header_is_401(
    emulator: EmulatorInfo, header: str | None
) -> None:
    headers = {"X-IDENTITY-HEADER": header} if header else {}
    response = httpx.get(f"{emulator.mi_url}/msi/token",
                         params={"resource": ARM, "api-version": "2019-08-01"}, headers=headers)
    assert response.status_code == 401
    assert response.json()["message"] == "Unauthorized request."
    assert "X-IDENTITY-HEADER" in response.headers[DIAGNOSTIC_HEADER]
    assert ("missing" if header is None else "wrong") in response.headers[DIAGNOSTIC_HEADER]


def test_wrong_api_version_is_400(emulator_server: EmulatorServer) -> None:
    response = app_service(emulator_server, resource=ARM, **{"api-version": "2017-09-01"})
    assert response.status_code == 400
    assert "api-version" in response.json()["message"]


def test_unknown_user_assigned_identity_is_400(emulator_server: EmulatorServer) -> None:
    unknown = "11111111-2222-3333-4444-555555555555"
    response = app_service(emulator_server, resource=ARM, client_id=unknown)
    assert response.status_code == 400
    assert response.json()["message"] == (
        "No User Assigned or Delegated Managed Identity found for specified "
        "ClientId/ResourceId/PrincipalId.")
    assert f"client_id={unknown}" in response.headers[DIAGNOSTIC_HEADER]


def test_system_assigned_requested_where_only_user_assigned_exist_is_400(
    emulator_server: EmulatorServer,
) -> None:
    response = app_service(emulator_server, identity="uami-no-role", resource=ARM)
    assert response.status_code == 400
    assert response.json()["message"] == "Unable to load the proper Managed Identity."
    assert "no system-assigned identity" in response.headers[DIAGNOSTIC_HEADER]


def test_two_selectors_at_once_are_refused(
    emulator_server: EmulatorServer, directory: Directory
) -> None:
    uami = directory.identity_by_name("uami-reader")
    assert uami is not None
    response = app_service(emulator_server, resource=ARM, client_id=uami.client_id,
                           principal_id=uami.principal_id)
    assert response.status_code == 400


def imds(server: EmulatorServer, headers: dict[str, str], **params: str) -> httpx.Response:
    secret = server.state.host_secret("aa-onboarding")
    return httpx.get(f"{server.info.mi_url}/imds/{secret}/metadata/identity/oauth2/token",
                     params={"api-version": "2018-02-01", **params}, headers=headers)


def test_imds_without_metadata_header_is_400_bad_request_102(
    emulator_server: EmulatorServer,
) -> None:
    response = imds(emulator_server, {}, resource=ARM)
    assert response.status_code == 400
    assert response.json() == {"error": "bad_request_102",
                               "error_description": "Required metadata header not specified"}
    assert "Metadata: true" in response.headers[DIAGNOSTIC_HEADER]


def test_imds_unknown_resource_is_400_invalid_resource(emulator_server: EmulatorServer) -> None:
    response = imds(emulator_server, {"Metadata": "true"}, resource="api://nonexistent")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_resource"
    assert response.json()["error_description"].startswith("AADSTS500011")


def test_imds_unknown_identity_is_400_identity_not_found(emulator_server: EmulatorServer) -> None:
    response = imds(emulator_server, {"Metadata": "true"}, resource=ARM,
                    client_id="11111111-2222-3333-4444-555555555555")
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_request",
                               "error_description": "Identity not found"}


def test_imds_success_is_imds_shaped(emulator_server: EmulatorServer) -> None:
    response = imds(emulator_server, {"Metadata": "true"}, resource=ARM)
    assert response.status_code == 200
    body = response.json()
    assert {"access_token", "refresh_token", "expires_in", "expires_on", "not_before",
            "resource", "token_type"} <= set(body)
    assert all(isinstance(v, str) for v in body.values())


def test_legacy_msi_expires_on_is_a_date_string(emulator_server: EmulatorServer) -> None:
    response = httpx.get(
        f"{emulator_server.info.mi_url}/msi/2017-09-01/token",
        params={"resource": ARM, "api-version": "2017-09-01"},
        headers={"secret": emulator_server.state.host_secret("aa-onboarding")},
    )
    assert response.status_code == 200
    expires_on = response.json()["expires_on"]
    parsed = dt.datetime.strptime(expires_on, "%m/%d/%Y %H:%M:%S %z")
    assert int(parsed.timestamp()) == claims_of(response.json()["access_token"])["exp"]


def test_legacy_msi_wrong_secret_is_401(emulator: EmulatorInfo) -> None:
    response = httpx.get(f"{emulator.mi_url}/msi/2017-09-01/token",
                         params={"resource": ARM, "api-version": "2017-09-01"},
                         headers={"secret": "nope"})
    assert response.status_code == 401
    assert "MSI_SECRET" in response.headers[DIAGNOSTIC_HEADER]


def test_arc_challenges_with_key_file_then_accepts_its_contents(
    emulator_server: EmulatorServer,
) -> None:
    secret = emulator_server.state.host_secret("aa-onboarding")
    url = f"{emulator_server.info.mi_url}/arc/{secret}/metadata/identity/oauth2/token"
    params = {"api-version": "2020-06-01", "resource": ARM}
    challenge = httpx.get(url, params=params, headers={"Metadata": "true"})
    assert challenge.status_code == 401
    scheme, _, realm = challenge.headers["www-authenticate"].partition(" realm=")
    assert scheme == "Basic"
    key_file = Path(realm)
    assert key_file.suffix == ".key"
    assert key_file.stat().st_mode & 0o077 == 0
    wrong = httpx.get(url, params=params,
                      headers={"Metadata": "true", "Authorization": "Basic not-the-key"})
    assert wrong.status_code == 401
    key = key_file.read_text()
    ok = httpx.get(url, params=params, headers={
        "Metadata": "true", "Authorization": f"Basic {key}"})
    assert ok.status_code == 200
    assert claims_of(ok.json()["access_token"])["aud"] == ARM


def test_arc_key_file_is_removed_after_use_and_the_key_is_good_once(
    emulator_server: EmulatorServer,
) -> None:
    secret = emulator_server.state.host_secret("aa-onboarding")
    url = f"{emulator_server.info.mi_url}/arc/{secret}/metadata/identity/oauth2/token"
    params = {"api-version": "2020-06-01", "resource": ARM}
    challenge = httpx.get(url, params=params, headers={"Metadata": "true"})
    key_file = Path(challenge.headers["www-authenticate"].partition(" realm=")[2])
    headers = {"Metadata": "true", "Authorization": f"Basic {key_file.read_text()}"}

    first = httpx.get(url, params=params, headers=headers)
    replayed = httpx.get(url, params=params, headers=headers)

    assert first.status_code == 200
    assert not key_file.exists()
    assert replayed.status_code == 401
    assert "each key is good for one request" in replayed.headers[DIAGNOSTIC_HEADER]
