"""TokenValidator: each failure is its own error class carrying expected and received values;
time checks honour the leeway and are repeated for remembered tokens; no PyJWT exception, nor
any other, escapes for any input. Against a fake Entra ID (real Entra cannot run offline),
so the issuers are the real ones: sts.windows.net (v1) and login.microsoftonline.com (v2)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tenantops.auth import JwksCache, TokenValidator
from tenantops.config import AuthSettings
from tenantops.errors import (
    AuthError,
    ConfigError,
    DisallowedAlgorithmError,
    InvalidClaimError,
    InvalidTokenError,
    MissingClaimError,
    TokenExpiredError,
    TokenNotYetValidError,
    WrongAudienceError,
    WrongIssuerError,
    WrongTenantError,
)
from tests.auth.support import (
    API_CLIENT_ID,
    ARM,
    DROP,
    OTHER_TENANT,
    FakeClock,
    FakeEntra,
    b64url_json,
    unsigned_token,
)

API_URI = f"api://{API_CLIENT_ID}"


@pytest.fixture(scope="module")
def entra() -> FakeEntra:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return FakeEntra(str(uuid.uuid4()), {"key-1": key})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_800_000_000.0)


def _validator(entra: FakeEntra, clock: FakeClock, **overrides: Any) -> TokenValidator:
    settings = entra.settings(**overrides)
    jwks = JwksCache.from_settings(settings, transport=entra.transport)
    return TokenValidator(settings, jwks=jwks, clock=clock)


@pytest.fixture
def validator(entra: FakeEntra, clock: FakeClock) -> TokenValidator:
    return _validator(entra, clock)


def test_v1_and_v2_tokens_of_the_tenant_are_accepted(
    entra: FakeEntra, clock: FakeClock, validator: TokenValidator
) -> None:
    v1 = entra.sign(entra.claims(clock.now), "key-1")
    v2 = entra.sign(entra.claims(clock.now, iss=entra.v2_issuer, aud=API_CLIENT_ID, ver="2.0",
                                 appid=DROP, azp="0a1b2c3d-0000-4000-8000-000000000009"),
                    "key-1")

    first, second = validator.validate(v1), validator.validate(v2)

    assert (first.token_version, first.appid) == ("1.0", "0a1b2c3d-0000-4000-8000-000000000002")
    assert (second.token_version, second.appid) == ("2.0",
                                                    "0a1b2c3d-0000-4000-8000-000000000009")
    assert first.source == second.source == "bearer"


@pytest.mark.parametrize("audience", [API_CLIENT_ID, API_URI, f"{API_URI}/",
                                      "https://tenantops.example.com"])
def test_accepted_audiences_are_the_client_id_the_api_uri_and_extras(
    entra: FakeEntra, clock: FakeClock, audience: str
) -> None:
    validator = _validator(entra, clock, extra_audiences=["https://tenantops.example.com"])

    principal = validator.validate(entra.sign(entra.claims(clock.now, aud=audience), "key-1"))

    assert principal.tid == entra.tenant


@pytest.mark.parametrize(
    ("offset", "accepted"), [(-59, True), (-61, False), (0, False)],
    ids=["expired-within-leeway", "expired-beyond-leeway", "expires-now-minus-leeway"])
def test_expiry_honours_the_leeway(
    entra: FakeEntra, clock: FakeClock, validator: TokenValidator, offset: int, accepted: bool
) -> None:
    exp = clock.now + offset if offset else clock.now - 60
    token = entra.sign(entra.claims(clock.now - 3600, exp=int(exp)), "key-1")

    if accepted:
        validator.validate(token)
    else:
        with pytest.raises(TokenExpiredError) as caught:
            validator.validate(token)
        assert "leeway 60 s" in str(caught.value)


@pytest.mark.parametrize(("offset", "accepted"), [(59, True), (61, False)])
def test_not_before_honours_the_leeway(
    entra: FakeEntra, clock: FakeClock, validator: TokenValidator, offset: int, accepted: bool
) -> None:
    token = entra.sign(entra.claims(clock.now, nbf=int(clock.now) + offset), "key-1")

    if accepted:
        validator.validate(token)
    else:
        with pytest.raises(TokenNotYetValidError):
            validator.validate(token)


def test_remembered_token_is_checked_for_expiry_again(
    entra: FakeEntra, clock: FakeClock, validator: TokenValidator
) -> None:
    token = entra.sign(entra.claims(clock.now), "key-1")
    validator.validate(token)
    validator.validate(token)

    clock.advance(3600 + 61)

    with pytest.raises(TokenExpiredError):
        validator.validate(token)


def test_remembered_tokens_are_bounded(entra: FakeEntra, clock: FakeClock) -> None:
    validator = TokenValidator(entra.settings(), clock=clock, verified_cache_size=3,
                               jwks=JwksCache.from_settings(entra.settings(),
                                                            transport=entra.transport))
    tokens = [entra.sign(entra.claims(clock.now, oid=str(uuid.uuid4())), "key-1")
              for _ in range(5)]

    principals = [validator.validate(t) for t in tokens + tokens]

    assert [p.oid for p in principals[:5]] == [p.oid for p in principals[5:]]


CASES: list[tuple[str, dict[str, Any], type[AuthError], dict[str, object], dict[str, object]]] = [
    ("arm-audience", {"aud": ARM}, WrongAudienceError,
     {"aud": [API_CLIENT_ID, API_URI]}, {"aud": ARM}),
    ("several-audiences", {"aud": [API_CLIENT_ID, API_URI]}, WrongAudienceError,
     {"aud": [API_CLIENT_ID, API_URI]}, {"aud": [API_CLIENT_ID, API_URI]}),
    ("audience-not-a-string", {"aud": 7}, InvalidClaimError, {}, {"aud": 7}),
    ("v1-issuer-of-another-tenant", {"iss": f"https://sts.windows.net/{OTHER_TENANT}/"},
     WrongIssuerError, {}, {"iss": f"https://sts.windows.net/{OTHER_TENANT}/"}),
    ("v2-issuer-of-another-tenant",
     {"iss": f"https://login.microsoftonline.com/{OTHER_TENANT}/v2.0"}, WrongIssuerError, {},
     {"iss": f"https://login.microsoftonline.com/{OTHER_TENANT}/v2.0"}),
    ("another-tenant-id", {"tid": OTHER_TENANT}, WrongTenantError, {}, {"tid": OTHER_TENANT}),
    ("roles-as-a-string", {"roles": "Tenants.Read"}, InvalidClaimError,
     {"roles": "a JSON list of strings"}, {"roles": "Tenants.Read", "type": "a string"}),
    ("exp-infinite", {"exp": float("inf")}, InvalidClaimError, {"exp": "a NumericDate"}, {}),
    ("exp-boolean", {"exp": True}, InvalidClaimError, {"exp": "a NumericDate"}, {"exp": True}),
    ("oid-not-a-string", {"oid": 12}, InvalidClaimError, {"oid": "a string"}, {"oid": 12}),
    ("sub-not-a-string", {"sub": 12}, InvalidClaimError, {"sub": "a string"}, {"sub": 12}),
    ("missing-tid", {"tid": DROP}, MissingClaimError, {}, {}),
]


@pytest.mark.parametrize(("name", "overrides", "error", "expected", "received"), CASES,
                         ids=[c[0] for c in CASES])
def test_each_failure_has_its_error_class_and_values(
    entra: FakeEntra, clock: FakeClock, validator: TokenValidator, name: str,
    overrides: dict[str, Any], error: type[AuthError], expected: dict[str, object],
    received: dict[str, object],
) -> None:
    token = entra.sign(entra.claims(clock.now, **overrides), "key-1")

    with pytest.raises(error) as caught:
        validator.validate(token)

    assert type(caught.value) is error
    assert expected.items() <= caught.value.expected.items()
    assert received.items() <= caught.value.received.items()


def test_wrong_issuer_names_both_accepted_issuers(
    entra: FakeEntra, clock: FakeClock, validator: TokenValidator
) -> None:
    token = entra.sign(entra.claims(clock.now, iss=f"https://sts.windows.net/{OTHER_TENANT}/"),
                       "key-1")

    with pytest.raises(WrongIssuerError) as caught:
        validator.validate(token)

    assert caught.value.expected == {"iss": [entra.v1_issuer, entra.v2_issuer]}
    assert f"issued by tenant {OTHER_TENANT}, not {entra.tenant}" in str(caught.value)


def test_missing_claim_error_names_the_claim(
    entra: FakeEntra, clock: FakeClock, validator: TokenValidator
) -> None:
    with pytest.raises(MissingClaimError) as caught:
        validator.validate(entra.sign(entra.claims(clock.now, oid=DROP), "key-1"))

    assert caught.value.claim == "oid"


@pytest.mark.parametrize("alg", ["none", "HS256", "RS384", "PS256", "ES256", "EdDSA"])
def test_only_rs256_is_allowed(
    entra: FakeEntra, clock: FakeClock, validator: TokenValidator, alg: str
) -> None:
    token = unsigned_token({"alg": alg, "kid": "key-1"}, entra.claims(clock.now), b"sig")

    with pytest.raises(DisallowedAlgorithmError) as caught:
        validator.validate(token)

    assert caught.value.received == {"alg": alg}
    assert caught.value.expected == {"alg": ["RS256"]}


@pytest.mark.parametrize(
    ("setting", "value", "says"),
    [("tenant_id", None, "auth.tenant_id is not set (TENANTOPS_AUTH__TENANT_ID)"),
     ("client_id", None, "auth.client_id is not set (TENANTOPS_AUTH__CLIENT_ID)"),
     ("tenant_id", "contoso.onmicrosoft.com", "'contoso.onmicrosoft.com' is not a GUID"),
     ("client_id", "api://tenantops", "auth.client_id = 'api://tenantops' is not a GUID")])
def test_settings_without_a_tenant_or_client_id_are_refused(
    setting: str, value: str | None, says: str
) -> None:
    values: dict[str, Any] = {"tenant_id": OTHER_TENANT, "client_id": API_CLIENT_ID}
    values[setting] = value

    with pytest.raises(ConfigError) as caught:
        TokenValidator(AuthSettings(**values))

    assert says in str(caught.value)


@pytest.fixture(scope="module")
def fuzz_validator(entra: FakeEntra) -> TokenValidator:
    return TokenValidator(entra.settings(), jwks=JwksCache.from_settings(
        entra.settings(), transport=entra.transport))


_segment = st.one_of(
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
            max_size=60),
    st.builds(b64url_json, st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
        lambda children: st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(["alg", "kid", "aud", "iss", "exp", "roles", "b64",
                                           "crit", "tid", "oid"]), children, max_size=5),
        max_leaves=12)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(segments=st.lists(_segment, min_size=1, max_size=6), junk=st.text(max_size=30))
def test_no_input_raises_anything_but_an_invalid_token_error(
    fuzz_validator: TokenValidator, segments: list[str], junk: str
) -> None:
    for token in (".".join(segments), junk, ".".join(segments) + junk):
        with pytest.raises(InvalidTokenError):
            fuzz_validator.validate(token)


_URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@settings(max_examples=2000, deadline=None)
@given(segment=st.text(alphabet=_URL_ALPHABET + "=+/!. ", max_size=14))
def test_segments_decode_exactly_when_they_are_canonical_unpadded_base64url(
        segment: str) -> None:
    import base64
    import re

    from tenantops.auth._validator import _segment_bytes

    expected = None
    if re.fullmatch(r"[A-Za-z0-9_-]*", segment) and len(segment) % 4 != 1:
        decoded = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        if base64.urlsafe_b64encode(decoded).rstrip(b"=").decode() == segment:
            expected = decoded
    assert _segment_bytes(segment) == expected


def test_a_signed_payload_that_is_not_a_json_object_is_refused_after_the_signature(
        entra: FakeEntra, validator: TokenValidator) -> None:
    from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
    from cryptography.hazmat.primitives.hashes import SHA256

    from tests.auth.support import b64url

    signing_input = f"{b64url_json({'alg': 'RS256', 'kid': 'key-1'})}.{b64url(b'[1, 2]')}"
    signature = entra.keys["key-1"].sign(signing_input.encode(), PKCS1v15(), SHA256())

    with pytest.raises(InvalidTokenError) as caught:
        validator.validate(f"{signing_input}.{b64url(signature)}")

    assert "payload is not a JSON object" in str(caught.value)
    with pytest.raises(InvalidTokenError) as tampered:
        validator.validate(f"{b64url_json({'alg': 'RS256', 'kid': 'key-1'})}.{b64url(b'[1]')}"
                           f".{b64url(signature)}")
    assert "signature does not verify" in str(tampered.value)


def test_jti_that_is_not_a_string_is_refused(
        entra: FakeEntra, clock: FakeClock, validator: TokenValidator) -> None:
    with pytest.raises(InvalidClaimError) as caught:
        validator.validate(entra.sign(entra.claims(clock.now, jti=7), "key-1"))

    assert caught.value.expected == {"jti": "a string"}
    assert "'jti' claim is a number, not a string" in str(caught.value)


def test_the_event_loop_path_answers_only_tokens_verified_before_and_still_valid(
        entra: FakeEntra, clock: FakeClock) -> None:
    from tenantops.auth import AccessPolicy, Authenticator

    settings = entra.settings()
    validator = _validator(entra, clock)
    authenticator = Authenticator(settings, validator=validator,
                                  policy=AccessPolicy.from_settings(settings), environ={})
    token = entra.sign(entra.claims(clock.now), "key-1")
    header = [f"Bearer {token}"]

    assert authenticator.remembered(header) is None  # never verified: needs the full path
    principal = authenticator.authenticate(header)
    assert authenticator.remembered(header) == principal
    assert authenticator.remembered(header * 2) is None  # two headers: the full path refuses

    clock.advance(2 * 3600)  # past exp and the leeway
    assert authenticator.remembered(header) is None
    with pytest.raises(TokenExpiredError):
        authenticator.authenticate(header)


def test_the_event_loop_path_applies_the_allow_lists(entra: FakeEntra, clock: FakeClock) -> None:
    from tenantops.auth import AccessPolicy, Authenticator
    from tenantops.errors import ApplicationNotAllowedError

    settings = entra.settings()
    validator = _validator(entra, clock)
    token = entra.sign(entra.claims(clock.now), "key-1")
    Authenticator(settings, validator=validator, environ={}).authenticate([f"Bearer {token}"])
    closed = Authenticator(settings, validator=validator, environ={}, policy=AccessPolicy(
        client_id=API_CLIENT_ID, allowed_applications=["0a1b2c3d-0000-4000-8000-00000000ffff"]))

    assert closed.remembered([f"Bearer {token}"]) is None
    with pytest.raises(ApplicationNotAllowedError):
        closed.authenticate([f"Bearer {token}"])
