"""Drift checks and reconcile runs on the self-hosted servers (issue 15 §5): a tenant
onboarded through the engine, then changed behind tenantops' back on the servers themselves
(a DNS record deleted in BIND with ``nsupdate``, the login dropped in PostgreSQL, the
organization deleted or edited in Keycloak). Each is reported resource by resource, then a
reconcile run restores it, checked through the server's own interface again."""

from __future__ import annotations

import dataclasses
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg import sql

from tenantops.catalog import Catalog
from tenantops.config import Settings
from tenantops.errors import TenantStateError
from tenantops.provisioning.drift import (
    AUTOMATIC_REQUESTER,
    SCHEDULE_REQUESTER,
    DriftChecker,
    DriftReport,
    DriftWatch,
)
from tenantops.provisioning.engine import Engine
from tenantops.provisioning.providers.organization.keycloak import KeycloakOrganizations

from .selfhosted import scratch_databases, selfhosted_providers, selfhosted_settings
from .servers import (
    dns_settings,
    keycloak_admin,
    keycloak_settings,
    postgres_url,
    realm_smtp_working,
    require_env,
    unique_slug,
)
from .test_selfhosted_engine import dig, organizations, roles, spec_for

pytestmark = pytest.mark.integration

RUN_TIMEOUT = 120.0


@dataclass
class Stack:
    engine: Engine
    settings: Settings
    checker: DriftChecker
    keycloak: httpx.Client
    key_file: Path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    keycloak = keycloak_admin(keycloak_settings())
    folder = tmp_path_factory.mktemp("drift")
    key_file = folder / "nsupdate.key"
    secret = Path(require_env("TENANTOPS_TEST_BIND_TSIG_SECRET_FILE")).read_text().strip()
    key_file.write_text(f'key "{require_env("TENANTOPS_TEST_BIND_TSIG_KEY_NAME")}" '
                        f'{{ algorithm hmac-sha256; secret "{secret}"; }};\n')
    key_file.chmod(0o600)
    # Invitations are sent, not read, here.
    with realm_smtp_working(keycloak), scratch_databases("catalog", "engine") as (
            catalog_db, engine_db):
        settings = selfhosted_settings(folder, catalog_db=catalog_db, engine_db=engine_db,
                                       dns_server="bind")
        catalog = Catalog.from_settings(settings)
        providers = selfhosted_providers(settings, catalog)
        engine = Engine(settings, catalog=catalog, providers=providers)
        engine.start()
        try:
            yield Stack(engine, settings, DriftChecker.of(engine), keycloak, key_file)
        finally:
            engine.stop()
            catalog.close()
            organizations_provider = providers.organization
            assert hasattr(organizations_provider, "close")
            organizations_provider.close()
            keycloak.close()


def nsupdate_delete(stack: Stack, name: str, rdtype: str) -> None:
    """Delete a record the way an operator would, outside tenantops."""
    port = dns_settings("bind").rfc2136.port
    script = f"server 127.0.0.1 {port}\nupdate delete {name}. {rdtype}\nsend\n"
    subprocess.run(["nsupdate", "-k", str(stack.key_file)], input=script, text=True,
                   check=True, capture_output=True, timeout=30)


def drop_login(database: str, login: str) -> None:
    """What an operator does to drop a login that owns a database and its tables."""
    base = postgres_url().rsplit("/", 1)[0]
    with psycopg.connect(f"{base}/{database}", autocommit=True) as tenant_db:
        tenant_db.execute(sql.SQL("REASSIGN OWNED BY {} TO CURRENT_USER")
                          .format(sql.Identifier(login)))
        tenant_db.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(login)))
    with psycopg.connect(postgres_url(), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(login)))


def found(report: DriftReport) -> dict[str, str]:
    return {r.step: r.state for r in report.resources if r.state != "unchecked"}


def onboarded(stack: Stack) -> str:
    spec = spec_for(unique_slug("dft"))
    run = stack.engine.wait(stack.engine.onboard(spec, requested_by="tests").id,
                            timeout=RUN_TIMEOUT)
    assert (run.status, run.error) == ("succeeded", None)
    return spec.slug


