"""The WWW-Authenticate challenge and JSON body every refusal is worded with: the format
tenantops.identity parses, header-safe whatever values the caller sent."""

from __future__ import annotations

import pytest

from tenantops.auth import error_body, header_safe, www_authenticate
from tenantops.errors import (
    AuthError,
    MissingRoleError,
    MissingTokenError,
    SigningKeysUnavailableError,
    WrongAudienceError,
)
from tests.auth.support import API_CLIENT_ID, parse_challenge

TENANT = "8d6f5c2a-1b3e-4f70-9a6c-2e4b7d9f0a15"
AUTHORITY = "https://login.microsoftonline.com"


def challenge(error: AuthError | None) -> str:
    return www_authenticate(error, client_id=API_CLIENT_ID, authority=AUTHORITY,
                            tenant_id=TENANT)


def test_invalid_token_challenge_has_every_parameter_in_order() -> None:
    error = WrongAudienceError("the audience is 'x'", expected={"aud": [API_CLIENT_ID]},
                               received={"aud": "x"})

    assert challenge(error) == (
        'Bearer realm="tenantops", error="invalid_token", '
        "error_description=\"the audience is 'x'\", "
        f'resource_id="{API_CLIENT_ID}", '
        f'authorization_uri="{AUTHORITY}/{TENANT}/oauth2/authorize"')


def test_insufficient_scope_for_a_missing_role() -> None:
    parts = parse_challenge(challenge(MissingRoleError("needs Tenants.Write")))

    assert parts["error"] == "insufficient_scope"


def test_missing_token_challenge_has_no_error_code() -> None:
    value = challenge(MissingTokenError("no token"))

    assert value == (f'Bearer realm="tenantops", resource_id="{API_CLIENT_ID}", '
                     f'authorization_uri="{AUTHORITY}/{TENANT}/oauth2/authorize"')


@pytest.mark.parametrize(
    ("text", "safe"),
    [('aud "x"\r\nSet-Cookie: a=b', "aud 'x' Set-Cookie: a=b"),
     ("caf\u00e9 \\ ok", "caf? / ok"),
     ("tab\there", "tab here")])
def test_descriptions_are_header_safe(text: str, safe: str) -> None:
    assert header_safe(text) == safe
    parse_challenge(challenge(WrongAudienceError(text)))


def test_long_descriptions_are_cut() -> None:
    assert len(header_safe("x" * 5000)) == 1500


@pytest.mark.parametrize(
    ("error", "code"),
    [(MissingTokenError("m"), "missing_token"), (WrongAudienceError("w"), "invalid_token"),
     (MissingRoleError("r"), "insufficient_scope"),
     (SigningKeysUnavailableError("s"), "temporarily_unavailable")])
def test_body_carries_code_description_expected_and_received(error: AuthError, code: str) -> None:
    error.expected, error.received = {"a": 1}, {"b": 2}

    assert error_body(error) == {"error": code, "error_description": str(error),
                                 "expected": {"a": 1}, "received": {"b": 2}}
