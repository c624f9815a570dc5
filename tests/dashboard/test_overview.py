"""The overview (the landing page) and the runs page: what needs someone now, where each run
stands and for how long, the trends as server-rendered SVG with text equivalents."""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import update

from tenantops.catalog import Catalog
from tenantops.catalog.models import RunRow
from tenantops.dashboard._app import Dashboard
from tenantops.dashboard._overview import compute_trends, percentile
from tenantops.dashboard._present import trace_id_of
from tests.dashboard.conftest import OPERATOR, Site, SiteFactory

QUOTA = "quota exceeded: the subscription allows 10 databases"


def fail(catalog: Catalog, run_id: str, step: str = "create_database") -> None:
    catalog.step_started(run_id, "register_tenant")
    catalog.step_succeeded(run_id, "register_tenant", {}, {})
    catalog.step_started(run_id, step)
    catalog.step_failed(run_id, step, QUOTA)
    catalog.finish_run(run_id, "failed", error=QUOTA, failed_step=step)


def dashboard_of(site: Site) -> Dashboard:
    dashboard: Dashboard = site.app.state.dashboard
    return dashboard


def test_overview_puts_failed_and_waiting_runs_first_with_links(operator_site: Site) -> None:
    catalog = operator_site.engine.catalog
    failed = operator_site.register("northwind")
    fail(catalog, failed.id)
    certificate = operator_site.register("contoso")
    catalog.step_started(certificate.id, "issue_certificate")
    catalog.step_waiting(certificate.id, "issue_certificate", status="waiting",
                         message="order pending at the CA")
    retrying = operator_site.register("fabrikam")
    catalog.step_started(retrying.id, "create_database")
    catalog.step_waiting(retrying.id, "create_database", status="retrying",
                         message="429 Too Many Requests, Retry-After 30")
    queued = operator_site.register("tailspin")
    catalog.update_tenant_outputs("tailspin", {
        "certificate_thumbprint": "AB", "certificate_expires_at":
        dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=5, hours=1)})

    html = operator_site.client.get("/").text
    assert "<title>Overview · tenantops</title>" in html
    failed_part = html[html.index('id="failed-heading"'):html.index('id="waiting-heading"')]
    assert 'Failed in the last 24 h <span class="count">1</span>' in failed_part
    assert f'<a href="/runs/{failed.id}">Onboarding northwind</a>' in failed_part
    assert "failed at create_database" in failed_part
    assert QUOTA in failed_part
    assert 'href="/runs?status=failed"' in failed_part
    waiting = html[html.index('id="waiting-heading"'):html.index('id="running-heading"')]
    assert 'On a certificate <span class="count">1</span>' in waiting
    assert "order pending at the CA" in waiting
    assert "On a retry after a transient fault" in waiting
    assert "Retry-After 30" in waiting
    assert f'href="/runs/{queued.id}"' not in waiting, "queued runs are in progress, not waiting"
    running = html[html.index('id="running-heading"'):html.index('id="tenants-heading"')]
    assert f'href="/runs/{queued.id}"' in running
    assert "waiting for a worker" in running
    tenants = html[html.index('id="tenants-heading"'):html.index('id="certificates-heading"')]
    assert 'Tenants <span class="count">4</span>' in tenants
    assert 'href="/tenants?status=failed"' in tenants
    certificates = html[html.index('id="certificates-heading"'):]
    assert '<a href="/tenants/tailspin">tailspin</a>: <time' in certificates
    assert "in 5 days" in certificates


def test_trends_are_svg_with_a_description_and_a_table(operator_site: Site) -> None:
    catalog = operator_site.engine.catalog
    fail(catalog, operator_site.register("northwind").id)
    done = operator_site.register("contoso")
    catalog.step_started(done.id, "register_tenant")
    catalog.step_succeeded(done.id, "register_tenant", {}, {})

    before = operator_site.client.get("/").text
    assert "The trends are being computed" in before, "a page never waits for them"
    dashboard_of(operator_site).trends.refresh()
    html = operator_site.client.get("/").text
    assert '<svg class="day-chart" viewBox="0 0 640 210" role="img"' in html
    assert re.search(r'<desc id="day-chart-desc">2 onboardings and 0 offboardings requested '
                     r"in the last 30 days; the busiest day was \d\d \w{3} with 2 onboardings",
                     html)
    assert html.count('class="bar-onboard"') == 30
    assert "<summary>The chart as a table</summary>" in html
    failures = html[html.index('id="failure-heading"'):html.index('id="duration-heading"')]
    assert '<a href="/runs?status=failed&amp;step=create_database">' in failures
    assert "1 of 1" in failures
    assert "100.0 %" in failures
    durations = html[html.index('id="duration-heading"'):]
    assert "<code>register_tenant</code>" in durations


def test_percentiles_and_waiting_reasons() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.95) == 4.0
    assert percentile([7.0], 0.95) == 7.0
    assert trace_id_of("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01") == \
        "4bf92f3577b34da6a3ce929d0e0e4736"
    assert trace_id_of("00-" + "0" * 32 + "-00f067aa0ba902b7-01") is None
    assert trace_id_of("garbage") is None


def test_trends_count_runs_per_day_and_failure_rates(operator_site: Site) -> None:
    catalog = operator_site.engine.catalog
    fail(catalog, operator_site.register("northwind").id)
    fail(catalog, operator_site.register("contoso").id, step="create_cname_record")
    trends = compute_trends(catalog, dt.datetime.now(dt.timezone.utc))
    assert len(trends.days) == 30
    assert (trends.days[-1].onboarded, trends.days[-1].failed) == (2, 2)
    rates = {f.step: (f.failed, f.ended) for f in trends.failures}
    assert rates["create_database"] == (1, 1)
    assert rates["register_tenant"] == (0, 2)
    assert trends.failures[0].rate == 1.0