def test_a_tenant_just_onboarded_is_in_sync(stack: Stack) -> None:
    slug = onboarded(stack)

    report = stack.checker.check_and_record(slug, checked_by="tests")

    assert report.state == "in_sync", report.render()
    assert set(found(report).values()) == {"in_sync"}
    assert {"create_database", "create_cname_record", "create_verification_record",
            "create_organization"} <= set(found(report))
    assert stack.engine.catalog.last_drift(slug) is not None


def test_changes_behind_tenantops_back_are_reported_then_reconciled(stack: Stack) -> None:
    slug = onboarded(stack)
    tenant = stack.engine.catalog.get_tenant(slug)
    identifier = slug.replace("-", "_")
    site = stack.engine.providers.webhost.site()

    nsupdate_delete(stack, tenant.custom_domain, "CNAME")
    drop_login(f"tenant_{identifier}", f"{identifier}_app")
    [organization] = organizations(stack.keycloak, slug)
    stack.keycloak.delete(f"/organizations/{organization['id']}").raise_for_status()

    assert dig(tenant.custom_domain, "CNAME") == []
    report = stack.checker.check_and_record(slug, checked_by="tests")

    states = found(report)
    assert report.state == "missing", report.render()
    assert states["create_cname_record"] == "missing"
    assert states["create_organization"] == "missing"
    assert states["create_database"] == "drifted"
    assert states["create_verification_record"] == "in_sync"
    [database] = [r for r in report.resources if r.step == "create_database"]
    assert {d.field for d in database.differences} == {"login", "login_enabled"}
    assert f"login: recorded '{identifier}_app', found none" in database.describe()
    rendered = report.render()
    line = f"+ missing   dns:rfc2136            dns:CNAME:{tenant.custom_domain}  (gone)"
    assert line in rendered
    history = stack.engine.catalog.events.history(slug)
    assert history[0].event.type == "com.tenantops.drift.detected"

    preview = stack.engine.preview_reconcile(slug)
    actions = {c.step: c.action for c in preview.changes}
    assert actions["create_cname_record"] == "create"
    assert actions["create_database"] == "update"
    assert actions["create_organization"] == "create"
    assert "delete" not in actions.values()  # a reconcile never removes anything

    run = stack.engine.wait(stack.engine.reconcile_tenant(slug, requested_by="tests").id,
                            timeout=RUN_TIMEOUT)

    assert (run.kind, run.status, run.error) == ("reconcile", "succeeded", None)
    assert dig(tenant.custom_domain, "CNAME") == [f"{site.default_hostname}."]
    assert roles(f"{identifier}_app") == [(f"{identifier}_app",)]
    [restored] = organizations(stack.keycloak, slug)
    assert [d["name"] for d in restored["domains"]] == [tenant.custom_domain]
    after = stack.engine.catalog.get_tenant(slug)
    assert after.status == "active"
    assert after.organization_id == restored["id"]  # the new organization is recorded
    again = stack.checker.check_and_record(slug, checked_by="tests")
    assert again.state == "in_sync", again.render()
    assert stack.engine.catalog.events.history(slug)[0].event.type == (
        "com.tenantops.drift.resolved")


def test_an_edited_organization_is_drifted_field_by_field(stack: Stack) -> None:
    slug = onboarded(stack)
    [organization] = organizations(stack.keycloak, slug)
    organization["redirectUrl"] = "https://elsewhere.example.net/"
    organization["enabled"] = False
    stack.keycloak.put(f"/organizations/{organization['id']}",
                       json=organization).raise_for_status()

    report = stack.checker.check(slug)

    [drifted] = [r for r in report.resources if r.step == "create_organization"]
    assert drifted.state == "drifted"
    assert {d.field: d.found for d in drifted.differences} == {
        "redirect_url": "https://elsewhere.example.net/", "enabled": False}
    assert stack.engine.catalog.last_drift(slug) is None  # check alone records nothing

    run = stack.engine.wait(stack.engine.reconcile_tenant(slug, requested_by="tests").id,
                            timeout=RUN_TIMEOUT)
    assert run.status == "succeeded"
    [restored] = organizations(stack.keycloak, slug)
    assert (restored["redirectUrl"], restored["enabled"]) == (
        f"https://{stack.engine.catalog.get_tenant(slug).custom_domain}/", True)


