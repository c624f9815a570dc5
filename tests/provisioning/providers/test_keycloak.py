"""The ``keycloak`` organization provider against the Keycloak 26 started by
scripts/services/keycloak.sh, signed in as the test realm's service account; invitation
emails go to an SMTP sink the tests run."""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import threading
from collections.abc import Iterator
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from pydantic import SecretStr

from tenantops.config import KeycloakOrganizationSettings
from tenantops.errors import PermanentProviderError, ProviderError, TransientProviderError
from tenantops.provisioning.providers.base import Outcome, Ready
from tenantops.provisioning.providers.organization import (
    OrganizationInvitation,
    TenantOrganization,
)
from tenantops.provisioning.providers.organization.keycloak import KeycloakOrganizations

from .servers import SmtpSink, keycloak_admin, keycloak_settings, point_realm_smtp_at, unique_slug

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def settings() -> KeycloakOrganizationSettings:
    return keycloak_settings()


@pytest.fixture(scope="module")
def admin(settings: KeycloakOrganizationSettings) -> Iterator[httpx.Client]:
    with keycloak_admin(settings) as client:
        yield client


@pytest.fixture(scope="module")
def smtp(admin: httpx.Client) -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.start()
    point_realm_smtp_at(admin, sink.port)
    yield sink
    sink.stop()


@pytest.fixture
def provider(settings: KeycloakOrganizationSettings) -> Iterator[KeycloakOrganizations]:
    organizations = KeycloakOrganizations(settings)
    yield organizations
    organizations.close()


@pytest.fixture
def tenant(admin: httpx.Client) -> Iterator[TenantOrganization]:
    """A tenant's organization, deleted after the test whatever happened."""
    slug = unique_slug("kc")
    organization = TenantOrganization(
        alias=slug, name=f"Tenant {slug}", domains=(f"portal.{slug}.example.test",),
        redirect_url=f"https://portal.{slug}.example.test/",
    )
    yield organization
    for found in organizations_with_alias(admin, slug):
        admin.delete(f"/organizations/{found['id']}")


def organizations_with_alias(admin: httpx.Client, alias: str) -> list[dict[str, Any]]:
    page = admin.get("/organizations", params={"max": "1000", "briefRepresentation": "false"})
    page.raise_for_status()
    return [o for o in page.json() if o["alias"] == alias]


def only_organization(admin: httpx.Client, alias: str) -> dict[str, Any]:
    found = organizations_with_alias(admin, alias)
    assert len(found) == 1, found
    return found[0]


def test_ensure_creates_the_organization_with_domain_redirect_and_tenant_attribute(
    provider: KeycloakOrganizations, tenant: TenantOrganization, admin: httpx.Client,
) -> None:
    outcome = provider.ensure(tenant)

    assert isinstance(outcome, Ready)
    assert outcome.changed
    stored = only_organization(admin, tenant.alias)
    assert outcome.outputs["organization_id"] == stored["id"]
    assert stored["name"] == tenant.name
    assert stored["redirectUrl"] == tenant.redirect_url
    assert [d["name"] for d in stored["domains"]] == list(tenant.domains)
    assert stored["attributes"] == {"tenantops-tenant": [tenant.alias]}
    assert provider.observe(tenant) == {
        "alias": tenant.alias, "name": tenant.name, "domains": tenant.domains,
        "redirect_url": tenant.redirect_url, "organization_id": stored["id"],
        "enabled": True, "managed": True, "attributes": (),
    }


def test_ensure_again_changes_nothing_and_never_duplicates(
    provider: KeycloakOrganizations, tenant: TenantOrganization, admin: httpx.Client,
) -> None:
    first = provider.ensure(tenant)
    again = provider.ensure(tenant)

    assert isinstance(first, Ready)
    assert isinstance(again, Ready)
    assert not again.changed
    assert again.outputs["organization_id"] == first.outputs["organization_id"]
    only_organization(admin, tenant.alias)


