"""Adopting tenants made before tenantops (issue 14 §5) on the self-hosted servers: a
database and login made by hand in PostgreSQL under the runbook's own names, CNAME and TXT
records added to BIND with ``nsupdate``, an organization made in Keycloak without
tenantops' mark. The import observes them without changing anything, records the tenant,
and a later reconcile makes what was missing and marks the organization."""

from __future__ import annotations

import secrets
import subprocess
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql

from tenantops.provisioning.providers.base import Ready
from tenantops.provisioning.providers.secrets import Secret
from tenantops.provisioning.providers.webhost import Certificate, HostnameBinding, SniBinding

from .servers import dns_settings, postgres_url, unique_slug
from .test_drift_selfhosted import RUN_TIMEOUT, Stack, stack
from .test_selfhosted_engine import databases, organizations, spec_for

__all__ = ["stack"]

pytestmark = pytest.mark.integration


def nsupdate_add(stack: Stack, name: str, rdtype: str, value: str) -> None:
    port = dns_settings("bind").rfc2136.port
    script = f"server 127.0.0.1 {port}\nupdate add {name}. 300 {rdtype} {value}\nsend\n"
    subprocess.run(["nsupdate", "-k", str(stack.key_file)], input=script, text=True,
                   check=True, capture_output=True, timeout=30)


def make_database(name: str, login: str) -> None:
    """A database and its login as a runbook made them, with names of its own."""
    with psycopg.connect(postgres_url(), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(login), sql.Literal(secrets.token_urlsafe(18))))
        admin.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
            sql.Identifier(name), sql.Identifier(login)))


def make_organization(stack: Stack, slug: str, domain: str) -> str:
    created = stack.keycloak.post("/organizations", json={
        "name": f"Tenant {slug}", "alias": slug, "domains": [{"name": domain}],
        "redirectUrl": f"https://{domain}/"})
    created.raise_for_status()
    return str(created.headers["Location"].rsplit("/", 1)[-1])


def make_everything(stack: Stack, slug: str) -> dict[str, Any]:
    """Every resource of a tenant, made without tenantops (the embedded web host's binding
    and the secret through their own providers, as a runbook using them would)."""
    spec = spec_for(slug)
    site = stack.engine.providers.webhost.site()
    make_database(f"legacy_{slug}", f"legacy_{slug}_login")
    nsupdate_add(stack, spec.custom_domain, "CNAME", f"{site.default_hostname}.")
    nsupdate_add(stack, f"asuid.{spec.custom_domain}", "TXT", f'"{site.verification_id}"')
    organization_id = make_organization(stack, slug, spec.custom_domain)
    providers = stack.engine.providers
    providers.secrets.ensure(Secret(f"legacy-{slug}-password"))
    providers.webhost.ensure(HostnameBinding(spec.custom_domain, slug))
    issued = providers.webhost.ensure(Certificate(spec.custom_domain))
    assert isinstance(issued, Ready)
    providers.webhost.ensure(SniBinding(spec.custom_domain, issued.outputs["thumbprint"]))
    return {**spec.model_dump(), "resources": {
        "database": f"legacy_{slug}", "login": f"legacy_{slug}_login",
        "secret": f"legacy-{slug}-password", "organization_id": organization_id}}


def keycloak_attributes(keycloak: httpx.Client, slug: str) -> dict[str, Any]:
    [organization] = organizations(keycloak, slug)
    return dict(organization.get("attributes") or {})


def test_a_tenant_made_by_hand_is_adopted_without_change_then_marked(stack: Stack) -> None:
    slug = unique_slug("adp")
    entry = make_everything(stack, slug)

    [dry] = stack.engine.import_tenants([entry], dry_run=True, requested_by="tests")

    assert (dry.outcome, dry.recorded) == ("adopted", False), dry.reasons
    assert stack.engine.catalog.find_tenant(slug) is None
    assert any("without tenantops' mark" in reason for reason in dry.reasons)

    [result] = stack.engine.import_tenants([entry], dry_run=False, requested_by="tests")

    assert (result.outcome, result.recorded) == ("adopted", True), result.reasons
    tenant = stack.engine.catalog.get_tenant(slug)
    assert tenant.status == "active"
    assert (tenant.database_name, tenant.database_login, tenant.database_secret) == (
        f"legacy_{slug}", f"legacy_{slug}_login", f"legacy-{slug}-password")
    assert tenant.organization_id == entry["resources"]["organization_id"]
    run = stack.engine.get_run(result.run_id or "")
    assert (run.kind, run.status, run.requested_by) == ("adopt", "succeeded", "tests")
    assert keycloak_attributes(stack.keycloak, slug) == {}  # the import changed nothing
    assert databases(f"legacy_{slug}") == [(f"legacy_{slug}", f"legacy_{slug}_login")]

    reconciled = stack.engine.wait(stack.engine.reconcile_tenant(slug, requested_by="tests").id,
                                   timeout=RUN_TIMEOUT)

    assert (reconciled.status, reconciled.error) == ("succeeded", None)
    assert keycloak_attributes(stack.keycloak, slug) == {"tenantops-tenant": [slug]}
    assert [o["id"] for o in organizations(stack.keycloak, slug)] == [tenant.organization_id]
    assert databases(f"legacy_{slug}") == [(f"legacy_{slug}", f"legacy_{slug}_login")]
    assert databases(f"tenant_{slug}") == []  # its own names, not tenantops' defaults
    from tenantops.provisioning.drift import DriftChecker

    assert DriftChecker.of(stack.engine).check(slug).state == "in_sync"


