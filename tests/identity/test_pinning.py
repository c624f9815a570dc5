"""The client's attack catalogue (docs/attacks.md, "Client side"): a server never chooses the
audience of the caller's token, and a token travels only over https (or to this machine) and
never along a redirect.

The "API" here is hostile: it advertises an audience (in its 401 challenge or its metadata
route) to harvest a token for a Microsoft service. Every refusal must come before any token is
requested, which `RecordingProvider` proves by counting.
"""

from __future__ import annotations

import time

import httpx
import pytest
from typer.testing import CliRunner

from tenantops.cli.main import app
from tenantops.emulator.directory import API_CLIENT_ID
from tenantops.errors import (
    ApiRedirectedError,
    InsecureTransportError,
    UntrustedAudienceError,
)
from tenantops.first_party import FIRST_PARTY_RESOURCES, first_party_resource
from tenantops.identity import (
    Audience,
    BearerAuth,
    BearerToken,
    TenantOpsClient,
    pin_advertised,
)
from tests.identity.conftest import ActAs
from tests.support.http_servers import reply, serve

ARM_GUID = "797f4846-ba00-4fd7-ba43-dac1f8f63013"
GRAPH_GUID = "00000003-0000-0000-c000-000000000000"


class RecordingProvider:
    """A token provider that records every audience it was asked for."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def get_token(self, audience: Audience) -> BearerToken:
        self.asked.append(audience.resource)
        return BearerToken("header.payload.signature", int(time.time()) + 3600)


def hostile_api(advertised: str, *, via: str) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """An API that asks for ``advertised``, in its challenge or its metadata route."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/api/meta":
            if via == "metadata":
                return httpx.Response(200, json={"service": "tenantops", "audience": advertised})
            return httpx.Response(404)
        if "authorization" in request.headers:
            return httpx.Response(200, json={"harvested": True})
        challenge = f'Bearer realm="x", resource_id="{advertised}"' if via == "challenge" \
            else 'Bearer realm="x"'
        return httpx.Response(401, headers={"WWW-Authenticate": challenge})

    return httpx.MockTransport(handle), seen


FIRST_PARTY_VARIANTS = {
    "arm": "https://management.azure.com/",
    "arm-without-slash": "https://management.azure.com",
    "arm-classic-management-core": "https://management.core.windows.net/",
    "arm-us-government": "https://management.usgovcloudapi.net/",
    "arm-china": "https://management.chinacloudapi.cn/",
    "arm-upper-case": "HTTPS://MANAGEMENT.AZURE.COM/",
    "arm-default-scope": "https://management.azure.com//.default",
    "arm-app-id-guid": ARM_GUID,
    "arm-app-id-guid-upper-case": ARM_GUID.upper(),
    "arm-app-id-as-api-uri": f"api://{ARM_GUID}",
    "microsoft-graph": "https://graph.microsoft.com/",
    "microsoft-graph-app-id": GRAPH_GUID,
    "microsoft-graph-us-government": "https://graph.microsoft.us",
    "aad-graph": "https://graph.windows.net/",
    "aad-graph-app-id": "00000002-0000-0000-c000-000000000000",
    "key-vault": "https://vault.azure.net",
    "key-vault-app-id": "cfa8b339-82a2-471a-a3c9-0fc0be7a4093",
    "key-vault-us-government-app-id": "7e7c393b-45d0-48b1-a35e-2905ddf8183c",
    "storage": "https://storage.azure.com/",
    "storage-app-id": "e406a681-f3d4-42a8-90b6-c2b029497af1",
    "sql": "https://database.windows.net/",
    "sql-app-id": "022907d3-0f1b-48f7-badc-1ba6abab6d66",
    "postgres-mysql": "https://ossrdbms-aad.database.windows.net",
    "service-bus": "https://servicebus.azure.net",
    "event-hubs": "https://eventhubs.azure.net",
    "cosmos-db": "https://cosmos.azure.com",
    "azure-monitor": "https://monitor.azure.com/",
    "log-analytics": "https://api.loganalytics.io",
    "log-analytics-app-id": "ca7f3f0b-7d91-482c-8e09-c5d840d0eac5",
    "workload-identity-token-exchange": "api://AzureADTokenExchange",
    "reserved-first-party-guid-shape": "00000007-0000-0000-c000-000000000000",
    "reserved-office-guid-shape": "00000002-0000-0ff1-ce00-000000000000",
}