def test_concurrent_ensures_make_one_organization(
    settings: KeycloakOrganizationSettings, tenant: TenantOrganization, admin: httpx.Client,
) -> None:
    outcomes: list[Outcome | ProviderError] = []

    def onboard() -> None:
        provider = KeycloakOrganizations(settings)
        try:
            outcomes.append(provider.ensure(tenant))
        except ProviderError as exc:
            outcomes.append(exc)
        finally:
            provider.close()

    threads = [threading.Thread(target=onboard) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Keycloak answers a lost race on the unique name with 500 (its constraint fails at
    # commit), which is transient: the engine's retry then finds the organization.
    refused = [o for o in outcomes if not isinstance(o, (Ready, TransientProviderError))]
    assert refused == []
    stored = only_organization(admin, tenant.alias)
    retried = KeycloakOrganizations(settings)
    try:
        again = retried.ensure(tenant)
    finally:
        retried.close()
    assert isinstance(again, Ready)
    assert not again.changed
    assert {o.outputs["organization_id"] for o in outcomes if isinstance(o, Ready)} == {
        stored["id"]} == {again.outputs["organization_id"]}


def test_drifted_organization_is_converged(
    provider: KeycloakOrganizations, tenant: TenantOrganization, admin: httpx.Client,
) -> None:
    provider.ensure(tenant)
    stored = only_organization(admin, tenant.alias)
    drifted = {**stored, "name": "Renamed by hand", "redirectUrl": "https://elsewhere.test/",
               "domains": [], "attributes": {**stored["attributes"], "team": ["blue"]}}
    admin.put(f"/organizations/{stored['id']}", json=drifted).raise_for_status()

    outcome = provider.ensure(tenant)

    assert isinstance(outcome, Ready)
    assert outcome.changed
    converged = only_organization(admin, tenant.alias)
    assert converged["id"] == stored["id"]
    assert (converged["name"], converged["redirectUrl"]) == (tenant.name, tenant.redirect_url)
    assert [d["name"] for d in converged["domains"]] == list(tenant.domains)
    # Attributes others added are kept.
    assert converged["attributes"]["team"] == ["blue"]


def test_a_domain_owned_by_another_organization_names_it_and_creates_nothing(
    provider: KeycloakOrganizations, tenant: TenantOrganization, admin: httpx.Client,
) -> None:
    provider.ensure(tenant)
    slug = unique_slug("kc")
    intruder = TenantOrganization(alias=slug, name=f"Intruder {slug}", domains=tenant.domains,
                                  redirect_url=tenant.redirect_url)
    try:
        with pytest.raises(PermanentProviderError) as caught:
            provider.ensure(intruder)

        message = str(caught.value)
        assert f"domain {tenant.domains[0]} is already owned by organization" in message
        assert repr(tenant.name) in message
        assert repr(tenant.alias) in message
        assert "another domain" in message
        assert caught.value.resource == f"organization:{slug}"
        assert organizations_with_alias(admin, slug) == []
    finally:
        for found in organizations_with_alias(admin, slug):
            admin.delete(f"/organizations/{found['id']}")


def test_an_alias_held_by_an_organization_tenantops_did_not_make_is_refused(
    provider: KeycloakOrganizations, tenant: TenantOrganization, admin: httpx.Client,
) -> None:
    admin.post("/organizations", json={"name": "Made by hand", "alias": tenant.alias}
               ).raise_for_status()

    with pytest.raises(PermanentProviderError) as caught:
        provider.ensure(tenant)

    assert f"alias {tenant.alias!r} is already used by organization 'Made by hand'" in str(
        caught.value)
    assert only_organization(admin, tenant.alias)["name"] == "Made by hand"
    # Nor does offboarding delete it.
    removed = provider.remove(tenant)
    assert isinstance(removed, Ready)
    assert not removed.changed
    only_organization(admin, tenant.alias)


def test_a_name_used_by_another_organization_is_refused_naming_it(
    provider: KeycloakOrganizations, tenant: TenantOrganization, admin: httpx.Client,
) -> None:
    provider.ensure(tenant)
    slug = unique_slug("kc")
    namesake = TenantOrganization(alias=slug, name=tenant.name, domains=(),
                                  redirect_url=tenant.redirect_url)

    with pytest.raises(PermanentProviderError) as caught:
        provider.ensure(namesake)

    assert f"name {tenant.name!r} is already used by organization alias {tenant.alias!r}" in (
        str(caught.value))
    assert organizations_with_alias(admin, slug) == []


def test_remove_deletes_the_organization_and_is_idempotent(
    provider: KeycloakOrganizations, tenant: TenantOrganization, admin: httpx.Client,
) -> None:
    provider.ensure(tenant)

    removed = provider.remove(tenant)

    assert isinstance(removed, Ready)
    assert removed.changed
    assert organizations_with_alias(admin, tenant.alias) == []
    assert provider.observe(tenant) is None
    again = provider.remove(tenant)
    assert isinstance(again, Ready)
    assert not again.changed


def _token_claims(link: str) -> dict[str, Any]:
    token = parse_qs(urlsplit(link).query)["token"][0]
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * 4))
    return decoded


