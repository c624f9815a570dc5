"""The read pages: tenants searched, filtered and paged on the server; a tenant's resources;
a run's timeline; the headers every page sends."""

from __future__ import annotations

import datetime as dt

from tenantops.catalog import ServerSlot
from tenantops.dashboard._present import format_duration, relative_days
from tests.dashboard.conftest import Site


def test_tenants_are_paged_newest_first_with_search_and_status_kept(
    operator_site: Site,
) -> None:
    for i in range(30):
        operator_site.register(f"shop-{i:02d}")
    operator_site.register("bakery")
    operator_site.engine.catalog.set_tenant_status("shop-03", "active")

    first = operator_site.client.get("/tenants").text
    assert "Showing 1 to 25 of 31 tenants." in first
    assert first.index("bakery") < first.index("shop-29") < first.index("shop-06")
    assert "shop-05" not in first
    assert 'href="/tenants?page=2" rel="next"' in first
    second = operator_site.client.get("/tenants?page=2").text
    assert "Showing 26 to 31 of 31 tenants." in second
    assert "shop-00" in second
    assert "Page 2 of 2" in second

    search = operator_site.client.get("/tenants?q=SHOP-1&status=").text
    assert "Showing 1 to 10 of 10 tenants matching “SHOP-1”." in search
    active = operator_site.client.get("/tenants?q=shop&status=active").text
    assert "Showing 1 to 1 of 1 tenant matching “shop” with status active." in active
    assert '<option value="active" selected>' in active
    assert "No tenant matches these filters." in operator_site.client.get("/tenants?q=zzz").text


def test_odd_query_values_fall_back_instead_of_failing(operator_site: Site) -> None:
    for path in ("/", "/tenants", "/runs", "/events", "/audit"):
        for query in ("page=-3", "page=abc", "page=99999999999", "status=evil",
                      "q=" + "x" * 500, "kind=evil", "tenant=%00", "since=2026-13-45",
                      "before=-1", "type=evil", "step=" + "y" * 300):
            response = operator_site.client.get(f"{path}?{query}")
            assert response.status_code == 200, (path, query)


def test_tenant_page_shows_resources_and_runs(operator_site: Site) -> None:
    run = operator_site.register("acme")
    expires = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=10, hours=1)
    operator_site.engine.catalog.update_tenant_outputs("acme", {
        "dns_records": {"CNAME app.acme.test": "edge.tenantops.localhost",
                        "TXT asuid.app.acme.test": "ABC123"},
        "hostname": "app.acme.test", "certificate_thumbprint": "F00D",
        "certificate_expires_at": expires, "database_name": "tenant_acme",
        "database_login": "acme_app", "database_secret": "local:acme-database-password",
        "organization_id": "org-42"})

    html = operator_site.client.get("/tenants/acme").text
    for text in ["edge.tenantops.localhost", "asuid.app.acme.test", "thumbprint F00D",
                 '<span class="warn">in 10 days</span>', "tenant_acme", "(login acme_app)",
                 "org-42", f'href="/runs/{run.id}"', "Onboarding is pending"]:
        assert text in html, text
    assert "acme-database-password" not in html, "a secret's name is not shown either"
    assert "Placed on" not in html, "no placement recorded yet"

    operator_site.engine.catalog.placements.place(
        "acme", state="current", run_id=run.id, candidates=[ServerSlot("pg-2")],
        pool="default", mode="schema", database="tenantops_shared", schema="tenant_acme",
        details={})
    html = operator_site.client.get("/tenants/acme").text
    assert ("<dt>Placed on</dt><dd class=\"breakable\">server pg-2: tenantops_shared, schema "
            "tenant_acme <span class=\"muted\">(schema mode)</span>") in html


def test_run_page_lists_every_step_and_follows_its_event_stream(operator_site: Site) -> None:
    run = operator_site.register("acme")
    catalog = operator_site.engine.catalog
    catalog.step_started(run.id, "register_tenant")
    catalog.step_succeeded(run.id, "register_tenant", {}, {})
    catalog.step_started(run.id, "store_database_secret")

    page = operator_site.client.get(f"/runs/{run.id}").text
    assert f'data-stream="/live/runs/{run.id}?last=' in page
    assert 'aria-live="polite"' in page
    assert page.count('<li class="step step-') == 12
    assert 'data-active="true"' in page
    assert ("Onboarding acme is running: 1 of 12 steps done; now store_database_secret, "
            "running.") in page
    assert '<li class="step step-running" id="step-store_database_secret">' in page


def test_every_page_sends_a_strict_content_security_policy(operator_site: Site) -> None:
    response = operator_site.client.get("/")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "same-origin"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "<script" not in response.text.replace(
        '<script src="/static/dashboard.js?v=', ""), "no inline script"
    static = operator_site.client.get("/static/dashboard.js")
    assert static.status_code == 200
    assert "new EventSource(url)" in static.text


def test_api_routes_are_unchanged_by_the_dashboard(operator_site: Site) -> None:
    response = operator_site.client.get("/api/tenants")
    assert response.status_code == 401, "a dashboard session is not an API token"
    assert response.headers["content-type"] == "application/json"


def test_durations_and_days_read_naturally() -> None:
    assert [format_duration(s) for s in (None, 0.012, 3.26, 75, 7300)] == [
        "", "12 ms", "3.3 s", "1 min 15 s", "2 h 1 min"]
    now = dt.datetime(2026, 11, 30, tzinfo=dt.timezone.utc)
    assert relative_days(now + dt.timedelta(days=90), now) == "in 90 days"
    assert relative_days(now - dt.timedelta(days=2), now) == "2 days ago"


def test_run_page_shows_what_each_step_asked_for_and_produced_and_its_attempts(
    operator_site: Site,
) -> None:
    run = operator_site.register("acme", custom_domain="portal.acme.test")
    catalog = operator_site.engine.catalog
    cname = {"name": "portal.acme.test", "type": "CNAME", "value": "tenants.example.net",
             "password": "do-not-show"}
    catalog.step_started(run.id, "create_cname_record", resolved=cname)
    catalog.step_waiting(run.id, "create_cname_record", status="retrying",
                         message="dns: SERVFAIL from 10.0.0.53")
    catalog.step_started(run.id, "create_cname_record", resolved=cname)
    catalog.step_succeeded(run.id, "create_cname_record", {"fqdn": "portal.acme.test."}, {})

    live = operator_site.client.get(f"/runs/{run.id}").text
    step = live[live.index('id="step-create_cname_record"'):]
    step = step[:step.index("</li>")]

    assert "<code>portal.acme.test</code>" in step
    assert "<code>tenants.example.net</code>" in step
    assert "&lt;custom domain&gt;" not in step
    assert "<code>portal.acme.test.</code>" in step  # its output
    assert "do-not-show" not in live
    assert "2 attempts" in step
    pending = live[live.index('id="step-create_verification_record"'):]
    assert "TXT asuid.portal.acme.test = the web host" in pending[:pending.index("</li>")]
    assert "Transient fault, tried again" in step
    assert "dns: SERVFAIL from 10.0.0.53" in step