@pytest.mark.parametrize("via", ["challenge", "metadata"])
@pytest.mark.parametrize("advertised", FIRST_PARTY_VARIANTS.values(),
                         ids=FIRST_PARTY_VARIANTS.keys())
def test_server_asking_for_a_first_party_audience_is_refused_before_any_token_is_requested(
    advertised: str, via: str
) -> None:
    transport, seen = hostile_api(advertised, via=via)
    provider = RecordingProvider()
    with TenantOpsClient(credential=provider, transport=transport) as client, \
            pytest.raises(UntrustedAudienceError) as caught:
        client.get("https://api.attacker.test/api/tenants")
    assert provider.asked == []
    assert not any("authorization" in r.headers for r in seen)
    service = first_party_resource(advertised)
    assert service is not None
    message = str(caught.value)
    assert f"asks for a token for {advertised!r}, which is {service.name}" in message
    assert "tenantops never requests a token for a Microsoft first-party service because a " \
        "server asked for one" in message
    assert caught.value.advertised == advertised


NOT_AN_APPLICATION = {
    "another-https-service": "https://evil.example/",
    "custom-https-app-id-uri": "https://api.contoso.com",
    "urn": "urn:contoso:api",
    "http-uri": "http://api.contoso.com",
    "named-scope": f"api://{API_CLIENT_ID}/Tenants.Write",
    "two-audiences": f"{API_CLIENT_ID} https://management.azure.com/",
    "plain-word": "tenantops",
}


@pytest.mark.parametrize("advertised", NOT_AN_APPLICATION.values(),
                         ids=NOT_AN_APPLICATION.keys())
def test_server_asking_for_anything_but_a_client_id_or_api_uri_is_refused(
    advertised: str,
) -> None:
    transport, _ = hostile_api(advertised, via="challenge")
    provider = RecordingProvider()
    with TenantOpsClient(credential=provider, transport=transport) as client, \
            pytest.raises(UntrustedAudienceError) as caught:
        client.get("https://api.attacker.test/api/tenants")
    assert provider.asked == []
    assert repr(advertised) in str(caught.value)


def test_an_https_app_id_uri_is_requested_when_the_caller_configured_it() -> None:
    transport, _ = hostile_api("https://api.contoso.com/", via="challenge")
    provider = RecordingProvider()
    with TenantOpsClient(credential=provider, transport=transport,
                         configured_audience="https://api.contoso.com") as client:
        assert client.get("https://api.contoso.test/api/tenants").status_code == 200
    assert provider.asked == ["https://api.contoso.com"]


@pytest.mark.parametrize("advertised", [API_CLIENT_ID, f"api://{API_CLIENT_ID}",
                                        "api://tenants-api.contoso.example"])
def test_a_client_id_or_api_uri_of_the_servers_choice_is_requested(advertised: str) -> None:
    transport, _ = hostile_api(advertised, via="challenge")
    provider = RecordingProvider()
    with TenantOpsClient(credential=provider, transport=transport) as client:
        assert client.get("https://api.test/api/tenants").status_code == 200
    assert provider.asked == [pin_advertised(advertised, where="test", configured=None).resource]


def test_an_explicit_first_party_audience_is_the_callers_choice_and_is_sent() -> None:
    transport, _ = hostile_api(API_CLIENT_ID, via="challenge")
    provider = RecordingProvider()
    with TenantOpsClient(credential=provider, transport=transport,
                         audience="https://management.azure.com/") as client:
        client.get("https://management.azure.com/subscriptions")
    assert provider.asked == ["https://management.azure.com/"]


def test_the_first_party_list_covers_every_service_the_issue_names() -> None:
    names = {r.name for r in FIRST_PARTY_RESOURCES}
    for wanted in ("Azure Resource Manager", "Microsoft Graph", "Azure AD Graph",
                   "Azure Key Vault", "Azure Storage", "Azure SQL Database", "Azure Service Bus",
                   "Azure Event Hubs", "Azure Cosmos DB", "Azure Monitor", "Log Analytics"):
        assert wanted in names
    for resource in FIRST_PARTY_RESOURCES:
        assert resource.resources or resource.app_ids, resource.name
        for name in (*resource.resources, *resource.app_ids):
            assert first_party_resource(name) is resource, name
    assert first_party_resource(API_CLIENT_ID) is None
    assert first_party_resource(f"api://{API_CLIENT_ID}") is None


