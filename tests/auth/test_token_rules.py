"""The rules of issue 12 §4 and 17 §4, one named test per variant (docs/auth.md lists them):
issue time and lifetime, the one audience rule, the Easy Auth principal header, and what an
empty allow-list means."""

from __future__ import annotations

import base64
import json
import logging
import uuid
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tenantops.auth import (
    AccessPolicy,
    Authenticator,
    JwksCache,
    Principal,
    TokenValidator,
    audience_matches,
    principal_from_easy_auth,
)
from tenantops.errors import (
    ApplicationNotAllowedError,
    ConfigError,
    IdentityNotAllowedError,
    MalformedPrincipalHeaderError,
    MissingClaimError,
    MissingRoleError,
    TenantNotAllowedError,
    TokenIssuedInTheFutureError,
    TokenLifetimeTooLongError,
    WrongAudienceError,
)
from tests.auth.support import API_CLIENT_ID, DROP, FakeClock, FakeEntra, easy_auth_header

MI_LIFETIME = 86700  # 24 h 5 min: a managed identity's token, the longest Entra issues
TENANT = "8d6f5c2a-1b3e-4f70-9a6c-2e4b7d9f0a15"
OID = "aaaaaaaa-0000-4000-8000-000000000001"
APPID = "bbbbbbbb-0000-4000-8000-000000000002"


@pytest.fixture(scope="module")
def entra() -> FakeEntra:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return FakeEntra(str(uuid.uuid4()), {"key-1": key})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_800_000_000.0)


def _validator(entra: FakeEntra, clock: FakeClock, **overrides: Any) -> TokenValidator:
    settings = entra.settings(**overrides)
    return TokenValidator(settings, jwks=JwksCache.from_settings(settings,
                                                                 transport=entra.transport),
                          clock=clock)


def _token(entra: FakeEntra, clock: FakeClock, **claims: Any) -> str:
    return entra.sign(entra.claims(clock.now, **claims), "key-1")


def test_iat_in_the_future_beyond_the_leeway_is_refused(entra: FakeEntra,
                                                         clock: FakeClock) -> None:
    now = int(clock.now)
    token = _token(entra, clock, iat=now + 61, nbf=now, exp=now + 3600)
    with pytest.raises(TokenIssuedInTheFutureError) as caught:
        _validator(entra, clock).validate(token)
    assert "61 s from now (leeway 60 s): a clock is wrong, or the token was not issued by " \
        "Entra ID" in str(caught.value)


def test_iat_in_the_future_within_the_leeway_is_accepted(entra: FakeEntra,
                                                         clock: FakeClock) -> None:
    now = int(clock.now)
    _validator(entra, clock).validate(_token(entra, clock, iat=now + 59, exp=now + 3600))


def test_token_without_iat_is_refused(entra: FakeEntra, clock: FakeClock) -> None:
    with pytest.raises(MissingClaimError) as caught:
        _validator(entra, clock).validate(_token(entra, clock, iat=DROP))
    assert caught.value.claim == "iat"


@pytest.mark.parametrize(("lifetime", "accepted"), [
    (3600, True), (MI_LIFETIME, True), (MI_LIFETIME + 60, True), (MI_LIFETIME + 61, False),
    (30 * 86400, False)],
    ids=["one-hour", "managed-identity-24h5min", "longest-plus-leeway",
         "one-second-beyond", "thirty-days"])
def test_lifetime_over_the_configured_maximum_is_refused(
    entra: FakeEntra, clock: FakeClock, lifetime: int, accepted: bool
) -> None:
    now = int(clock.now)
    token = _token(entra, clock, iat=now - 10, nbf=now - 10, exp=now - 10 + lifetime)
    validator = _validator(entra, clock)
    if accepted:
        validator.validate(token)
        return
    with pytest.raises(TokenLifetimeTooLongError) as caught:
        validator.validate(token)
    assert f"the token lives {lifetime} s" in str(caught.value)
    assert "accepts at most 86700 s (auth.max_token_lifetime_seconds, plus leeway 60 s)" in \
        str(caught.value)