def test_a_tenant_with_only_its_database_is_partial_and_reconcile_makes_the_rest(
    stack: Stack,
) -> None:
    slug = unique_slug("adp")
    spec = spec_for(slug)
    make_database(f"legacy_{slug}", f"legacy_{slug}_login")
    entry = {**spec.model_dump(), "resources": {"database": f"legacy_{slug}",
                                                "login": f"legacy_{slug}_login"}}

    [result] = stack.engine.import_tenants([entry], dry_run=False, requested_by="tests")

    assert (result.outcome, result.recorded) == ("partial", True)
    assert f"organization:{slug} (organization:keycloak): gone" in result.reasons
    assert f"dns:CNAME:{spec.custom_domain} (dns:rfc2136): gone" in result.reasons
    assert not any(f"database:legacy_{slug}" in reason for reason in result.reasons)
    assert f"secret:{slug}-database-password (secrets:local): gone" in result.reasons
    assert (f"the login's password is not in secret:{slug}-database-password (secrets:local): "
            "a reconcile makes a new one and sets the login's password to it. To keep the "
            "password the tenant's app uses, store it there before reconciling"
            ) in result.reasons
    run = stack.engine.get_run(result.run_id or "")
    assert run.options["outcome"] == "partial"
    assert f"organization:{slug}" in run.options["missing"]
    assert organizations(stack.keycloak, slug) == []  # nothing made by the import

    reconciled = stack.engine.wait(stack.engine.reconcile_tenant(slug, requested_by="tests").id,
                                   timeout=RUN_TIMEOUT)

    assert (reconciled.status, reconciled.error) == ("succeeded", None)
    assert len(organizations(stack.keycloak, slug)) == 1
    assert databases(f"legacy_{slug}") == [(f"legacy_{slug}", f"legacy_{slug}_login")]


def test_importing_resources_recorded_for_another_tenant_is_refused(
    stack: Stack,
) -> None:
    owner = unique_slug("adp")
    make_database(f"legacy_{owner}", f"legacy_{owner}_login")
    [first] = stack.engine.import_tenants([{**spec_for(owner).model_dump(), "resources": {
        "database": f"legacy_{owner}", "login": f"legacy_{owner}_login"}}],
        dry_run=False, requested_by="tests")
    assert first.recorded

    other = unique_slug("adp")
    results = stack.engine.import_tenants([
        {**spec_for(other).model_dump(), "resources": {"database": f"legacy_{owner}"}},
        {**spec_for(unique_slug("adp")).model_dump(),
         "custom_domain": spec_for(owner).custom_domain},
        {**spec_for(owner).model_dump()},
        {"slug": "Bad Slug!", "display_name": "x", "custom_domain": "x.example.test",
         "admin_email": "a@example.net"},
        {**spec_for(other).model_dump(), "resources": {"password": "hunter2"}},
    ], dry_run=False, requested_by="tests")

    assert [r.outcome for r in results] == ["refused"] * 5
    assert results[0].reasons == (
        f"database 'legacy_{owner}' is recorded for tenant '{owner}'; a resource belongs to "
        "one tenant. Give the names of this tenant's own resources",)
    assert f"is the custom domain of tenant '{owner}'" in results[1].reasons[0]
    assert f"slug '{owner}' is taken: tenantops already knows tenant" in results[2].reasons[0]
    assert "slug" in results[3].reasons[0]
    assert "tenants[4].resources.password" in results[4].reasons[0]
    assert stack.engine.catalog.find_tenant(other) is None


def test_importing_a_database_owned_by_another_tenants_login_is_refused(stack: Stack) -> None:
    owner = unique_slug("adp")
    make_database(f"legacy_{owner}", f"legacy_{owner}_login")
    [first] = stack.engine.import_tenants([{**spec_for(owner).model_dump(), "resources": {
        "database": f"legacy_{owner}", "login": f"legacy_{owner}_login"}}],
        dry_run=False, requested_by="tests")
    assert first.recorded
    intruder = unique_slug("adp")
    with psycopg.connect(postgres_url(), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
            sql.Identifier(f"legacy_{intruder}"), sql.Identifier(f"legacy_{owner}_login")))

    [result] = stack.engine.import_tenants([{**spec_for(intruder).model_dump(), "resources": {
        "database": f"legacy_{intruder}"}}], dry_run=False, requested_by="tests")

    assert result.outcome == "refused"
    assert result.reasons == (
        f"database:legacy_{intruder} is owned by login 'legacy_{owner}_login', recorded for "
        f"tenant '{owner}': it is that tenant's database",)
    assert stack.engine.catalog.find_tenant(intruder) is None