def test_a_suspended_tenant_is_compared_with_its_suspended_state(stack: Stack) -> None:
    slug = onboarded(stack)
    suspended = stack.engine.wait(
        stack.engine.suspend(slug, reason="unpaid", requested_by="tests").id,
        timeout=RUN_TIMEOUT)
    assert suspended.status == "succeeded"

    assert stack.checker.check(slug).state == "in_sync"  # a disabled login is no drift

    identifier = slug.replace("-", "_")
    with psycopg.connect(postgres_url(), autocommit=True) as admin:
        admin.execute(sql.SQL("ALTER ROLE {} LOGIN").format(sql.Identifier(f"{identifier}_app")))
    report = stack.checker.check(slug)
    [database] = [r for r in report.resources if r.step == "create_database"]
    assert (database.state, [str(d) for d in database.differences]) == (
        "drifted", ["login_enabled: recorded False, found True"])

    run = stack.engine.wait(stack.engine.reconcile_tenant(slug, requested_by="tests").id,
                            timeout=RUN_TIMEOUT)
    assert run.status == "succeeded"
    assert stack.engine.catalog.get_tenant(slug).status == "suspended"
    assert stack.checker.check(slug).state == "in_sync"


def test_a_tenant_whose_run_is_unsettled_is_not_checked(stack: Stack) -> None:
    slug = onboarded(stack)
    offboarded = stack.engine.wait(stack.engine.offboard(slug, requested_by="tests").id,
                                   timeout=RUN_TIMEOUT)
    assert offboarded.status == "succeeded"

    with pytest.raises(TenantStateError, match="only active and suspended tenants"):
        stack.checker.check(slug)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_provider_makes_its_resource_unknown_not_the_check(
    stack: Stack,
) -> None:
    slug = onboarded(stack)
    unreachable = KeycloakOrganizations(keycloak_settings(
        url=f"http://127.0.0.1:{closed_port()}", timeout_seconds=2.0))
    try:
        providers = dataclasses.replace(stack.engine.providers, organization=unreachable)
        checker = DriftChecker(stack.engine.catalog, providers, stack.settings)

        report = checker.check_and_record(slug, checked_by="tests")
    finally:
        unreachable.close()

    states = found(report)
    assert report.state == "unknown", report.render()
    assert states["create_organization"] == "unknown"
    assert states["create_database"] == states["create_cname_record"] == "in_sync"
    [organization] = [r for r in report.resources if r.step == "create_organization"]
    assert organization.error is not None
    assert organization.error.startswith("organization:keycloak")
    assert "client_secret" not in organization.error
    secret = Path(require_env("TENANTOPS_TEST_KEYCLOAK_CLIENT_SECRET_FILE")).read_text().strip()
    assert secret not in report.render()


def test_scheduled_checks_claim_due_tenants_and_reconcile_when_configured(
    stack: Stack,
) -> None:
    slug = onboarded(stack)
    tenant = stack.engine.catalog.get_tenant(slug)
    settings = stack.settings.model_copy(update={"drift": stack.settings.drift.model_copy(
        update={"check_interval_seconds": 3600.0, "auto_reconcile": True,
                "batch_size": 1000})})
    watch = DriftWatch(stack.engine, settings)
    nsupdate_delete(stack, tenant.custom_domain, "CNAME")

    checked = watch.run_once()
    again = watch.run_once()  # nothing is due any more: every tenant was just checked

    assert checked >= 1
    assert again == 0
    record = stack.engine.catalog.last_drift(slug)
    assert record is not None
    assert (record.state, record.checked_by) == ("missing", SCHEDULE_REQUESTER)
    assert record.reconcile_run_id is not None
    run = stack.engine.wait(record.reconcile_run_id, timeout=RUN_TIMEOUT)
    assert (run.kind, run.status, run.requested_by) == (
        "reconcile", "succeeded", AUTOMATIC_REQUESTER)
    assert run.options["reason"] == "a scheduled drift check found it missing"
    site = stack.engine.providers.webhost.site()
    assert dig(tenant.custom_domain, "CNAME") == [f"{site.default_hostname}."]