PLAIN_HTTP_ELSEWHERE = ["http://api.example.com/api/tenants", "http://10.0.0.5:8000/api/tenants",
                        "http://169.254.169.254/api/tenants", "http://[fe80::1]/api/tenants",
                        "http://localhost.attacker.test/api/tenants",
                        "http://127.0.0.1.nip.io/api/tenants"]


@pytest.mark.parametrize("url", PLAIN_HTTP_ELSEWHERE)
def test_bearer_token_over_plain_http_to_another_host_is_refused(url: str) -> None:
    transport, seen = hostile_api(API_CLIENT_ID, via="challenge")
    provider = RecordingProvider()
    with TenantOpsClient(credential=provider, transport=transport) as client, \
            pytest.raises(InsecureTransportError) as caught:
        client.get(url)
    assert seen == []
    assert provider.asked == []
    assert f"tenantops will not send a bearer token to {url}: it is plain http" in \
        str(caught.value)
    assert "Next: use https://" in str(caught.value)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/api/tenants",
                                 "http://localhost:8000/api/tenants",
                                 "http://[::1]:8000/api/tenants", "http://127.8.9.10/api/tenants"])
def test_plain_http_to_this_machine_is_allowed(url: str) -> None:
    transport, _ = hostile_api(API_CLIENT_ID, via="challenge")
    with TenantOpsClient(credential=RecordingProvider(), transport=transport) as client:
        assert client.get(url).status_code == 200


def test_bearer_auth_refuses_plain_http_for_any_httpx_client() -> None:
    transport, seen = hostile_api(API_CLIENT_ID, via="challenge")
    provider = RecordingProvider()
    auth = BearerAuth.for_audience(provider, API_CLIENT_ID)
    with httpx.Client(transport=transport, auth=auth) as http, \
            pytest.raises(InsecureTransportError):
        http.get("http://api.example.com/api/tenants")
    assert seen == []
    assert provider.asked == []


def _redirecting(location: str) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "api.test" and "authorization" in request.headers:
            return httpx.Response(302, headers={"Location": location})
        if request.url.host == "api.test":
            return httpx.Response(401, headers={
                "WWW-Authenticate": f'Bearer realm="x", resource_id="{API_CLIENT_ID}"'})
        return httpx.Response(200, json={"stolen": request.headers.get("authorization")})

    return httpx.MockTransport(handle), seen


def test_redirect_is_never_followed_with_the_token_and_names_where_it_pointed() -> None:
    transport, seen = _redirecting("https://collector.attacker.test/steal")
    with TenantOpsClient(credential=RecordingProvider(), transport=transport) as client, \
            pytest.raises(ApiRedirectedError) as caught:
        client.get("https://api.test/api/tenants")
    assert {r.url.host for r in seen} == {"api.test"}
    assert sum("authorization" in r.headers for r in seen) == 1
    assert caught.value.location == "https://collector.attacker.test/steal"
    assert str(caught.value).startswith(
        "GET https://api.test/api/tenants answered 302 Found and would send the call to "
        "https://collector.attacker.test/steal; tenantops does not follow redirects with a "
        "token")


@pytest.mark.parametrize("location", ["https://collector.attacker.test/steal",
                                      "http://api.test/api/tenants",
                                      "https://api.test:8443/api/tenants"],
                         ids=["other-host", "downgrade-to-http", "other-port"])
def test_bearer_auth_on_a_client_that_follows_redirects_never_carries_the_token_off_origin(
    location: str,
) -> None:
    transport, seen = _redirecting(location)
    auth = BearerAuth.for_audience(RecordingProvider(), API_CLIENT_ID)
    with httpx.Client(transport=transport, auth=auth, follow_redirects=True) as http:
        http.get("https://api.test/api/tenants")
    followed = seen[-1]
    assert str(followed.url) == location
    assert "authorization" not in followed.headers


def test_tenantops_call_that_is_redirected_exits_non_zero_and_says_where(act_as: ActAs) -> None:
    act_as("aa-onboarding", "automation")
    with serve(reply(200, {}, b'{"stolen": true}')) as (elsewhere, stolen), \
            serve(reply(307, {"Location": f"{elsewhere}/collect"})) as (api, asked):
        result = CliRunner().invoke(app, ["call", "GET", f"{api}/api/whoami",
                                          "--audience", API_CLIENT_ID])
    assert result.exit_code == 1
    assert f"answered 307 Temporary Redirect and would send the call to {elsewhere}/collect" \
        in result.stderr
    assert asked == ["GET /api/whoami auth=True"]
    assert stolen == []
