"""``tenantops auth doctor``: each classic failure gets its own verdict and exact fix."""

from __future__ import annotations

import json

import httpx
import pytest

from tenantops.config import IdentitySettings
from tenantops.emulator.directory import API_CLIENT_ID, Directory
from tenantops.emulator.server import EmulatorInfo
from tenantops.identity.doctor import Doctor, DoctorReport
from tests.identity.conftest import RUNTIMES, ActAs, no_imds
from tests.identity.fake_api import FakeApi

URL = "https://api.test/tenants"
BILLING_CLIENT_ID = "0b7c4e2d-6f1a-4d3b-8c5e-9a2f1e7d4b60"


def diagnose(api: FakeApi | httpx.MockTransport, settings: IdentitySettings | None = None,
             **options: object) -> DoctorReport:
    transport = api.transport() if isinstance(api, FakeApi) else api
    doctor = Doctor(settings, api_transport=transport, imds_probe=no_imds,
                    **options)  # type: ignore[arg-type]
    return doctor.run(URL)


def statuses(report: DoctorReport) -> list[str]:
    return [f"{step.name}:{step.status}" for step in report.steps]


def test_a_working_call_is_ok_with_exit_code_0(act_as: ActAs, fake_api: FakeApi,
                                               emulator: EmulatorInfo) -> None:
    act_as("aa-onboarding", "automation")
    report = diagnose(fake_api)
    assert statuses(report) == ["probe:ok", "audience:ok", "identity:ok", "token:ok",
                                "claims:ok", "call:ok"]
    assert report.exit_code == 0
    assert report.verdict.summary == f"GET {URL} answered 200: the call works"
    text = report.render()
    assert f"[  ok] 1. Probe the URL without a token\n       GET {URL} answered 401 with " \
        f"WWW-Authenticate: Bearer ... resource_id={API_CLIENT_ID}, tenant {emulator.tenant_id}" \
        in text
    assert (f"requesting {API_CLIENT_ID}, advertised by the API (resource_id); managed "
            f"identity resource={API_CLIENT_ID}, client credentials scope "
            f"{API_CLIENT_ID}/.default") in text
    assert "using managed-identity: App Service / Functions / Automation endpoint at" in text
    assert "variables set: IDENTITY_ENDPOINT, IDENTITY_HEADER, AZURE_TENANT_ID, " \
        "AZURE_AUTHORITY_HOST" in text
    assert f"aud   {API_CLIENT_ID}: matches the API ({API_CLIENT_ID})" in text
    assert "roles Tenants.Read, Tenants.Write" in text
    assert "exp   expires in 24 h 4 min" in text
    assert text.endswith(f"Verdict: OK. GET {URL} answered 200: the call works")


def test_an_arm_token_is_diagnosed_as_the_wrong_audience(act_as: ActAs,
                                                         fake_api: FakeApi) -> None:
    act_as("aa-onboarding", "app-service")
    report = diagnose(fake_api, audience="https://management.core.windows.net/")
    assert statuses(report) == ["probe:ok", "audience:warn", "identity:ok", "token:ok",
                                "claims:fail", "call:fail"]
    assert report.exit_code == 1
    assert report.steps[1].finding == (
        "you asked for https://management.core.windows.net/, which is Azure Resource Manager's "
        "audience (a token for it manages every Azure resource the identity has a role on "
        "(create, change, delete, read keys)); an API of your own never accepts it: this is the "
        "audience the original 'You do not have permission' problem is about; the API "
        f"advertises {API_CLIENT_ID}")
    assert report.steps[1].next == f"use --audience {API_CLIENT_ID}"
    assert report.verdict.summary == (
        "step 5 (compare the token with what the API expects): the token's audience is "
        "https://management.core.windows.net/ (Azure Resource Manager, the default of 'az "
        f"account get-access-token'), the API expects {API_CLIENT_ID}")
    assert report.verdict.fix == (
        f"request resource={API_CLIENT_ID} (client credentials: scope "
        f"api://{API_CLIENT_ID}/.default); pass --audience {API_CLIENT_ID} or leave --audience "
        "out")
    call = report.steps[5]
    assert call.finding.startswith(
        f"GET {URL} was refused with HTTP 401 (invalid_token): the token's audience "
        "https://management.core.windows.net/ is not this API")
    assert call.next.startswith("the token is for Azure Resource Manager")


