"""Suspending and resuming a tenant on App Service, through the engine against the Azure
fake: the hostname moves, with its certificate, to the suspended-page app (an app on the same
plan that answers a suspended page) and back; nothing is deleted; a move cut between the
DELETE and the PUT is finished by the next attempt; offboarding a suspended tenant removes the
binding where it is."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tenantops.catalog import Catalog
from tenantops.errors import PermanentProviderError
from tenantops.provisioning.engine import Engine
from tenantops.provisioning.providers.base import Ready
from tenantops.provisioning.providers.webhost import HostnameBinding
from tenantops.provisioning.providers.webhost.azure_app_service import AzureAppService
from tests.azure.conftest import APP, PG_SERVER, RESOURCE_GROUP, RG_SCOPE, SQL_SERVER, ZONE
from tests.azure.test_onboarding import RUN_TIMEOUT, azure_providers, azure_settings
from tests.azure_fake import SUBSCRIPTION, FakeAzure, FakeSite

PARKING = "func-tenantops-suspended"
HOST = f"acme.{ZONE}"


@dataclass
class Stack:
    engine: Engine
    fake: FakeAzure
    site: FakeSite
    parking: FakeSite


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    fake = FakeAzure(speedup=1000.0, issuance_seconds=300.0)
    site = fake.app_service.add_site(FakeSite(APP, RESOURCE_GROUP, SUBSCRIPTION))
    # Same subscription: the same custom domain verification ID (the fake's default).
    parking = fake.app_service.add_site(FakeSite(PARKING, RESOURCE_GROUP, SUBSCRIPTION))
    fake.dns.add_zone(ZONE, RESOURCE_GROUP)
    fake.sql.add_server(SQL_SERVER, RESOURCE_GROUP)
    fake.postgres.add_server(PG_SERVER, RESOURCE_GROUP)
    fake.authorization.grant(RG_SCOPE, "Contributor")
    fake.authorization.grant(fake.key_vault.resource_id, "Key Vault Secrets Officer")
    base = azure_settings(tmp_path, fake, "azure-sql")
    webhost = base.providers.webhost.model_copy(update={
        "azure_app_service": base.providers.webhost.azure_app_service.model_copy(
            update={"suspended_app_name": PARKING})})
    settings = base.model_copy(update={"providers": base.providers.model_copy(
        update={"webhost": webhost})})
    catalog = Catalog.from_settings(settings)
    engine = Engine(settings, catalog=catalog, providers=azure_providers(settings, catalog, fake))
    engine.start()
    try:
        yield Stack(engine, fake, site, parking)
    finally:
        engine.stop()
        catalog.close()


def onboarded(stack: Stack) -> str:
    from tenantops.provisioning.spec import TenantSpec

    spec = TenantSpec(slug="acme", display_name="Acme", custom_domain=HOST,
                      admin_email="admin@acme.example")
    run = stack.engine.wait(stack.engine.onboard(spec, requested_by="tests").id,
                            timeout=RUN_TIMEOUT)
    assert (run.status, run.error) == ("succeeded", None)
    thumbprint = stack.engine.catalog.get_tenant("acme").certificate_thumbprint
    assert thumbprint is not None
    return thumbprint


def test_suspension_moves_the_hostname_to_the_suspended_page_app_and_back(
        stack: Stack) -> None:
    thumbprint = onboarded(stack)
    suspended = stack.engine.wait(stack.engine.suspend("acme", reason="unpaid",
                                                       requested_by="tests").id,
                                  timeout=RUN_TIMEOUT)
    assert (suspended.status, suspended.error) == ("succeeded", None)
    assert HOST not in stack.site.bindings
    assert stack.parking.bindings[HOST]["sslState"] == "SniEnabled"
    assert stack.parking.bindings[HOST]["thumbprint"] == thumbprint
    assert [c.name for c in stack.fake.app_service.certificates.values()] == [f"{HOST}-{APP}"]
    assert stack.fake.dns.answers(HOST, "CNAME") == [f"{APP}.azurewebsites.net"]
    login = suspended.step("disable_database_login")
    assert "cannot disable it" in (login.message or "")
    preview = {c.step: c.action for c in stack.engine.preview_suspension("acme").changes}
    assert (preview["suspend_hostname"], preview["disable_database_login"]) == (
        "unchanged", "check")

    resumed = stack.engine.wait(stack.engine.resume("acme", requested_by="tests").id,
                                timeout=RUN_TIMEOUT)
    assert (resumed.status, resumed.error) == ("succeeded", None)
    assert HOST not in stack.parking.bindings
    assert stack.site.bindings[HOST]["sslState"] == "SniEnabled"
    assert stack.site.bindings[HOST]["thumbprint"] == thumbprint


def test_a_move_cut_between_delete_and_put_is_finished_by_the_next_attempt(
        stack: Stack) -> None:
    thumbprint = onboarded(stack)
    webhost = stack.engine.providers.webhost
    assert isinstance(webhost, AzureAppService)
    del stack.site.bindings[HOST]  # the worker died after the DELETE of the move
    outcome = webhost.ensure(HostnameBinding(HOST, "acme", suspended=True))
    assert isinstance(outcome, Ready)
    assert stack.parking.bindings[HOST]["thumbprint"] == thumbprint
    assert stack.parking.bindings[HOST]["sslState"] == "SniEnabled"


def test_offboarding_a_suspended_tenant_removes_the_binding_where_it_is(stack: Stack) -> None:
    onboarded(stack)
    stack.engine.wait(stack.engine.suspend("acme", reason="closing", requested_by="tests").id,
                      timeout=RUN_TIMEOUT)
    off = stack.engine.wait(stack.engine.offboard("acme", requested_by="tests").id,
                            timeout=RUN_TIMEOUT)
    assert (off.status, off.error) == ("succeeded", None)
    assert stack.parking.bindings == {}
    assert stack.site.bindings == {}
    assert stack.fake.app_service.certificates == {}


def test_without_a_suspended_page_app_the_suspension_fails_saying_what_to_deploy(
        tmp_path: Path) -> None:
    fake = FakeAzure()
    fake.app_service.add_site(FakeSite(APP, RESOURCE_GROUP, SUBSCRIPTION))
    fake.authorization.grant(RG_SCOPE, "Contributor")
    settings = azure_settings(tmp_path, fake, "azure-sql")
    catalog = Catalog.from_settings(settings)
    webhost = azure_providers(settings, catalog, fake).webhost
    with pytest.raises(PermanentProviderError, match="suspended_app_name is not set"):
        webhost.ensure(HostnameBinding(HOST, "acme", suspended=True))
    catalog.close()


def test_a_suspended_page_app_on_another_plan_is_refused(tmp_path: Path) -> None:
    fake = FakeAzure()
    fake.app_service.add_site(FakeSite(APP, RESOURCE_GROUP, SUBSCRIPTION))
    fake.app_service.add_site(FakeSite(PARKING, RESOURCE_GROUP, SUBSCRIPTION, plan="other"))
    fake.authorization.grant(RG_SCOPE, "Contributor")
    base = azure_settings(tmp_path, fake, "azure-sql")
    config = base.providers.webhost.azure_app_service.model_copy(
        update={"suspended_app_name": PARKING})
    catalog = Catalog.from_settings(base)
    webhost = AzureAppService(
        azure_providers(base, catalog, fake).webhost.connection,  # type: ignore[attr-defined]
        config)
    with pytest.raises(PermanentProviderError, match="a tenant's certificate serves only apps "
                                                     "of its plan"):
        webhost.ensure(HostnameBinding(HOST, "acme", suspended=True))
    catalog.close()