def test_invitation_email_arrives_with_a_link_to_join_the_organization(
    provider: KeycloakOrganizations, tenant: TenantOrganization, smtp: SmtpSink,
    settings: KeycloakOrganizationSettings,
) -> None:
    created = provider.ensure(tenant)
    assert isinstance(created, Ready)
    email_address = f"admin@{tenant.domains[0]}"
    invitation = OrganizationInvitation(alias=tenant.alias, email=email_address)

    outcome = provider.ensure(invitation)

    assert isinstance(outcome, Ready)
    assert outcome.changed
    assert outcome.outputs["status"] == "pending"
    message = smtp.wait_for(email_address)
    assert tenant.name in str(message["Subject"])
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    text = unescape(body.get_content())
    links = re.findall(r"https?://\S+", text)
    assert len(links) == 1, text
    link = links[0]
    assert link.startswith(f"{settings.url}/realms/{settings.realm}/")
    claims = _token_claims(link)
    assert claims["eml"] == email_address
    assert claims["org_id"] == created.outputs["organization_id"]
    assert claims["reduri"] == tenant.redirect_url

    again = provider.ensure(invitation)
    assert isinstance(again, Ready)
    assert not again.changed
    assert len([m for m in smtp.messages if email_address in str(m["To"])]) == 1
    assert provider.observe(invitation) == {
        "alias": tenant.alias, "email": email_address, "status": "pending",
        "invitation_id": outcome.outputs["invitation_id"],
    }

    revoked = provider.remove(invitation)
    assert isinstance(revoked, Ready)
    assert revoked.changed
    assert provider.observe(invitation) is None


def test_invitation_when_the_smtp_server_is_down_is_transient(
    provider: KeycloakOrganizations, tenant: TenantOrganization, admin: httpx.Client,
    smtp: SmtpSink,
) -> None:
    provider.ensure(tenant)
    point_realm_smtp_at(admin, 9)  # discard: nothing answers SMTP there
    try:
        with pytest.raises(TransientProviderError, match=r"SMTP server 127\.0\.0\.1:9"):
            provider.ensure(OrganizationInvitation(alias=tenant.alias, email="x@example.test"))
    finally:
        point_realm_smtp_at(admin, smtp.port)


def test_invitation_without_smtp_in_the_realm_says_to_configure_it(
    provider: KeycloakOrganizations, tenant: TenantOrganization, admin: httpx.Client,
    smtp: SmtpSink,
) -> None:
    provider.ensure(tenant)
    admin.put("", json={"smtpServer": {}}).raise_for_status()
    try:
        with pytest.raises(PermanentProviderError, match=r"has no SMTP server\. Configure it"):
            provider.ensure(OrganizationInvitation(alias=tenant.alias, email="y@example.test"))
    finally:
        point_realm_smtp_at(admin, smtp.port)


def test_invitation_to_a_missing_organization_says_which_step_to_run(
    provider: KeycloakOrganizations,
) -> None:
    with pytest.raises(PermanentProviderError, match="run the organization step first"):
        provider.ensure(OrganizationInvitation(alias=unique_slug("kc"), email="a@example.test"))