def test_the_vague_500_with_aadsts500011_is_explained_as_a_wrong_resource(
    act_as: ActAs, fake_api: FakeApi
) -> None:
    act_as("aa-onboarding", "app-service")
    report = diagnose(fake_api, audience="api://tenantops-api")
    assert statuses(report)[3:] == ["token:fail", "claims:skip", "call:skip"]
    token = report.steps[3]
    assert token.finding.splitlines()[:2] == [
        "the App Service / Functions / Automation endpoint refused resource=api://tenantops-api:"
        " HTTP 500 'An unexpected error occured while fetching the AAD Token.'",
        "what Entra really said (x-tenantops-diagnostic): AADSTS500011: The resource principal "
        "named api://tenantops-api was not found in the tenant named "
        f"{token.details['endpoint']['diagnostic'].split('tenant named ')[1].split('.')[0]}. "
        "This can happen if the application has not been installed by the administrator of "
        "the tenant or consented to by any user in the tenant. You might have sent your "
        "authentication request to the wrong tenant.",
    ]
    assert token.details["endpoint"]["status"] == 500
    assert report.verdict.fix.startswith(
        "Entra has no application whose client ID or App ID URI is 'api://tenantops-api' "
        "(AADSTS500011). Ask for the API app registration's client ID (a GUID) or one of its "
        "App ID URIs such as api://<client-id>")


def test_the_vague_500_without_a_diagnostic_names_both_usual_causes(
    act_as: ActAs, fake_api: FakeApi
) -> None:
    """Real Azure sends no diagnostic header: the doctor explains both causes."""
    act_as("aa-onboarding", "app-service")

    def app_service(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, json={
            "statusCode": 500, "correlationId": "c0ffee",
            "message": "An unexpected error occured while fetching the AAD Token."},
            headers={"Server": "Kestrel", "X-CORRELATION-ID": "c0ffee"})

    report = diagnose(fake_api, audience="api://tenantops-api",
                      identity_transport=httpx.MockTransport(app_service))
    token = report.steps[3]
    assert "Entra's real answer is hidden behind this vague 500; the two usual causes follow" \
        in token.finding
    assert "correlation ID: c0ffee" in token.finding
    assert "(1) AADSTS500011, wrong resource: 'api://tenantops-api' is not the API's client " \
        "ID or App ID URI" in report.verdict.fix
    assert "(2) AADSTS501051, the identity holds no app role while the API requires " \
        "assignment" in report.verdict.fix
    assert "az rest -m POST -u https://graph.microsoft.com/v1.0/servicePrincipals/" \
        in report.verdict.fix


def test_no_role_assignment_on_an_assignment_required_app_is_aadsts501051(
    act_as: ActAs, fake_api: FakeApi, directory: Directory
) -> None:
    act_as("aa-onboarding", "app-service")
    fake_api.client_id = BILLING_CLIENT_ID
    report = diagnose(fake_api)
    assert statuses(report)[3] == "token:fail"
    identity = directory.identity_by_name("aa-onboarding")
    assert identity is not None
    token = report.steps[3]
    assert (f"what Entra really said (x-tenantops-diagnostic): AADSTS501051: Application "
            f"'{identity.client_id}'(aa-onboarding) is not assigned to a role for the "
            f"application '{BILLING_CLIENT_ID}'(billing-api).") in token.finding
    fix = report.verdict.fix
    assert fix.startswith("the identity holds no app role on the API, and the API's enterprise "
                          "application requires assignment")
    assert (f"(<api-sp-object-id> is $(az ad sp show --id {BILLING_CLIENT_ID} --query id -o "
            "tsv)") in fix
    assert (f"<principal-sp-object-id> is $(az ad sp show --id {identity.client_id} --query id "
            "-o tsv)") in fix
    assert "New-MgServicePrincipalAppRoleAssignment" in fix


