"""AccessPolicy: Easy Auth's allow-lists (AND-combined; empty admits anyone in the tenant) and
app roles, each refusal naming what is allowed, what was presented and what to change."""

from __future__ import annotations

import pytest

from tenantops.auth import AccessPolicy, Principal
from tenantops.errors import (
    ApplicationNotAllowedError,
    IdentityNotAllowedError,
    MissingRoleError,
    TenantNotAllowedError,
)
from tests.auth.support import API_CLIENT_ID, OTHER_TENANT

TENANT = "8d6f5c2a-1b3e-4f70-9a6c-2e4b7d9f0a15"
CALLER = Principal(oid="aaaaaaaa-0000-4000-8000-000000000001",
                   appid="bbbbbbbb-0000-4000-8000-000000000002", tid=TENANT,
                   roles=("Tenants.Read",), token_version="1.0", source="bearer")


def test_empty_allow_lists_admit_any_caller() -> None:
    AccessPolicy(client_id=API_CLIENT_ID).check(CALLER)


def test_listed_caller_is_admitted_whatever_the_case() -> None:
    policy = AccessPolicy(client_id=API_CLIENT_ID,
                          allowed_applications=[CALLER.appid.upper()],
                          allowed_identities=[CALLER.oid], allowed_tenants=[TENANT.upper()])

    policy.check(CALLER)


def test_application_not_listed_is_refused_with_the_list_and_the_fix() -> None:
    other = "cccccccc-0000-4000-8000-000000000003"
    policy = AccessPolicy(client_id=API_CLIENT_ID, allowed_applications=[other])

    with pytest.raises(ApplicationNotAllowedError) as caught:
        policy.check(CALLER)

    assert caught.value.expected == {"appid": [other]}
    assert caught.value.received == {"appid": CALLER.appid}
    assert f"add {CALLER.appid} to auth.allowed_applications" in str(caught.value)
    assert "its client ID, not its object ID" in str(caught.value)


def test_identity_not_listed_is_refused_even_when_the_application_is() -> None:
    policy = AccessPolicy(client_id=API_CLIENT_ID, allowed_applications=[CALLER.appid],
                          allowed_identities=["dddddddd-0000-4000-8000-000000000004"])

    with pytest.raises(IdentityNotAllowedError) as caught:
        policy.check(CALLER)

    assert caught.value.received == {"oid": CALLER.oid}
    assert "TENANTOPS_AUTH__ALLOWED_IDENTITIES" in str(caught.value)


def test_tenant_not_listed_is_refused() -> None:
    policy = AccessPolicy(client_id=API_CLIENT_ID, allowed_tenants=[OTHER_TENANT])

    with pytest.raises(TenantNotAllowedError) as caught:
        policy.check(CALLER)

    assert caught.value.expected == {"tid": [OTHER_TENANT]}


def test_missing_role_names_the_role_the_roles_held_and_how_to_grant_it() -> None:
    policy = AccessPolicy(client_id=API_CLIENT_ID)

    policy.require_role(CALLER, "Tenants.Read")
    with pytest.raises(MissingRoleError) as caught:
        policy.require_role(CALLER, "Tenants.Delete", operation="DELETE /api/tenants/acme")

    message = str(caught.value)
    assert message.startswith(
        f"DELETE /api/tenants/acme needs the app role Tenants.Delete of the API app "
        f"{API_CLIENT_ID}; the caller (oid {CALLER.oid}, appid {CALLER.appid}) holds roles: "
        "Tenants.Read. Grant it with an app role assignment")
    assert f"servicePrincipals/{CALLER.oid}/appRoleAssignments" in message
    assert caught.value.expected == {"role": "Tenants.Delete"}
    assert caught.value.received == {"roles": ["Tenants.Read"]}
