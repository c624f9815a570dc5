"""TenantOpsClient and BearerAuth: the audience from the API's 401, one identity-endpoint request
per token lifetime under concurrency, and 401/403 explained with the token beside the
expectation."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tenantops.emulator.directory import API_CLIENT_ID
from tenantops.emulator.server import EmulatorInfo
from tenantops.errors import AudienceDiscoveryError, CallRejectedError
from tenantops.identity import (
    ApiCallRejectedError,
    ApiUnreachableError,
    Audience,
    BearerAuth,
    BearerToken,
    IdentityCredential,
    TenantOpsClient,
)
from tests.identity.conftest import ActAs, Stats, no_imds
from tests.identity.fake_api import FakeApi

URL = "https://api.test/tenants"


def test_a_thousand_calls_from_fifty_threads_make_one_identity_request(
    act_as: ActAs, stats: Stats, fake_api: FakeApi
) -> None:
    act_as("aa-onboarding", "app-service")
    before = stats().get("mi:app-service", 0)
    with IdentityCredential(imds_probe=no_imds) as credential, \
            TenantOpsClient("https://api.test", credential=credential,
                            transport=fake_api.transport()) as client:

        def one_call(_: int) -> int:
            return client.get("/tenants").status_code

        with ThreadPoolExecutor(max_workers=50) as pool:
            statuses = list(pool.map(one_call, range(1000)))
    assert statuses == [200] * 1000
    assert fake_api.authorized_calls == 1000
    assert stats().get("mi:app-service", 0) - before == 1
    assert client.discovered is not None
    assert client.discovered.origin == "www-authenticate"


def test_the_audience_comes_from_the_apis_401(act_as: ActAs, fake_api: FakeApi) -> None:
    act_as("aa-onboarding", "automation")
    with IdentityCredential(imds_probe=no_imds) as credential, \
            TenantOpsClient(credential=credential, transport=fake_api.transport()) as client:
        assert client.get(URL).json() == {"tenants": []}
        assert client.audience() == Audience(API_CLIENT_ID)
        assert client.discovered is not None
        assert client.discovered.detail == (
            f"GET {URL} without a token answered 401 with WWW-Authenticate: Bearer ... "
            f"resource_id={API_CLIENT_ID}")


def test_configured_audience_is_used_when_the_api_does_not_say(
    act_as: ActAs, fake_api: FakeApi
) -> None:
    act_as("aa-onboarding", "app-service")
    fake_api.advertise_audience = False
    with IdentityCredential(imds_probe=no_imds) as credential, \
            TenantOpsClient(credential=credential, transport=fake_api.transport(),
                            configured_audience=f"api://{API_CLIENT_ID}") as client:
        assert client.get(URL).status_code == 200
        assert client.discovered is not None
        assert client.discovered.origin == "configuration"


def test_without_advertised_or_configured_audience_the_error_says_what_to_set(
    fake_api: FakeApi,
) -> None:
    fake_api.advertise_audience = False
    with TenantOpsClient(credential=IdentityCredential(imds_probe=no_imds),
                         transport=fake_api.transport()) as client, \
            pytest.raises(AudienceDiscoveryError) as caught:
        client.get(URL)
    assert str(caught.value) == (
        f"GET {URL} without a token answered 401 with a WWW-Authenticate challenge without "
        "resource_id, "
        "and no audience is configured. Next: set the API app registration's client ID (or "
        "api://<client-id>) with --audience, TENANTOPS_IDENTITY__AUDIENCE or [identity] "
        "audience in tenantops.toml.")


class StaticToken:
    """A provider that returns one fixed token (to send the wrong one on purpose)."""

    def __init__(self, token: str) -> None:
        self.token = token

    def get_token(self, audience: Audience) -> BearerToken:
        return BearerToken(self.token, int(time.time()) + 3600)


def _mi_token(act_as: ActAs, identity: str, resource: str) -> str:
    env = act_as(identity, "app-service")
    response = httpx.get(env["IDENTITY_ENDPOINT"], params={"resource": resource,
                         "api-version": "2019-08-01", **({"client_id": env["AZURE_CLIENT_ID"]}
                                                         if "AZURE_CLIENT_ID" in env else {})},
                         headers={"X-IDENTITY-HEADER": env["IDENTITY_HEADER"]})
    token: str = response.json()["access_token"]
    return token


def test_401_for_an_arm_token_shows_the_tokens_claims_beside_the_expectation(
    act_as: ActAs, fake_api: FakeApi, emulator: EmulatorInfo
) -> None:
    token = _mi_token(act_as, "aa-onboarding", "https://management.core.windows.net/")
    with TenantOpsClient(credential=StaticToken(token), audience=API_CLIENT_ID,
                         transport=fake_api.transport()) as client, \
            pytest.raises(ApiCallRejectedError) as caught:
        client.get(URL)
    error = caught.value
    assert isinstance(error, CallRejectedError)
    assert error.status_code == 401
    lines = str(error).splitlines()
    assert lines[0] == (f"GET {URL} was refused with HTTP 401 (invalid_token): the token's "
                        "audience https://management.core.windows.net/ is not this API")
    assert lines[1].startswith("  the token had:     aud=https://management.core.windows.net/ "
                               f"iss={emulator.authority}/{emulator.tenant_id}/ "
                               f"tid={emulator.tenant_id} roles=(none) appid=")
    assert lines[1].endswith("(expires in 24 h 4 min)")
    assert lines[2] == (f"  the API expects:   expected aud={API_CLIENT_ID} or "
                        f"api://{API_CLIENT_ID}; received aud=https://management.core.windows.net/"
                        f"; audience (resource_id) {API_CLIENT_ID}; tenant {emulator.tenant_id}")
    assert lines[3] == (
        "Next: the token is for Azure Resource Manager (aud=https://management.core.windows.net/)"
        ", the default of 'az account get-access-token' and Connect-AzAccount. Request a token "
        f"whose resource is the API's client ID {API_CLIENT_ID}: managed identity "
        f"resource={API_CLIENT_ID}, client credentials scope api://{API_CLIENT_ID}/.default, "
        f"Azure CLI 'az account get-access-token --resource {API_CLIENT_ID}'; 'tenantops call' "
        "does this by itself.")
    assert token not in str(error)


def test_403_for_a_missing_role_names_the_role_and_how_to_assign_it(
    act_as: ActAs, fake_api: FakeApi, emulator: EmulatorInfo
) -> None:
    fake_api.required_role = "Tenants.Write"
    act_as("uami-reader", "app-service")
    with IdentityCredential(imds_probe=no_imds) as credential, \
            TenantOpsClient(credential=credential, transport=fake_api.transport()) as client, \
            pytest.raises(ApiCallRejectedError) as caught:
        client.post(URL, json={"slug": "acme"})
    message = str(caught.value)
    rejection = caught.value.rejection
    assert rejection.status == 403
    assert rejection.token is not None
    oid = rejection.token.oid
    assert message.startswith(f"POST {URL} was refused with HTTP 403 (insufficient_scope): "
                              "this call needs the app role Tenants.Write")
    assert "roles=Tenants.Read" in message
    assert "  the API expects:   expected role=Tenants.Write; received roles=Tenants.Read" \
        in message
    assert ("Next: the token is valid but lacks the permission this call needs (app role "
            "Tenants.Write; the token's roles: Tenants.Read); assign an app role with az rest -m "
            f"POST -u https://graph.microsoft.com/v1.0/servicePrincipals/{oid}/appRoleAssignments"
            f" -b '{{\"principalId\":\"{oid}\",\"resourceId\":\"<api-sp-object-id>\","
            "\"appRoleId\":\"<role-id>\"}'") in message
    assert "appRoles[?value=='Tenants.Write'].id" in message
    assert f"New-MgServicePrincipalAppRoleAssignment -ServicePrincipalId {oid} " \
        f"-PrincipalId {oid} -ResourceId <api-sp-object-id> -AppRoleId <role-id>" in message


def test_a_401_drops_the_cached_token(fake_api: FakeApi) -> None:
    class Counting(StaticToken):
        calls = 0

        def get_token(self, audience: Audience) -> BearerToken:
            self.calls += 1
            return super().get_token(audience)

    provider = Counting("not-a-jwt")
    with TenantOpsClient(credential=provider, audience=API_CLIENT_ID,
                         transport=fake_api.transport()) as client:
        for _ in range(2):
            with pytest.raises(ApiCallRejectedError):
                client.get(URL)
    assert provider.calls == 2


def test_an_unreachable_api_is_one_error_with_the_url() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with TenantOpsClient(credential=StaticToken("t"), audience=API_CLIENT_ID,
                         transport=httpx.MockTransport(refuse)) as client, \
            pytest.raises(ApiUnreachableError) as caught:
        client.get(URL)
    assert str(caught.value) == (
        f"the API is unreachable: GET {URL} failed (ConnectError: connection refused). Next: "
        "check the URL (--api-url, TENANTOPS_API__URL or api.url) and that the API is running "
        "('tenantops serve') and reachable from here (DNS, firewall, proxy)")
    assert caught.value.url == URL


def test_bearer_auth_works_with_any_httpx_client(act_as: ActAs, fake_api: FakeApi) -> None:
    act_as("aa-onboarding", "imds")
    with IdentityCredential(imds_probe=no_imds) as credential, \
            httpx.Client(transport=fake_api.transport(),
                         auth=BearerAuth.for_audience(credential, API_CLIENT_ID)) as http:
        assert http.get(URL).status_code == 200


def test_constructing_a_client_does_no_io() -> None:
    def explode(request: httpx.Request) -> httpx.Response:
        raise AssertionError("I/O in a constructor")

    client = TenantOpsClient("https://api.test", credential=StaticToken("t"),
                             transport=httpx.MockTransport(explode))
    client.close()
    IdentityCredential().close()
