"""Onboarding and offboarding through the engine on the self-hosted servers: catalog and
DBOS on PostgreSQL, tenant databases on PostgreSQL, DNS on BIND (RFC 2136), organizations on
Keycloak. Every resource is checked through the server's own interface (SQL, dig, the
Keycloak admin API) and the invitation through the SMTP sink."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql

from tenantops.catalog import Catalog
from tenantops.config import Settings
from tenantops.errors import SpecError
from tenantops.provisioning.engine import Engine
from tenantops.provisioning.run_requests import TenantChange
from tenantops.provisioning.spec import TenantSpec

from .selfhosted import scratch_databases, selfhosted_providers, selfhosted_settings
from .servers import (
    SmtpSink,
    dns_settings,
    dns_zone,
    keycloak_admin,
    keycloak_settings,
    point_realm_smtp_at,
    postgres_url,
    unique_slug,
)

pytestmark = pytest.mark.integration

RUN_TIMEOUT = 120.0


@dataclass
class Stack:
    engine: Engine
    settings: Settings
    smtp: SmtpSink
    keycloak: httpx.Client


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    keycloak = keycloak_admin(keycloak_settings())
    smtp = SmtpSink()
    smtp.start()
    point_realm_smtp_at(keycloak, smtp.port)
    with scratch_databases("catalog", "engine") as (catalog_db, engine_db):
        settings = selfhosted_settings(tmp_path_factory.mktemp("selfhosted"),
                                       catalog_db=catalog_db, engine_db=engine_db,
                                       dns_server="bind")
        catalog = Catalog.from_settings(settings)
        providers = selfhosted_providers(settings, catalog)
        engine = Engine(settings, catalog=catalog, providers=providers)
        engine.start()
        try:
            yield Stack(engine, settings, smtp, keycloak)
        finally:
            engine.stop()
            catalog.close()
            organizations = providers.organization
            assert hasattr(organizations, "close")
            organizations.close()
            smtp.stop()
            keycloak.close()


def spec_for(slug: str, **changes: str) -> TenantSpec:
    fields = {"slug": slug, "display_name": f"Tenant {slug}",
              "custom_domain": f"{slug}.{dns_zone('bind')}",
              "admin_email": f"admin@{slug}.example.net"}
    fields.update(changes)
    return TenantSpec(**fields)


def dig(name: str, rdtype: str) -> list[str]:
    port = str(dns_settings("bind").rfc2136.port)
    result = subprocess.run(["dig", "+short", "+tcp", "-p", port, "@127.0.0.1", name, rdtype],
                            capture_output=True, text=True, check=True, timeout=10)
    return result.stdout.split()


def databases(name: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(postgres_url()) as admin:
        return admin.execute(
            "SELECT datname, pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
            (name,)).fetchall()


def roles(name: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(postgres_url()) as admin:
        return admin.execute("SELECT rolname FROM pg_roles WHERE rolname = %s",
                             (name,)).fetchall()


def organizations(keycloak: httpx.Client, alias: str) -> list[dict[str, Any]]:
    page = keycloak.get("/organizations", params={"max": "1000",
                                                  "briefRepresentation": "false"})
    page.raise_for_status()
    return [o for o in page.json() if o["alias"] == alias]


def test_several_tenants_onboard_and_offboard_on_the_real_servers(stack: Stack) -> None:
    specs = [spec_for(unique_slug("eng")) for _ in range(3)]

    runs = [stack.engine.onboard(spec, requested_by="tests") for spec in specs]
    finished = [stack.engine.wait(run.id, timeout=RUN_TIMEOUT) for run in runs]

    assert [(r.status, r.error) for r in finished] == [("succeeded", None)] * 3
    site = stack.engine.providers.webhost.site()
    for spec in specs:
        identifier = spec.slug.replace("-", "_")
        tenant = stack.engine.catalog.get_tenant(spec.slug)
        assert tenant.status == "active"
        assert databases(f"tenant_{identifier}") == [(f"tenant_{identifier}",
                                                      f"{identifier}_app")]
        assert dig(spec.custom_domain, "CNAME") == [f"{site.default_hostname}."]
        assert dig(f"asuid.{spec.custom_domain}", "TXT") == [f'"{site.verification_id}"']
        [organization] = organizations(stack.keycloak, spec.slug)
        assert organization["id"] == tenant.organization_id
        assert [d["name"] for d in organization["domains"]] == [spec.custom_domain]
        assert organization["redirectUrl"] == f"https://{spec.custom_domain}/"
        invitation = stack.smtp.wait_for(spec.admin_email)
        assert spec.display_name in str(invitation["Subject"])

    offboarded = [stack.engine.wait(
        stack.engine.offboard(spec.slug, requested_by="tests").id, timeout=RUN_TIMEOUT)
        for spec in specs]

    assert [(r.status, r.error) for r in offboarded] == [("succeeded", None)] * 3
    for spec in specs:
        identifier = spec.slug.replace("-", "_")
        assert databases(f"tenant_{identifier}") == []
        assert roles(f"{identifier}_app") == []
        assert dig(spec.custom_domain, "CNAME") == []
        assert dig(f"asuid.{spec.custom_domain}", "TXT") == []
        assert organizations(stack.keycloak, spec.slug) == []
        assert stack.engine.catalog.get_tenant(spec.slug).status == "offboarded"


def test_keycloak_domain_conflict_fails_the_run_naming_the_owner_then_retry_finishes(
    stack: Stack,
) -> None:
    spec = spec_for(unique_slug("eng"))
    owner = stack.keycloak.post("/organizations", json={
        "name": f"Squatter {spec.slug}", "alias": f"squat-{spec.slug}",
        "domains": [{"name": spec.custom_domain}],
    })
    owner.raise_for_status()
    owner_id = owner.headers["Location"].rsplit("/", 1)[-1]

    failed = stack.engine.wait(stack.engine.onboard(spec, requested_by="tests").id,
                               timeout=RUN_TIMEOUT)

    assert failed.status == "failed"
    assert failed.failed_step == "create_organization"
    assert failed.error is not None
    assert f"already owned by organization 'Squatter {spec.slug}'" in failed.error
    assert owner_id in failed.error
    assert organizations(stack.keycloak, spec.slug) == []  # nothing half-made
    assert stack.engine.catalog.get_tenant(spec.slug).status == "failed"

    stack.keycloak.delete(f"/organizations/{owner_id}").raise_for_status()
    retried = stack.engine.wait(stack.engine.retry(failed.id).id, timeout=RUN_TIMEOUT)

    assert (retried.status, retried.error) == ("succeeded", None)
    assert len(organizations(stack.keycloak, spec.slug)) == 1
    offboarded = stack.engine.wait(
        stack.engine.offboard(spec.slug, requested_by="tests").id, timeout=RUN_TIMEOUT)
    assert offboarded.status == "succeeded"
    assert organizations(stack.keycloak, spec.slug) == []


@pytest.mark.parametrize(
    "changes",
    [
        {"slug": "evil'); DROP DATABASE postgres; --"},
        {"slug": 'x"; DROP ROLE postgres; --'},
        {"custom_domain": "evil.example.test. 300 IN A 203.0.113.66"},
        {"custom_domain": "a.example.test\nevil.example.test"},
        {"custom_domain": "evil.example.test;rm -rf /"},
    ],
)
def test_injection_is_refused_before_any_server_is_touched(
    stack: Stack, changes: dict[str, str],
) -> None:
    slug = unique_slug("inj")
    fields = {"slug": slug, "display_name": "Injected", "custom_domain": f"{slug}.example.test",
              "admin_email": "admin@example.net", **changes}
    with pytest.raises(SpecError) as caught:
        stack.engine.onboard(fields, requested_by="tests")

    field = next(iter(changes))
    assert caught.value.problems[0].field == field
    # Only this test's names are looked for: other test sessions may share the server.
    traces = ("%" + slug.replace("-", "_") + "%", "%evil%", "%drop %")
    with psycopg.connect(postgres_url()) as admin:
        for catalog_table, column in (("pg_database", "datname"), ("pg_roles", "rolname")):
            made = admin.execute(
                f"SELECT {column} FROM {catalog_table} WHERE {column} ILIKE ANY(%s)",
                (list(traces),)).fetchall()
            assert made == [], f"{catalog_table} gained {made}"
        assert admin.execute(
            "SELECT count(*) FROM pg_database WHERE datname = 'postgres'").fetchone() == (1,)
        assert admin.execute(
            "SELECT count(*) FROM pg_roles WHERE rolname = 'postgres'").fetchone() == (1,)
    assert stack.engine.catalog.find_tenant(slug) is None
    assert organizations(stack.keycloak, slug) == []


def test_offboarding_with_keep_database_keeps_it_and_removes_the_rest(stack: Stack) -> None:
    spec = spec_for(unique_slug("keep"))
    identifier = spec.slug.replace("-", "_")
    onboarded = stack.engine.wait(stack.engine.onboard(spec, requested_by="tests").id,
                                  timeout=RUN_TIMEOUT)
    assert onboarded.status == "succeeded"

    offboarded = stack.engine.wait(
        stack.engine.offboard(spec.slug, requested_by="tests", keep_database=True).id,
        timeout=RUN_TIMEOUT)

    try:
        assert offboarded.status == "succeeded"
        assert databases(f"tenant_{identifier}") == [(f"tenant_{identifier}",
                                                      f"{identifier}_app")]
        assert dig(spec.custom_domain, "CNAME") == []
        assert organizations(stack.keycloak, spec.slug) == []
    finally:
        with psycopg.connect(postgres_url(), autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                          .format(sql.Identifier(f"tenant_{identifier}")))
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}")
                          .format(sql.Identifier(f"{identifier}_app")))


def can_login(slug: str, stack: Stack) -> bool:
    identifier = slug.replace("-", "_")
    password = stack.engine.providers.secrets.read(f"{slug}-database-password")
    conninfo = psycopg.conninfo.make_conninfo(
        postgres_url(), user=f"{identifier}_app", dbname=f"tenant_{identifier}",
        password=password)
    try:
        psycopg.connect(conninfo).close()
    except psycopg.OperationalError as exc:
        if "is not permitted to log in" not in str(exc):
            raise
        return False
    return True


def test_change_suspend_resume_and_offboard_a_suspended_tenant_on_the_real_servers(
        stack: Stack) -> None:
    engine = stack.engine
    spec = spec_for(unique_slug("day2"))
    assert engine.wait(engine.onboard(spec, requested_by="tests").id,
                       timeout=RUN_TIMEOUT).status == "succeeded"
    new_domain = f"www-{spec.slug}.{dns_zone('bind')}"
    site = engine.providers.webhost.site()

    update = engine.update(spec.slug, TenantChange(
        custom_domain=new_domain, admin_email=f"it@{spec.slug}.example.net",
        remove_previous_admin=True, grace_seconds=0), requested_by="tests")
    assert update is not None
    done = engine.wait(update.id, timeout=RUN_TIMEOUT)
    assert (done.status, done.error) == ("succeeded", None)
    assert dig(new_domain, "CNAME") == [f"{site.default_hostname}."]
    assert dig(f"asuid.{new_domain}", "TXT") == [f'"{site.verification_id}"']
    assert dig(spec.custom_domain, "CNAME") == []
    assert dig(f"asuid.{spec.custom_domain}", "TXT") == []
    [organization] = organizations(stack.keycloak, spec.slug)
    assert [d["name"] for d in organization["domains"]] == [new_domain]
    assert organization["redirectUrl"] == f"https://{new_domain}/"
    assert [s.name for s in done.steps if "admin" in s.name] == ["invite_admin",
                                                                 "remove_previous_admin"]
    assert done.step("invite_admin").outputs["status"] == "pending", done.step("invite_admin")
    # Read back through Keycloak (not the SMTP sink: the realm's mail settings are shared).
    pending = stack.keycloak.get(f"/organizations/{organization['id']}/invitations",
                                 params={"status": "PENDING"}).json()
    assert {i["email"] for i in pending} == {f"it@{spec.slug}.example.net"}
    assert can_login(spec.slug, stack)

    suspension = engine.wait(engine.suspend(spec.slug, reason="unpaid", requested_by="tests").id,
                             timeout=RUN_TIMEOUT)
    assert (suspension.status, suspension.error) == ("succeeded", None)
    [organization] = organizations(stack.keycloak, spec.slug)
    assert organization["enabled"] is False
    assert not can_login(spec.slug, stack)
    identifier = spec.slug.replace("-", "_")
    assert databases(f"tenant_{identifier}") == [(f"tenant_{identifier}",
                                                  f"{identifier}_app")]

    resumption = engine.wait(engine.resume(spec.slug, requested_by="tests").id,
                             timeout=RUN_TIMEOUT)
    assert (resumption.status, resumption.error) == ("succeeded", None)
    assert organizations(stack.keycloak, spec.slug)[0]["enabled"] is True
    assert can_login(spec.slug, stack)

    engine.wait(engine.suspend(spec.slug, reason="closing", requested_by="tests").id,
                timeout=RUN_TIMEOUT)
    offboarded = engine.wait(engine.offboard(spec.slug, requested_by="tests").id,
                             timeout=RUN_TIMEOUT)
    assert (offboarded.status, offboarded.error) == ("succeeded", None)
    assert databases(f"tenant_{identifier}") == []
    assert roles(f"{identifier}_app") == []
    assert organizations(stack.keycloak, spec.slug) == []
    assert dig(new_domain, "CNAME") == []
