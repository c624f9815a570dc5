"""principal_from_easy_auth: the X-MS-CLIENT-PRINCIPAL format of App Service Authentication."""

from __future__ import annotations

import pytest

from tenantops.auth import principal_from_easy_auth
from tenantops.errors import MalformedPrincipalHeaderError, WrongAudienceError, WrongTenantError
from tests.auth.support import API_CLIENT_ID, OTHER_TENANT, easy_auth_header

TENANT = "8d6f5c2a-1b3e-4f70-9a6c-2e4b7d9f0a15"
AUDIENCES = (API_CLIENT_ID, f"api://{API_CLIENT_ID}")
OID = "aaaaaaaa-0000-4000-8000-000000000001"
AZP = "bbbbbbbb-0000-4000-8000-000000000002"


def test_mapped_claim_types_and_a_custom_role_type_are_read() -> None:
    role_typ = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
    header = easy_auth_header([
        ("http://schemas.microsoft.com/identity/claims/objectidentifier", OID),
        ("http://schemas.microsoft.com/identity/claims/tenantid", TENANT),
        ("azp", AZP), ("iss", f"https://login.microsoftonline.com/{TENANT}/v2.0"),
        ("aud", API_CLIENT_ID), (role_typ, "Tenants.Read"), (role_typ, "Tenants.Write"),
        ("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name", "Olive Operator"),
        ("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn", "olive@contoso.test"),
    ], role_typ=role_typ)

    principal = principal_from_easy_auth(header, tenant_id=TENANT, audiences=AUDIENCES)

    assert principal.oid == OID
    assert principal.appid == AZP
    assert principal.roles == ("Tenants.Read", "Tenants.Write")
    assert principal.token_version == "2.0"
    assert principal.source == "easy-auth"
    assert (principal.name, principal.upn) == ("Olive Operator", "olive@contoso.test")


def test_browser_session_principal_from_an_id_token_names_the_app_in_aud() -> None:
    """A signed-in browser's principal comes from its ID token: no appid/azp, aud = the app."""
    header = easy_auth_header([
        ("http://schemas.microsoft.com/identity/claims/objectidentifier", OID),
        ("http://schemas.microsoft.com/identity/claims/tenantid", TENANT),
        ("aud", API_CLIENT_ID), ("iss", f"https://login.microsoftonline.com/{TENANT}/v2.0"),
        ("roles", "Tenants.Read"), ("preferred_username", "reid@contoso.test"),
    ])

    principal = principal_from_easy_auth(header, tenant_id=TENANT, audiences=AUDIENCES)

    assert principal.appid == API_CLIENT_ID
    assert principal.roles == ("Tenants.Read",)
    assert principal.upn == "reid@contoso.test"


def test_principal_without_any_application_claim_is_refused() -> None:
    header = easy_auth_header([("oid", OID), ("tid", TENANT)])

    with pytest.raises(MalformedPrincipalHeaderError, match="appid/azp/aud"):
        principal_from_easy_auth(header, tenant_id=TENANT, audiences=AUDIENCES)


def test_another_tenant_is_refused() -> None:
    header = easy_auth_header([("oid", OID), ("tid", OTHER_TENANT), ("appid", AZP)])

    with pytest.raises(WrongTenantError) as caught:
        principal_from_easy_auth(header, tenant_id=TENANT, audiences=AUDIENCES)

    assert caught.value.received == {"tid": OTHER_TENANT}


def test_an_audience_this_api_does_not_accept_is_refused() -> None:
    header = easy_auth_header([("oid", OID), ("tid", TENANT), ("appid", AZP),
                               ("aud", "https://management.core.windows.net/")])

    with pytest.raises(WrongAudienceError):
        principal_from_easy_auth(header, tenant_id=TENANT, audiences=AUDIENCES)


@pytest.mark.parametrize("value", ["", "%%%", "bnVsbA==", "eyJjbGFpbXMiOiAiYSJ9"],
                         ids=["empty", "not-base64", "json-null", "claims-not-a-list"])
def test_malformed_values_are_refused(value: str) -> None:
    with pytest.raises(MalformedPrincipalHeaderError):
        principal_from_easy_auth(value, tenant_id=TENANT, audiences=AUDIENCES)
