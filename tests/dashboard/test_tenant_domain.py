"""The tenant page of a customer-managed domain: while its onboarding waits, the records the
customer must publish, and the last check's findings; nothing once they were seen."""

from __future__ import annotations

from tenantops.catalog import Run
from tenantops.provisioning import TenantSpec
from tenantops.provisioning.domains import WAIT_STEP
from tenantops.provisioning.plan import onboarding_options, plan_for
from tests.dashboard.conftest import OPERATOR, Site, SiteFactory


def register(site: Site, spec: TenantSpec) -> Run:
    """The onboarding the engine would open (its options included), without executing it."""
    engine = site.engine
    options = onboarding_options(spec, engine.settings, engine.providers)
    return engine.catalog.open_onboarding(
        spec, requested_by="tests", options=options,
        steps=plan_for("onboard", options).templates(engine.providers)).run


def test_tenant_page_lists_the_records_a_waiting_customer_must_publish(
        make_site: SiteFactory) -> None:
    site = make_site(providers={"dns": {"zones": ["tenants.test"]}})
    assert site.sign_in(OPERATOR).status_code == 303
    run = register(site, TenantSpec(
        slug="globex", display_name="Globex", custom_domain="portal.globex-corp.test",
        admin_email="it@globex-corp.test"))
    records = run.options["customer_records"]
    site.engine.catalog.step_started(run.id, WAIT_STEP)
    site.engine.catalog.step_waiting(
        run.id, WAIT_STEP, status="waiting",
        message="waiting for the customer to publish in the DNS of portal.globex-corp.test: …")

    html = site.client.get("/tenants/globex").text
    assert "Waiting for the customer's DNS records" in html
    for record in records:
        assert f"<code>{record['name']}</code>" in html, record
        assert f"<code>{record['value']}</code>" in html, record
    assert "Last check: waiting for the customer to publish" in html

    site.engine.catalog.step_succeeded(run.id, WAIT_STEP, {}, {})
    assert "Waiting for the customer" not in site.client.get("/tenants/globex").text


def test_tenant_page_of_a_platform_domain_asks_the_customer_for_nothing(
        make_site: SiteFactory) -> None:
    site = make_site(providers={"dns": {"zones": ["tenants.test"]}})
    assert site.sign_in(OPERATOR).status_code == 303
    register(site, TenantSpec(
        slug="initech", display_name="Initech", custom_domain="app.initech.tenants.test",
        admin_email="it@initech.test"))
    assert "Waiting for the customer" not in site.client.get("/tenants/initech").text