def test_a_missing_role_is_a_403_with_the_role_assignment_to_make(
    act_as: ActAs, fake_api: FakeApi, directory: Directory
) -> None:
    act_as("uami-no-role", "app-service")
    fake_api.required_role = "Tenants.Write"
    report = diagnose(fake_api)
    assert statuses(report) == ["probe:ok", "audience:ok", "identity:ok", "token:ok",
                                "claims:warn", "call:fail"]
    identity = directory.identity_by_name("uami-no-role")
    assert identity is not None
    assert report.steps[4].finding.splitlines()[0] == (
        "the token carries no app roles; routes that need one (Tenants.Read/Write/Delete) "
        "answer 403")
    assert report.verdict.summary == (
        f"step 6 (call the URL with the token): GET {URL} was refused with HTTP 403 "
        "(insufficient_scope): this call needs the app role Tenants.Write")
    assert report.verdict.fix.startswith(
        "the token is valid but lacks the permission this call needs (app role Tenants.Write; "
        "the token's roles: none); assign an app role with az rest -m POST -u "
        f"https://graph.microsoft.com/v1.0/servicePrincipals/{identity.principal_id}/"
        "appRoleAssignments")
    assert "appRoles[?value=='Tenants.Write'].id" in report.verdict.fix


def test_an_api_that_does_not_advertise_its_audience_asks_for_configuration(
    act_as: ActAs, fake_api: FakeApi
) -> None:
    act_as("aa-onboarding", "app-service")
    fake_api.advertise_audience = False
    report = diagnose(fake_api)
    assert statuses(report)[:2] == ["probe:warn", "audience:fail"]
    assert report.verdict.fix.startswith(
        "pass --audience with the API app registration's client ID")
    configured = diagnose(fake_api, IdentitySettings(audience=API_CLIENT_ID))
    assert configured.exit_code == 0


def test_an_unreachable_api_is_the_verdict(act_as: ActAs) -> None:
    act_as("aa-onboarding", "app-service")

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    report = diagnose(httpx.MockTransport(refuse), IdentitySettings(audience=API_CLIENT_ID))
    assert statuses(report) == ["probe:fail", "audience:ok", "identity:ok", "token:ok",
                                "claims:ok", "call:skip"]
    assert report.verdict.summary == (
        f"step 1 (probe the URL without a token): GET {URL} failed: connection refused")


def test_no_identity_here_lists_every_source(fake_api: FakeApi) -> None:
    report = diagnose(fake_api)
    identity = report.steps[2]
    assert identity.status == "fail"
    assert identity.finding.startswith(
        "no identity was found here, so there is no token to call the API with. Looked for, "
        "in azure-identity's order:")
    assert [s["source"] for s in identity.details["sources"]] == [
        "environment", "workload-identity", "managed-identity", "azure-cli"]


def test_json_report_is_machine_readable(act_as: ActAs, fake_api: FakeApi) -> None:
    act_as("uami-no-role", "imds")
    data = json.loads(diagnose(fake_api).to_json())
    assert data["ok"] is False
    assert data["url"] == URL
    assert [s["name"] for s in data["steps"]] == ["probe", "audience", "identity", "token",
                                                  "claims", "call"]
    assert data["steps"][5]["details"]["status"] == 403
    assert data["steps"][4]["details"]["claims"]["roles"] == []
    assert data["verdict"]["fix"].startswith("the token is valid but lacks the permission")


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_the_doctor_works_in_every_runtime(runtime: str, act_as: ActAs,
                                           fake_api: FakeApi) -> None:
    act_as("aa-onboarding", runtime)
    assert diagnose(fake_api).exit_code == 0
    fake_api.client_id = BILLING_CLIENT_ID
    refused = diagnose(fake_api)
    assert "AADSTS501051" in refused.steps[3].finding