def test_a_wrong_client_secret_is_permanent_and_not_echoed(
    settings: KeycloakOrganizationSettings, tenant: TenantOrganization,
) -> None:
    wrong = settings.model_copy(update={"client_secret": SecretStr("wrong-secret-value"),
                                        "client_secret_file": None})
    provider = KeycloakOrganizations(wrong)
    try:
        with pytest.raises(PermanentProviderError) as caught:
            provider.ensure(tenant)
    finally:
        provider.close()

    assert f"client {settings.client_id!r}" in str(caught.value)
    assert "wrong-secret-value" not in str(caught.value)


def test_a_suspended_tenants_organization_is_disabled_and_enabled_again(
    provider: KeycloakOrganizations, tenant: TenantOrganization, admin: httpx.Client,
) -> None:
    provider.ensure(tenant)
    suspended = dataclasses.replace(tenant, enabled=False)
    disabled = provider.ensure(suspended)
    assert isinstance(disabled, Ready)
    assert disabled.changed
    stored = only_organization(admin, tenant.alias)  # read back through the admin API
    assert stored["enabled"] is False
    assert [d["name"] for d in stored["domains"]] == list(tenant.domains)
    observed = provider.observe(suspended)
    assert observed is not None
    assert observed["enabled"] is False
    again = provider.ensure(suspended)
    assert isinstance(again, Ready)
    assert not again.changed

    enabled = provider.ensure(tenant)
    assert isinstance(enabled, Ready)
    assert enabled.changed
    assert only_organization(admin, tenant.alias)["enabled"] is True


def test_removing_a_previous_administrator_ends_their_membership(
    provider: KeycloakOrganizations, tenant: TenantOrganization, admin: httpx.Client,
) -> None:
    created = provider.ensure(tenant)
    assert isinstance(created, Ready)
    organization_id = created.outputs["organization_id"]
    email = f"previous-admin@{tenant.domains[0]}"
    made = admin.post("/users", json={"username": email, "email": email, "enabled": True,
                                       "emailVerified": True})
    assert made.status_code == 201, made.text
    user_id = made.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
    try:
        joined = admin.post(f"/organizations/{organization_id}/members", json=user_id)
        assert joined.status_code == 201, joined.text
        invitation = OrganizationInvitation(alias=tenant.alias, email=email)
        assert provider.observe(invitation) == {"alias": tenant.alias, "email": email,
                                                "status": "member"}

        removed = provider.remove(invitation)

        assert isinstance(removed, Ready)
        assert removed.changed
        members = admin.get(f"/organizations/{organization_id}/members")
        assert email not in {m.get("email") for m in members.json()}
        assert admin.get(f"/users/{user_id}").status_code == 200  # the account stays
        again = provider.remove(invitation)
        assert isinstance(again, Ready)
        assert not again.changed
    finally:
        admin.delete(f"/users/{user_id}")


def test_a_plans_attributes_are_kept_on_the_organization_and_replaced_by_another_plan(
    provider: KeycloakOrganizations, tenant: TenantOrganization, admin: httpx.Client,
) -> None:
    premium = dataclasses.replace(tenant, attributes=(("seats", "500"), ("sso", "true")))
    assert provider.ensure(premium).changed  # type: ignore[union-attr]
    stored = only_organization(admin, tenant.alias)
    assert stored["attributes"] == {"tenantops-tenant": [tenant.alias],
                                    "tenantops-plan-seats": ["500"],
                                    "tenantops-plan-sso": ["true"]}
    # An attribute someone else set on the organization is not tenantops's to remove.
    admin.put(f"/organizations/{stored['id']}", json={
        **stored, "attributes": {**stored["attributes"], "crm-id": ["42"]}}).raise_for_status()

    free = dataclasses.replace(tenant, attributes=(("seats", "5"),))
    observed = provider.observe(free)
    assert observed is not None
    assert observed["attributes"] == (("seats", "500"), ("sso", "true"))
    assert provider.ensure(free).changed  # type: ignore[union-attr]
    assert only_organization(admin, tenant.alias)["attributes"] == {
        "tenantops-tenant": [tenant.alias], "tenantops-plan-seats": ["5"], "crm-id": ["42"]}
    again = provider.ensure(free)
    assert isinstance(again, Ready)
    assert not again.changed
