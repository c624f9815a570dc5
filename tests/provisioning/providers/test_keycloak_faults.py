"""How the ``keycloak`` provider classifies failures a healthy test server never produces
(throttling, outages, missing roles), through the provider's transport seam."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from pydantic import SecretStr

from tenantops.config import KeycloakOrganizationSettings
from tenantops.errors import PermanentProviderError, TransientProviderError
from tenantops.provisioning.providers.organization import TenantOrganization
from tenantops.provisioning.providers.organization.keycloak import KeycloakOrganizations

SETTINGS = KeycloakOrganizationSettings(
    url="https://keycloak.test", realm="tenants", client_id="tenantops-provisioner",
    client_secret=SecretStr("s3cret-value"),
)
TENANT = TenantOrganization(alias="acme", name="Acme", domains=("portal.acme.test",),
                            redirect_url="https://portal.acme.test/")

Handler = Callable[[httpx.Request], httpx.Response]


def provider_with(admin_answer: Handler) -> tuple[KeycloakOrganizations, list[httpx.Request]]:
    """A provider whose token requests succeed and whose admin calls get ``admin_answer``."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/protocol/openid-connect/token"):
            return httpx.Response(200, json={"access_token": "token", "expires_in": 300})
        return admin_answer(request)

    return KeycloakOrganizations(SETTINGS, transport=httpx.MockTransport(handle)), seen


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_throttling_and_server_errors_are_transient(status: int) -> None:
    provider, _ = provider_with(lambda _: httpx.Response(status, json={}))

    with pytest.raises(TransientProviderError, match=f"answered {status}") as caught:
        provider.ensure(TENANT)

    assert caught.value.status_code == status
    assert caught.value.provider == "organization:keycloak"


def test_timeouts_and_connection_errors_are_transient() -> None:
    def time_out(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("timed out", request=request)

    provider, _ = provider_with(time_out)

    with pytest.raises(TransientProviderError, match="did not answer"):
        provider.ensure(TENANT)


def test_missing_roles_are_permanent_and_name_the_roles_to_grant() -> None:
    provider, _ = provider_with(lambda _: httpx.Response(403, json={"error": "unknown_error"}))

    with pytest.raises(PermanentProviderError) as caught:
        provider.ensure(TENANT)

    assert "manage-realm" in str(caught.value)
    assert "'tenantops-provisioner'" in str(caught.value)


def test_organizations_turned_off_in_the_realm_says_how_to_turn_them_on() -> None:
    provider, _ = provider_with(lambda _: httpx.Response(404, json={"error": "Not Found"}))

    with pytest.raises(PermanentProviderError, match="organizationsEnabled"):
        provider.ensure(TENANT)


def test_an_expired_token_is_renewed_once() -> None:
    # The marked organization's lookup (401, renewed, none), then any with the alias (none).
    answers = iter([httpx.Response(401), httpx.Response(200, json=[]),
                    httpx.Response(200, json=[])])
    provider, seen = provider_with(lambda _: next(answers))

    assert provider.observe(TENANT) is None
    token_requests = [r for r in seen if r.url.path.endswith("/token")]
    assert len(token_requests) == 2


def test_the_client_secret_and_token_never_appear_in_errors() -> None:
    provider, seen = provider_with(lambda _: httpx.Response(403))

    with pytest.raises(PermanentProviderError) as caught:
        provider.ensure(TENANT)

    assert "s3cret-value" not in str(caught.value)
    assert "token" not in str(caught.value).replace("token settings", "")
    assert seen[0].headers["content-type"] == "application/x-www-form-urlencoded"


@pytest.mark.parametrize(
    "tenant",
    [
        TenantOrganization(alias="acme/../../master", name="x", domains=(),
                           redirect_url="https://a.test/"),
        TenantOrganization(alias="acme", name="x", domains=("evil.test/admin",),
                           redirect_url="https://a.test/"),
        TenantOrganization(alias="acme", name="x", domains=("a b.test",),
                           redirect_url="https://a.test/"),
        TenantOrganization(alias="acme", name="x", domains=(),
                           redirect_url="javascript:alert(1)"),
    ],
)
def test_malformed_input_is_refused_before_any_request(tenant: TenantOrganization) -> None:
    provider, seen = provider_with(lambda _: httpx.Response(200, json=[]))

    with pytest.raises(PermanentProviderError):
        provider.ensure(tenant)

    assert seen == []


def test_no_client_secret_is_refused_with_the_setting_to_fill() -> None:
    settings = SETTINGS.model_copy(update={"client_secret": None})
    provider = KeycloakOrganizations(settings, transport=httpx.MockTransport(
        lambda _: httpx.Response(500)))

    with pytest.raises(PermanentProviderError, match="client_secret or client_secret_file"):
        provider.ensure(TENANT)


@pytest.mark.parametrize(("status", "header", "expected"), [
    (429, "17", 17.0),
    (503, "2.5", 2.5),
    (503, None, None),
    (429, "soon", None),
])
def test_retry_after_of_a_throttled_or_unavailable_keycloak_reaches_the_engine(
    status: int, header: str | None, expected: float | None,
) -> None:
    headers = {"Retry-After": header} if header is not None else {}
    provider, _ = provider_with(lambda _: httpx.Response(status, json={}, headers=headers))

    with pytest.raises(TransientProviderError) as caught:
        provider.ensure(TENANT)

    assert caught.value.retry_after == expected
    assert "will retry" not in str(caught.value)


def test_retry_after_of_the_token_endpoint_reaches_the_engine() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, json={}, headers={"Retry-After": "30"})

    provider = KeycloakOrganizations(SETTINGS, transport=httpx.MockTransport(handle))

    with pytest.raises(TransientProviderError, match="token endpoint answered 429") as caught:
        provider.ensure(TENANT)

    assert caught.value.retry_after == 30.0