def test_the_maximum_lifetime_is_a_setting(entra: FakeEntra, clock: FakeClock) -> None:
    now = int(clock.now)
    token = _token(entra, clock, iat=now, exp=now + 7200)
    with pytest.raises(TokenLifetimeTooLongError):
        _validator(entra, clock, max_token_lifetime_seconds=3600).validate(token)


ACCEPTED_AUDIENCES = {
    "client-id": API_CLIENT_ID,
    "client-id-upper-case": API_CLIENT_ID.upper(),
    "api-uri": f"api://{API_CLIENT_ID}",
    "api-uri-with-one-trailing-slash": f"api://{API_CLIENT_ID}/",
    "api-uri-upper-case": f"API://{API_CLIENT_ID.upper()}",
    "extra-audience": "https://tenantops.example.com",
    "extra-audience-with-trailing-slash": "https://tenantops.example.com/",
}
REFUSED_AUDIENCES = {
    "api-uri-with-two-trailing-slashes": f"api://{API_CLIENT_ID}//",
    "client-id-with-trailing-slash": f"{API_CLIENT_ID}/",
    "api-uri-with-default-scope": f"api://{API_CLIENT_ID}/.default",
    "api-uri-with-a-named-scope": f"api://{API_CLIENT_ID}/Tenants.Write",
    "client-id-with-leading-space": f" {API_CLIENT_ID}",
    "api-uri-with-trailing-space": f"api://{API_CLIENT_ID} ",
    "client-id-in-braces": f"{{{API_CLIENT_ID}}}",
    "client-id-without-hyphens": API_CLIENT_ID.replace("-", ""),
    "client-id-as-urn": f"urn:uuid:{API_CLIENT_ID}",
    "client-id-behind-https": f"https://{API_CLIENT_ID}",
    "api-scheme-with-one-slash": f"api:/{API_CLIENT_ID}",
    "api-uri-with-query": f"api://{API_CLIENT_ID}?x=1",
    "api-uri-with-fragment": f"api://{API_CLIENT_ID}#",
    "client-id-prefix": API_CLIENT_ID[:-1],
    "client-id-with-suffix": f"{API_CLIENT_ID}0",
    "api-uri-percent-encoded": f"api%3A%2F%2F{API_CLIENT_ID}",
    "arm": "https://management.core.windows.net/",
    "empty": "",
}


@pytest.mark.parametrize("aud", ACCEPTED_AUDIENCES.values(), ids=ACCEPTED_AUDIENCES.keys())
def test_audience_variant_is_accepted(entra: FakeEntra, clock: FakeClock, aud: str) -> None:
    validator = _validator(entra, clock, extra_audiences=["https://tenantops.example.com"])
    assert validator.validate(_token(entra, clock, aud=aud)).tid == entra.tenant


@pytest.mark.parametrize("aud", REFUSED_AUDIENCES.values(), ids=REFUSED_AUDIENCES.keys())
def test_audience_variant_is_refused(entra: FakeEntra, clock: FakeClock, aud: str) -> None:
    validator = _validator(entra, clock, extra_audiences=["https://tenantops.example.com"])
    with pytest.raises(WrongAudienceError) as caught:
        validator.validate(_token(entra, clock, aud=aud))
    assert caught.value.expected == {"aud": [API_CLIENT_ID, f"api://{API_CLIENT_ID}",
                                             "https://tenantops.example.com"]}


@pytest.mark.parametrize("aud", REFUSED_AUDIENCES.values(), ids=REFUSED_AUDIENCES.keys())
def test_the_easy_auth_header_follows_the_same_audience_rule(aud: str) -> None:
    accepted = (API_CLIENT_ID, f"api://{API_CLIENT_ID}", "https://tenantops.example.com")
    assert not audience_matches(aud, accepted)
    header = easy_auth_header([("oid", OID), ("tid", TENANT), ("appid", APPID), ("aud", aud)])
    with pytest.raises(WrongAudienceError):
        principal_from_easy_auth(header, tenant_id=TENANT, audiences=accepted)


def test_principal_header_without_auth_typ_is_refused() -> None:
    header = easy_auth_header([("oid", OID), ("tid", TENANT), ("appid", APPID)])
    body = json.loads(base64.b64decode(header))
    del body["auth_typ"]
    without = base64.b64encode(json.dumps(body).encode()).decode()
    with pytest.raises(MalformedPrincipalHeaderError) as caught:
        principal_from_easy_auth(without, tenant_id=TENANT, audiences=(API_CLIENT_ID,))
    assert "has no 'auth_typ'" in str(caught.value)
    assert caught.value.received == {"auth_typ": "(missing)"}