def _advertising(resource_id: str, *, meta: bool = False) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/meta"):
            return (httpx.Response(200, json={"service": "tenantops", "audience": resource_id})
                    if meta else httpx.Response(404))
        if "authorization" in request.headers:
            return httpx.Response(200, json={"harvested": True})
        challenge = 'Bearer realm="x"' if meta else f'Bearer realm="x", resource_id="{resource_id}"'
        return httpx.Response(401, headers={"WWW-Authenticate": challenge})
    return httpx.MockTransport(handle)


@pytest.mark.parametrize("meta", [False, True], ids=["in-its-challenge", "in-its-metadata"])
def test_an_api_advertising_the_arm_audience_is_a_failure_not_ok(act_as: ActAs,
                                                                 meta: bool) -> None:
    act_as("aa-onboarding", "automation")
    doctor = Doctor(api_transport=_advertising("https://management.azure.com/", meta=meta),
                    imds_probe=no_imds)
    report = doctor.run("https://api.test/api/tenants")
    assert statuses(report) == ["probe:ok", "audience:fail", "identity:ok", "token:skip",
                                "claims:skip", "call:skip"]
    assert report.exit_code == 1
    assert report.verdict.ok is False
    audience = report.steps[1]
    assert "asks for a token for 'https://management.azure.com/', which is Azure Resource " \
        "Manager" in audience.finding
    assert audience.next.startswith("do not send this API a token for what it asks")
    text = report.render()
    assert "Verdict: FAIL. step 2 (decide the audience to request)" in text
    assert "Verdict: OK" not in text


def test_the_doctor_reads_the_metadata_route_when_the_challenge_names_no_audience(
    act_as: ActAs,
) -> None:
    act_as("aa-onboarding", "automation")
    report = Doctor(api_transport=_advertising(API_CLIENT_ID, meta=True),
                    imds_probe=no_imds).run("https://api.test/api/tenants")
    assert report.steps[0].finding == (
        "GET https://api.test/api/tenants answered 401 without naming an audience; the API's "
        f"metadata route (https://api.test/api/meta) names {API_CLIENT_ID}")
    assert report.steps[1].finding.startswith(
        f"requesting {API_CLIENT_ID}, published by the API's metadata route "
        "(https://api.test/api/meta)")


def test_the_doctor_sends_no_token_over_plain_http_to_another_host(act_as: ActAs) -> None:
    act_as("aa-onboarding", "automation")
    seen: list[httpx.Request] = []
    inner = _advertising(API_CLIENT_ID)

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return inner.handle_request(request)

    report = Doctor(api_transport=httpx.MockTransport(handle), imds_probe=no_imds).run(
        "http://api.example.com/api/tenants")
    assert report.steps[-1].status == "fail"
    assert report.steps[-1].finding == (
        "tenantops will not send a bearer token to http://api.example.com/api/tenants: it is "
        "plain http, not https, to another machine, so anyone on the way could read the token "
        "and replay it.")
    assert not any("authorization" in r.headers for r in seen)


def test_the_doctor_follows_no_redirect_with_the_token(act_as: ActAs) -> None:
    act_as("aa-onboarding", "automation")

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.host != "api.test":
            raise AssertionError("the doctor followed the redirect")
        if "authorization" in request.headers:
            return httpx.Response(302, headers={"Location": "https://elsewhere.test/x"})
        return httpx.Response(401, headers={
            "WWW-Authenticate": f'Bearer realm="x", resource_id="{API_CLIENT_ID}"'})

    report = Doctor(api_transport=httpx.MockTransport(handle), imds_probe=no_imds).run(URL)
    call = report.steps[-1]
    assert call.status == "fail"
    assert call.finding == (f"GET {URL} answered 302 and redirects to https://elsewhere.test/x; "
                            "the token was not sent there")
