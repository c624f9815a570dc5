from __future__ import annotations

import httpx
from hypothesis import given
from hypothesis import strategies as st

from tenantops.identity import ErrorBody, parse_bearer_challenge

SPEC = (
    'Bearer realm="tenantops", error="invalid_token", '
    'error_description="The audience \\"https://management.core.windows.net/\\" is not '
    'accepted, expected api://x", resource_id="5f9d1b7c-2a4e-4c1d-9b3a-7e6f0a1c2d3e", '
    'authorization_uri="https://login.microsoftonline.com/8d6f5c2a-1b3e-4f70-9a6c-'
    '2e4b7d9f0a15/oauth2/authorize"'
)


def test_the_api_spec_challenge_is_read_field_by_field() -> None:
    challenge = parse_bearer_challenge(SPEC)
    assert challenge is not None
    assert challenge.realm == "tenantops"
    assert challenge.error == "invalid_token"
    assert challenge.error_description == (
        'The audience "https://management.core.windows.net/" is not accepted, expected api://x')
    assert challenge.resource_id == "5f9d1b7c-2a4e-4c1d-9b3a-7e6f0a1c2d3e"
    assert challenge.tenant_id == "8d6f5c2a-1b3e-4f70-9a6c-2e4b7d9f0a15"


def test_bearer_is_found_among_other_schemes() -> None:
    challenge = parse_bearer_challenge(
        'Basic realm=/var/opt/azcmagent/tokens/x.key, Bearer error=invalid_token, '
        'resource_id="abc", Negotiate')
    assert challenge is not None
    assert dict(challenge.params) == {"error": "invalid_token", "resource_id": "abc"}


def test_no_bearer_challenge_gives_none() -> None:
    assert parse_bearer_challenge(None) is None
    assert parse_bearer_challenge("") is None
    assert parse_bearer_challenge('Basic realm="x"') is None


def test_a_bare_bearer_has_no_parameters() -> None:
    challenge = parse_bearer_challenge("Bearer")
    assert challenge is not None
    assert challenge.resource_id is None
    assert challenge.tenant_id is None


@given(st.text(alphabet=st.characters(codec="ascii", exclude_categories=["Cc"]), max_size=60))
def test_any_quoted_description_round_trips(text: str) -> None:
    quoted = text.replace("\\", "\\\\").replace('"', '\\"')
    challenge = parse_bearer_challenge(f'Bearer error_description="{quoted}", resource_id="r"')
    assert challenge is not None
    assert challenge.error_description == (text or None)
    assert challenge.resource_id == "r"


def test_error_body_fields_are_read_and_odd_bodies_ignored() -> None:
    body = ErrorBody.from_response(httpx.Response(403, json={
        "error": "insufficient_scope", "error_description": "needs Tenants.Write",
        "expected": "Tenants.Write", "received": ["Tenants.Read"]}))
    assert body == ErrorBody("insufficient_scope", "needs Tenants.Write", "Tenants.Write",
                             ["Tenants.Read"])
    nested = ErrorBody.from_response(httpx.Response(401, json={"detail": {"error": "x"}}))
    assert nested is not None
    assert nested.error == "x"
    assert ErrorBody.from_response(httpx.Response(401, text="<html>no</html>")) is None
    assert ErrorBody.from_response(httpx.Response(401, json=[1, 2])) is None
