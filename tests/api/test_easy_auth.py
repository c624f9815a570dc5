"""X-MS-CLIENT-PRINCIPAL: trusted only when configured, ignored otherwise, and never preferred
over a bearer token, which is always validated when present."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator

import pytest

from tenantops.emulator.server import EmulatorServer
from tests.auth.support import (
    API_CLIENT_ID,
    OTHER_TENANT,
    Api,
    Forge,
    api_for,
    easy_auth_header,
    mi_token,
    parse_challenge,
    settings_for,
)

OID = "11111111-2222-4333-8444-555555555555"
APPID = "66666666-7777-4888-9999-000000000000"
LONG_OID = "http://schemas.microsoft.com/identity/claims/objectidentifier"
LONG_TID = "http://schemas.microsoft.com/identity/claims/tenantid"
LONG_ROLE = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"


def principal_header(
    tenant: str, *roles: str, oid: str = OID, long_types: bool = True, role_typ: str = LONG_ROLE
) -> str:
    claims = [
        (LONG_OID if long_types else "oid", oid),
        (LONG_TID if long_types else "tid", tenant),
        ("appid", APPID),
        ("aud", API_CLIENT_ID),
        ("ver", "1.0"),
        *((role_typ, role) for role in roles),
    ]
    return easy_auth_header(claims, role_typ=role_typ)


def _api(server: EmulatorServer, trust: bool) -> Iterator[Api]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("WEBSITE_AUTH_ENABLED", "True")  # as App Service sets it, behind Easy Auth
        app = api_for(settings_for(server.info, trust_easy_auth_principal=trust))
    yield Api(app)
    app.state.authenticator.validator.jwks.close()


@pytest.fixture(scope="module")
def trusting(emulator_server: EmulatorServer) -> Iterator[Api]:
    yield from _api(emulator_server, True)


@pytest.fixture(scope="module")
def not_trusting(emulator_server: EmulatorServer) -> Iterator[Api]:
    yield from _api(emulator_server, False)


@pytest.mark.parametrize("long_types", [True, False], ids=["mapped-claim-types", "short-types"])
def test_principal_header_is_trusted_when_configured(
    trusting: Api, emulator_server: EmulatorServer, long_types: bool
) -> None:
    tenant = emulator_server.info.tenant_id
    header = principal_header(tenant, "Tenants.Read", long_types=long_types)

    response = trusting.get("/api/whoami", [("X-MS-CLIENT-PRINCIPAL", header)])

    assert response.status_code == 200, response.text
    assert response.json() == {"oid": OID, "appid": APPID, "tid": tenant,
                               "roles": ["Tenants.Read"], "token_version": "1.0",
                               "source": "easy-auth"}


def test_spoofed_principal_header_is_ignored_when_not_configured(
    not_trusting: Api, emulator_server: EmulatorServer
) -> None:
    header = principal_header(emulator_server.info.tenant_id, "Tenants.Write")

    response = not_trusting.get("/api/_probe/write", [("X-MS-CLIENT-PRINCIPAL", header)])

    assert response.status_code == 401
    assert parse_challenge(response.headers["www-authenticate"])["error"] is None
    assert response.json()["error"] == "missing_token"


def test_bearer_token_wins_over_the_principal_header(
    trusting: Api, emulator_server: EmulatorServer
) -> None:
    token = mi_token(emulator_server, "uami-reader", API_CLIENT_ID)
    header = principal_header(emulator_server.info.tenant_id, "Tenants.Write")
    both = [("Authorization", f"Bearer {token}"), ("X-MS-CLIENT-PRINCIPAL", header)]

    whoami = trusting.get("/api/whoami", both)
    write = trusting.get("/api/_probe/write", both)

    assert whoami.json()["source"] == "bearer"
    assert whoami.json()["oid"] != OID
    assert write.status_code == 403
    assert "holds roles: Tenants.Read" in write.json()["error_description"]


def test_bearer_token_is_still_validated_when_the_principal_header_is_present(
    trusting: Api, emulator_server: EmulatorServer
) -> None:
    forge = Forge(emulator_server)
    expired = forge.token(exp=int(time.time()) - 3600)
    header = principal_header(emulator_server.info.tenant_id, "Tenants.Write")

    response = trusting.get("/api/whoami", [("Authorization", f"Bearer {expired}"),
                                            ("X-MS-CLIENT-PRINCIPAL", header)])

    assert response.status_code == 401
    assert "expired at" in response.json()["error_description"]


def test_principal_header_of_another_tenant_is_refused(trusting: Api) -> None:
    response = trusting.get("/api/whoami",
                            [("X-MS-CLIENT-PRINCIPAL", principal_header(OTHER_TENANT))])

    assert response.status_code == 401
    assert f"caller from tenant '{OTHER_TENANT}'" in response.json()["error_description"]


def test_principal_header_roles_are_checked_per_route(
    trusting: Api, emulator_server: EmulatorServer
) -> None:
    header = principal_header(emulator_server.info.tenant_id, "Tenants.Read", role_typ="roles")

    read = trusting.get("/api/_probe/read", [("X-MS-CLIENT-PRINCIPAL", header)])
    write = trusting.get("/api/_probe/write", [("X-MS-CLIENT-PRINCIPAL", header)])

    assert read.status_code == 200
    assert write.status_code == 403
    assert parse_challenge(write.headers["www-authenticate"])["error"] == "insufficient_scope"


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("not base64 at all!", "is not base64-encoded JSON"),
        ("W10=", "is not a JSON object"),
        (easy_auth_header([("oid", OID)]), "lacks the claims ['tid', 'appid/azp/aud']"),
        (easy_auth_header([("oid", OID)], auth_typ="google"), "'google', not 'aad'"),
        ("A" * 40_000, "is 40000 bytes"),
        (base64.b64encode(json.dumps({"claims": [
            {"typ": "oid", "val": OID}, {"typ": "tid", "val": "x"},
            {"typ": "appid", "val": APPID}]}).encode()).decode(), "has no 'auth_typ'"),
    ],
    ids=["not-base64", "json-array", "missing-claims", "other-provider", "oversized",
         "missing-auth-typ"],
)
def test_malformed_principal_header_is_refused(trusting: Api, value: str, says: str) -> None:
    response = trusting.get("/api/whoami", [("X-MS-CLIENT-PRINCIPAL", value)])

    assert response.status_code == 401
    assert says in response.json()["error_description"]
    assert parse_challenge(response.headers["www-authenticate"])["error"] == "invalid_token"
