"""`RunReports`, the reads behind the dashboard's overview and runs page, on SQLite and
PostgreSQL: filters, where active runs stand, recent failures, and the trends' figures."""

from __future__ import annotations

import datetime as dt

from tenantops.catalog import Catalog, RunFilter, StepTemplate
from tests.catalog.test_repository import Spec

STEPS = [StepTemplate("register", "catalog:sqlite", "ensure"),
         StepTemplate("create_database", "database:sqlite", "ensure"),
         StepTemplate("activate", "catalog:sqlite", "ensure")]
NOW = dt.datetime.now(dt.timezone.utc)


def onboard(catalog: Catalog, slug: str, name: str = "") -> str:
    spec = Spec(slug=slug, display_name=name or slug.title(),
                custom_domain=f"portal.{slug}.test", admin_email=f"admin@{slug}.test")
    return catalog.open_onboarding(spec, requested_by="ops", steps=STEPS).run.id


def fail_at_database(catalog: Catalog, run_id: str) -> None:
    catalog.step_started(run_id, "register")
    catalog.step_succeeded(run_id, "register", {}, {})
    catalog.step_started(run_id, "create_database")
    catalog.step_failed(run_id, "create_database", "quota exceeded")
    catalog.finish_run(run_id, "failed", error="quota exceeded",
                       failed_step="create_database")


def test_runs_are_filtered_by_status_step_and_tenant_newest_first(catalog: Catalog) -> None:
    failed = onboard(catalog, "northwind", "Northwind Traders")
    fail_at_database(catalog, failed)
    waiting = onboard(catalog, "contoso", "Contoso Retail")
    catalog.step_started(waiting, "register")
    catalog.step_waiting(waiting, "register", status="waiting", message="DNS not there yet")
    pending = onboard(catalog, "fabrikam")
    reports = catalog.run_reports

    everything, total = reports.page(RunFilter())
    assert total == 3
    assert [r.id for r in everything] == [pending, waiting, failed]
    assert [r.id for r in reports.page(RunFilter(status="failed"))[0]] == [failed]
    assert [r.id for r in reports.page(RunFilter(step="create_database"))[0]] == [failed]
    assert [r.id for r in reports.page(RunFilter(step="register"))[0]] == [waiting]
    assert [r.id for r in reports.page(RunFilter(tenant="RETAIL"))[0]] == [waiting]
    assert [r.id for r in reports.page(RunFilter(tenant="nw"))[0]] == []
    assert [r.id for r in reports.page(RunFilter(tenant="fabrikam"))[0]] == [pending]
    assert reports.page(RunFilter(kind="offboard"))[1] == 0
    assert reports.page(RunFilter(since=NOW + dt.timedelta(days=1)))[1] == 0
    assert reports.page(RunFilter(until=NOW - dt.timedelta(days=1)))[1] == 0
    page, total = reports.page(RunFilter(), limit=2, offset=2)
    assert ([r.id for r in page], total) == ([failed], 3)
    assert reports.step_names() == ["create_database", "register"]


def test_active_runs_say_which_step_they_stand_at_and_since_when(catalog: Catalog) -> None:
    waiting = onboard(catalog, "contoso")
    catalog.step_started(waiting, "register")
    catalog.step_waiting(waiting, "register", status="waiting", message="DNS not there yet")
    pending = onboard(catalog, "fabrikam")

    active = {run.id: run for run in catalog.run_reports.active()}
    assert set(active) == {waiting, pending}
    step = active[waiting].step
    assert step is not None
    assert (step.name, step.status, step.message) == ("register", "waiting", "DNS not there yet")
    assert step.since is not None
    assert abs((step.since - NOW).total_seconds()) < 600
    assert active[pending].step is None
    before = active[waiting].fingerprint()
    catalog.step_waiting(waiting, "register", status="waiting", message="still not there")
    after = {run.id: run for run in catalog.run_reports.active()}[waiting].fingerprint()
    assert before != after, "a new message is a change the dashboard must send"


def test_failures_and_trend_figures_count_what_happened(catalog: Catalog) -> None:
    failed = onboard(catalog, "northwind")
    fail_at_database(catalog, failed)
    done = onboard(catalog, "contoso")
    for name in ("register", "create_database", "activate"):
        catalog.step_started(done, name)
        catalog.step_succeeded(done, name, {}, {})
    catalog.finish_run(done, "succeeded")
    reports = catalog.run_reports
    since = NOW - dt.timedelta(days=1)

    recent, count = reports.failed_since(since)
    assert ([r.id for r in recent], count) == ([failed], 1)
    assert reports.failed_since(NOW + dt.timedelta(hours=1))[1] == 0
    requested = reports.requested_since(since)
    assert sorted((kind, status) for _, kind, status in requested) == [
        ("onboard", "failed"), ("onboard", "succeeded")]
    outcomes = {(o.step, o.outcome): o.count for o in reports.step_outcomes(since)}
    assert outcomes[("create_database", "failed")] == 1
    assert outcomes[("create_database", "succeeded")] == 1
    assert outcomes[("register", "succeeded")] == 2
    spans = {(s.step, s.provider) for s in reports.step_spans(since)}
    assert ("activate", "catalog:sqlite") in spans
    assert all(s.seconds >= 0 for s in reports.step_spans(since))


def test_pages_past_the_middle_read_from_the_oldest_end_in_the_same_order(
    catalog: Catalog,
) -> None:
    ids = [onboard(catalog, f"tenant-{i}") for i in range(7)]
    newest_first = list(reversed(ids))
    reports = catalog.run_reports
    for offset in range(8):
        page, total = reports.page(RunFilter(), limit=3, offset=offset)
        assert total == 7
        assert [r.id for r in page] == newest_first[offset:offset + 3], offset
