from __future__ import annotations

import base64
import json
import ssl
import time
from collections.abc import Iterator

import httpx
import jwt
import pytest

from tenantops.emulator.directory import API_CLIENT_ID
from tenantops.emulator.server import EmulatorInfo
from tenantops.errors import (
    DisallowedAlgorithmError,
    MalformedTokenError,
    SignatureMismatchError,
    TokenExpiredError,
    WrongAudienceError,
    WrongIssuerError,
)
from tenantops.identity import decode_token, describe_expiry, verify_token
from tests.identity.conftest import ActAs


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (86340, "expires in 23 h 59 min"),
        (86700, "expires in 24 h 5 min"),
        (3600, "expires in 1 h"),
        (59, "expires in 59 s"),
        (0, "expires in 0 s"),
        (-180, "expired 3 min ago"),
        (-7260, "expired 2 h 1 min ago"),
        (3 * 86400 + 7200, "expires in 3 d 2 h"),
    ],
)
def test_expiry_in_words(seconds: int, words: str) -> None:
    assert describe_expiry(1000 + seconds, 1000) == words


@pytest.fixture
def token(act_as: ActAs) -> str:
    env = act_as("aa-onboarding", "app-service")
    response = httpx.get(env["IDENTITY_ENDPOINT"],
                         params={"resource": API_CLIENT_ID, "api-version": "2019-08-01"},
                         headers={"X-IDENTITY-HEADER": env["IDENTITY_HEADER"]})
    value: str = response.json()["access_token"]
    return value


@pytest.fixture
def http(emulator: EmulatorInfo) -> Iterator[httpx.Client]:
    with httpx.Client(verify=ssl.create_default_context(cafile=emulator.ca_bundle)) as client:
        yield client


def test_decoding_shows_header_claims_and_summary(token: str, emulator: EmulatorInfo) -> None:
    decoded = decode_token(f"Bearer {token}")
    assert decoded.header["alg"] == "RS256"
    assert decoded.summary()["aud"] == API_CLIENT_ID
    assert decoded.tid == emulator.tenant_id
    assert decoded.version == "1.0"
    assert decoded.roles == ["Tenants.Read", "Tenants.Write"]
    assert decoded.expiry(time.time()).startswith("expires in 24 h")


def test_a_non_jwt_is_refused_without_repeating_it() -> None:
    with pytest.raises(MalformedTokenError) as caught:
        decode_token("hunter2-not-a-token")
    assert "this is not a JWT access token" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_verify_checks_signature_with_the_issuers_jwks(token: str, http: httpx.Client) -> None:
    decoded = verify_token(token, http=http, audience=API_CLIENT_ID)
    assert decoded.aud == API_CLIENT_ID


def test_verify_refuses_a_tampered_token(token: str, http: httpx.Client) -> None:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["roles"] = ["Tenants.Delete"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(SignatureMismatchError, match="signature check failed"):
        verify_token(f"{header}.{forged}.{signature}", http=http)


def test_verify_refuses_an_expired_token(token: str, http: httpx.Client) -> None:
    with pytest.raises(TokenExpiredError) as caught:
        verify_token(token, http=http, clock=lambda: time.time() + 2 * 86400)
    assert "the signature is valid but the token expired 23 h" in str(caught.value)


def test_verify_refuses_the_wrong_audience(token: str, http: httpx.Client) -> None:
    with pytest.raises(WrongAudienceError) as caught:
        verify_token(token, http=http, audience="api://billing")
    assert str(caught.value) == (f"the signature is valid but aud='{API_CLIENT_ID}', not "
                                 "'api://billing'")


def test_verify_accepts_only_rs256(http: httpx.Client) -> None:
    forged = jwt.encode({"iss": "https://issuer.test/t/", "exp": time.time() + 60},
                        "k" * 32, algorithm="HS256")
    with pytest.raises(DisallowedAlgorithmError,
                       match="signed with 'HS256'; only RS256 is accepted"):
        verify_token(forged, http=http)


def test_verify_refuses_an_http_issuer(http: httpx.Client) -> None:
    forged = jwt.encode({"iss": "http://issuer.test/t/"}, "k" * 32, algorithm="HS256")
    with pytest.raises(WrongIssuerError, match="is not an https URL"):
        verify_token(forged, http=http)
