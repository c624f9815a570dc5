"""The tenant page's History section: who changed what, when, by which run."""

from __future__ import annotations

from tests.dashboard.conftest import Site


def test_tenant_page_shows_the_history_newest_first(operator_site: Site) -> None:
    run = operator_site.register("acme")
    catalog = operator_site.engine.catalog
    catalog.finish_run(run.id, "failed", error="dns: zone missing", failed_step=None)
    catalog.reopen_run(run.id, by="oncall@contoso.test")
    catalog.update_tenant_outputs("acme", {"hostname": "app.acme.test",
                                           "database_secret": "local:acme-database-password"})
    catalog.finish_run(run.id, "succeeded")

    html = operator_site.client.get("/tenants/acme").text
    section = html[html.index('id="history-heading"'):]
    for text in ["tenant onboarded", "onboarding retried by oncall@contoso.test",
                 "onboarding failed: dns: zone missing", "onboarding requested by",
                 "hostname: (none) -&gt; app.acme.test", f'href="/runs/{run.id}"']:
        assert text in section, text
    assert section.index("tenant onboarded") < section.index("onboarding retried") < (
        section.index("onboarding requested"))
    assert "acme-database-password" not in html


def test_a_tenant_without_events_says_so(reader_site: Site) -> None:
    catalog = reader_site.engine.catalog
    reader_site.register("bare")
    with catalog.database.session(write=True) as s:
        from tenantops.catalog.models import EventRow

        s.query(EventRow).delete()
    assert "No history yet." in reader_site.client.get("/tenants/bare").text