def _settings(entra: FakeEntra, **overrides: Any) -> Any:
    return entra.settings(trust_easy_auth_principal=True, **overrides)


def test_trusting_the_principal_header_outside_app_service_refuses_to_start(
    entra: FakeEntra,
) -> None:
    with pytest.raises(ConfigError) as caught:
        Authenticator(_settings(entra), environ={})
    message = str(caught.value)
    assert message.startswith("auth.trust_easy_auth_principal is true, but WEBSITE_AUTH_ENABLED "
                              "is not set, so App Service Authentication is not in front of "
                              "this API")
    assert "auth.trust_easy_auth_principal_outside_app_service = true" in message


@pytest.mark.parametrize("value", ["False", "", "0", "no"])
def test_website_auth_enabled_other_than_true_counts_as_outside_app_service(
    entra: FakeEntra, value: str
) -> None:
    with pytest.raises(ConfigError):
        Authenticator(_settings(entra), environ={"WEBSITE_AUTH_ENABLED": value})


def test_behind_app_service_authentication_the_principal_header_is_trusted_quietly(
    entra: FakeEntra, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="tenantops.auth"):
        authenticator = Authenticator(_settings(entra), environ={"WEBSITE_AUTH_ENABLED": "True"})
    assert authenticator.trust_easy_auth
    assert caplog.records == []


def test_forced_trust_outside_app_service_warns_at_every_start(
    entra: FakeEntra, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(entra, trust_easy_auth_principal_outside_app_service=True)
    with caplog.at_level(logging.WARNING, logger="tenantops.auth"):
        for _ in range(3):
            assert Authenticator(settings, environ={}).trust_easy_auth
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3
    assert all("forced on outside App Service Authentication" in w for w in warnings)


def test_not_trusting_the_header_needs_no_app_service(entra: FakeEntra) -> None:
    assert not Authenticator(entra.settings(), environ={}).trust_easy_auth


CALLER = Principal(oid=OID, appid=APPID, tid=TENANT, roles=("Tenants.Read",),
                   token_version="1.0", source="bearer")


@pytest.mark.parametrize(("setting", "error"), [
    ("allowed_applications", ApplicationNotAllowedError),
    ("allowed_identities", IdentityNotAllowedError),
    ("allowed_tenants", TenantNotAllowedError),
])
def test_an_allow_list_configured_empty_admits_nobody(
    setting: str, error: type[Exception], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="tenantops.auth"):
        policy = AccessPolicy(client_id=API_CLIENT_ID, **{setting: []})
    assert f"auth.{setting} is configured as an empty list: the API admits nobody" in \
        caplog.text
    with pytest.raises(error) as caught:
        policy.check(CALLER)
    assert f"auth.{setting} is configured as an empty list, which admits no" in \
        str(caught.value)
    assert "Remove the setting to admit every" in str(caught.value)


def test_an_allow_list_not_configured_admits_everyone_of_the_tenant() -> None:
    AccessPolicy(client_id=API_CLIENT_ID).check(CALLER)
    AccessPolicy.from_settings(FakeEntra(TENANT, {}).settings()).check(CALLER)


def test_the_role_fix_names_the_callers_service_principal_in_both_forms() -> None:
    policy = AccessPolicy(client_id=API_CLIENT_ID)
    with pytest.raises(MissingRoleError) as caught:
        policy.require_role(CALLER, "Tenants.Write")
    message = str(caught.value)
    assert (f"POST https://graph.microsoft.com/v1.0/servicePrincipals/{OID}/appRoleAssignments "
            f"with principalId={OID}, resourceId=<object ID of the service principal of "
            f"{API_CLIENT_ID}>") in message
    assert (f"New-MgServicePrincipalAppRoleAssignment -ServicePrincipalId {OID} -PrincipalId "
            f"{OID} -ResourceId <object ID of the service principal of {API_CLIENT_ID}> "
            "-AppRoleId <ID of the role Tenants.Write>") in message