def test_runs_page_filters_and_says_where_each_run_stands(operator_site: Site) -> None:
    catalog = operator_site.engine.catalog
    failed = operator_site.register("northwind")
    fail(catalog, failed.id)
    waiting = operator_site.register("contoso")
    catalog.step_started(waiting.id, "issue_certificate")
    catalog.step_waiting(waiting.id, "issue_certificate", status="waiting", message="pending")

    html = operator_site.client.get("/runs").text
    assert "Showing 1 to 2 of 2 runs, newest first." in html
    assert html.index(f'href="/runs/{waiting.id}"') < html.index(f'href="/runs/{failed.id}"')
    assert "issue_certificate: waiting" in html
    assert '<time class="elapsed" datetime="' in html, "an active run counts its time"
    only_failed = operator_site.client.get("/runs?status=failed").text
    assert "Showing 1 to 1 of 1 run matching these filters" in only_failed
    assert "failed at create_database" in only_failed
    assert f'href="/runs/{waiting.id}"' not in only_failed
    by_step = operator_site.client.get("/runs?step=issue_certificate").text
    assert f'href="/runs/{waiting.id}"' in by_step
    assert f'href="/runs/{failed.id}"' not in by_step
    by_tenant = operator_site.client.get("/runs?tenant=north").text
    assert f'href="/runs/{failed.id}"' in by_tenant
    assert f'href="/runs/{waiting.id}"' not in by_tenant
    future = operator_site.client.get("/runs?since=2999-01-01").text
    assert "No run matches these filters." in future
    bad = operator_site.client.get("/runs?since=yesterday").text
    assert "From must be a date as YYYY-MM-DD; &#39;yesterday&#39; is not one" in bad
    assert 'aria-invalid="true"' in bad


def test_run_page_shows_attempts_as_bars(operator_site: Site) -> None:
    run = operator_site.register("acme")
    catalog = operator_site.engine.catalog
    catalog.step_started(run.id, "register_tenant")
    catalog.step_waiting(run.id, "register_tenant", status="retrying", message="busy")
    catalog.step_started(run.id, "register_tenant")
    html = operator_site.client.get(f"/runs/{run.id}").text
    step = html[html.index('id="step-register_tenant"'):]
    step = step[:step.index("</li>")]
    assert 'role="img" aria-label="When the attempts of register_tenant ran within the run"' \
        in step
    assert step.count("<rect ") == 2
    assert "register_tenant attempt 1: Transient fault, tried again" in step


def test_run_page_lists_retries_with_who_asked_and_links_the_trace(
    make_site: SiteFactory,
) -> None:
    site = make_site(dashboard={"trace_url": "http://jaeger.test:16686/trace/{trace_id}"})
    assert site.sign_in(OPERATOR).status_code == 303
    catalog = site.engine.catalog
    run = site.register("acme")
    fail(catalog, run.id)
    catalog.reopen_run(run.id, by="Olive Operator (operator@contoso.test)")
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    with catalog.engine.begin() as connection:
        connection.execute(update(RunRow).where(RunRow.id == run.id).values(
            trace_context=f"00-{trace}-00f067aa0ba902b7-01"))

    html = site.client.get(f"/runs/{run.id}").text
    history = html[html.index('id="retries-heading"'):]
    assert "onboarding retried by Olive Operator (operator@contoso.test) from step " \
        "create_database" in history
    assert history.index("failed") < history.index("retried"), "oldest first"
    assert f'<a href="http://jaeger.test:16686/trace/{trace}" id="trace-link">{trace}</a>' in html


def test_overview_shows_each_rate_budgets_queue_and_the_runs_waiting_for_it(
        make_site: SiteFactory) -> None:
    """Issue 19: "the dashboard shows the queue" of a rate budget (engine.budgets)."""
    site = make_site(engine={"budgets": {"keycloak": {
        "providers": ["organization"], "calls": 1, "per_seconds": 1.0}}})
    assert site.sign_in(OPERATOR).status_code == 303
    catalog = site.engine.catalog
    waits = [catalog.reserve_call("keycloak", interval=1.0) for _ in range(10)]
    assert waits[-1] > 8, "ten calls at one a second: the last waits about nine seconds"
    run = site.register("northwind")
    catalog.step_started(run.id, "create_organization")
    site.engine._show_budget_wait(run.id, "create_organization", "keycloak", waits[-1])

    html = site.client.get("/").text
    budgets = html[html.index('id="budgets-heading"'):]
    row = re.search(r"<th scope=\"row\">keycloak</th><td>1 calls per 1 s</td>"
                    r"<td>(\d+)</td><td>in ([\d.]+) s</td>", budgets)
    assert row, budgets[:600]
    assert 7 <= int(row.group(1)) <= 9, "the calls reserved and not yet due"
    waiting = html[html.index('id="waiting-heading"'):html.index('id="running-heading"')]
    assert "On a rate budget&#39;s next free slot" in waiting
    assert f'href="/runs/{run.id}"' in waiting


def test_overview_has_no_budget_panel_when_no_budget_is_configured(operator_site: Site) -> None:
    assert 'id="budgets-heading"' not in operator_site.client.get("/").text
