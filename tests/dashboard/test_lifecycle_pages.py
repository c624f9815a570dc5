"""The dashboard's change, suspend and resume pages, without a browser: the change is
reviewed (its diff and plan) before it is made, a stale confirmation is shown again, the
suspension's reason is required, and readers are refused."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

from tenantops.catalog import Run, ServerSlot
from tests.dashboard.conftest import OPERATOR, Site, SiteFactory


def active(site: Site, slug: str = "acme") -> Run:
    run = site.register(slug)
    return site.engine.catalog.finish_run(run.id, "succeeded")


def form_fields(page: str) -> dict[str, str]:
    """The hidden fields a browser would send back (values unescaped, as browsers do)."""
    return {name: html.unescape(value) for name, value in
            re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', page)}


def test_a_change_is_reviewed_then_made(operator_site: Site) -> None:
    active(operator_site)
    page = operator_site.client.get("/tenants/acme/edit")
    assert page.status_code == 200
    assert 'value="app.acme.test"' in page.text
    token = operator_site.csrf("/tenants/acme/edit")
    review = operator_site.client.post("/tenants/acme/edit", data={
        "csrf_token": token, "display_name": "Acme Ltd", "custom_domain": "www.acme2.test",
        "plan": "premium", "admin_email": "admin@acme.test", "reason": "new brand"})
    assert review.status_code == 200
    assert "Confirm the change of" in review.text
    assert "www.acme2.test" in review.text
    assert "premium" in review.text
    assert "certificate:www.acme2.test" in review.text  # the plan: what the run will do
    assert operator_site.engine.catalog.get_tenant("acme").plan == "standard"  # nothing yet

    fields = form_fields(review.text)
    assert fields["confirm"] == "yes"
    made = operator_site.client.post("/tenants/acme/edit", data=fields,
                                     follow_redirects=False)
    assert made.status_code == 303
    run_id = made.headers["location"].rsplit("/", 1)[-1]
    run = operator_site.engine.get_run(run_id)
    assert run.kind == "update"
    assert run.options["changes"]["plan"] == {"from": "standard", "to": "premium"}
    assert run.options["reason"] == "new brand"
    assert run.requested_by == "Olive Operator (operator@contoso.test)"
    tenant = operator_site.engine.catalog.get_tenant("acme")
    assert (tenant.status, tenant.custom_domain) == ("updating", "www.acme2.test")


def test_a_stale_confirmation_is_shown_again_not_applied(operator_site: Site) -> None:
    active(operator_site)
    token = operator_site.csrf("/tenants/acme/edit")
    review = operator_site.client.post("/tenants/acme/edit", data={
        "csrf_token": token, "display_name": "Acme Ltd", "custom_domain": "app.acme.test",
        "plan": "free", "admin_email": "admin@acme.test"})
    fields = form_fields(review.text)
    # Someone else changes the tenant before this confirmation is sent.
    from tenantops.provisioning.run_requests import TenantChange

    other = operator_site.engine.update("acme", TenantChange(plan="premium"),
                                        requested_by="someone@contoso.test")
    assert other is not None
    operator_site.engine.catalog.finish_run(other.id, "succeeded")

    again = operator_site.client.post("/tenants/acme/edit", data=fields,
                                      follow_redirects=False)
    assert again.status_code == 409
    assert "changed since you reviewed this change; review it again" in again.text
    assert "premium" in again.text  # the diff as it is now
    assert operator_site.engine.catalog.get_tenant("acme").plan == "premium"
    assert [r.kind for r in operator_site.engine.catalog.list_runs("acme")] == [
        "onboard", "update"]


def test_an_invalid_change_is_shown_next_to_its_field(operator_site: Site) -> None:
    active(operator_site)
    token = operator_site.csrf("/tenants/acme/edit")
    page = operator_site.client.post("/tenants/acme/edit", data={
        "csrf_token": token, "display_name": "Acme Ltd", "custom_domain": "app.acme.test",
        "plan": "standard", "admin_email": "not-an-email"})
    assert page.status_code == 422
    assert 'id="admin_email-error"' in page.text
    nothing = operator_site.client.post("/tenants/acme/edit", data={
        "csrf_token": token, "display_name": "Acme Ltd", "custom_domain": "app.acme.test",
        "plan": "standard", "admin_email": "admin@acme.test"})
    assert "Nothing to change" in nothing.text


def test_suspend_needs_a_reason_and_resume_follows(operator_site: Site) -> None:
    active(operator_site)
    page = operator_site.client.get("/tenants/acme/suspend")
    assert page.status_code == 200
    assert "organization:acme" in page.text  # the plan: what will change
    assert "Its users lose access until it is resumed" in page.text
    token = operator_site.csrf("/tenants/acme/suspend")
    blank = operator_site.client.post("/tenants/acme/suspend", data={"csrf_token": token,
                                                                     "reason": " "})
    assert blank.status_code == 422
    assert "Reason is required" in blank.text
    made = operator_site.client.post("/tenants/acme/suspend", data={
        "csrf_token": token, "reason": "invoice unpaid"}, follow_redirects=False)
    assert made.status_code == 303
    run = operator_site.engine.get_run(made.headers["location"].rsplit("/", 1)[-1])
    assert (run.kind, run.options["reason"]) == ("suspend", "invoice unpaid")
    operator_site.engine.catalog.finish_run(run.id, "succeeded")
    tenant_page = operator_site.client.get("/tenants/acme")
    assert "invoice unpaid" in tenant_page.text
    assert 'href="/tenants/acme/resume"' in tenant_page.text
    resumed = operator_site.client.post("/tenants/acme/resume", data={"csrf_token": token},
                                        follow_redirects=False)
    assert resumed.status_code == 303
    busy = operator_site.client.post("/tenants/acme/suspend", data={
        "csrf_token": token, "reason": "again"})
    assert busy.status_code == 409
    assert "Follow the run in progress" in busy.text


@pytest.mark.parametrize("path", ["/tenants/acme/edit", "/tenants/acme/suspend",
                                  "/tenants/acme/resume", "/tenants/acme/reconcile",
                                  "/tenants/acme/move"])
def test_a_reader_is_refused_the_change_pages_with_the_role_named(
        reader_site: Site, path: str) -> None:
    active(reader_site)
    page = reader_site.client.get(path)
    assert page.status_code == 403
    assert "Tenants.Write" in page.text
    token = reader_site.csrf("/")
    posted = reader_site.client.post(path, data={"csrf_token": token, "reason": "x"})
    assert posted.status_code == 403
    assert reader_site.engine.catalog.get_tenant("acme").status == "active"


def test_drift_is_shown_and_the_reconcile_plan_comes_before_the_run(operator_site: Site) -> None:
    active(operator_site)
    tenant_page = operator_site.client.get("/tenants/acme")
    assert "Never checked." in tenant_page.text
    assert 'href="/tenants/acme/reconcile"' in tenant_page.text
    operator_site.engine.catalog.drift.record(
        "acme", state="missing", checked_by="tests", resources=[{
            "step": "create_organization", "provider": "organization:local",
            "resource": "organization:acme", "state": "missing", "action": "create",
            "differences": []}, {
            "step": "create_database", "provider": "database:sqlite",
            "resource": "database:tenant_acme", "state": "drifted", "action": "update",
            "differences": [{"field": "login_enabled", "recorded": True, "found": False}]}])
    tenant_page = operator_site.client.get("/tenants/acme")
    assert "<strong>missing</strong>" in tenant_page.text
    assert "organization:acme" in tenant_page.text
    assert "login_enabled: recorded True, found False" in tenant_page.text

    page = operator_site.client.get("/tenants/acme/reconcile")
    assert page.status_code == 200
    assert "nothing is deleted" in page.text
    # The site's tenant was never made on the providers: everything is to be created.
    assert '<span class="change change-create">create</span> <code class="breakable">' \
        'organization:acme</code>' in page.text
    assert "change-delete" not in page.text
    assert [r.kind for r in operator_site.engine.catalog.list_runs("acme")] == ["onboard"]
    token = operator_site.csrf("/tenants/acme/reconcile")
    made = operator_site.client.post("/tenants/acme/reconcile", data={
        "csrf_token": token, "reason": "organization deleted by hand"}, follow_redirects=False)
    assert made.status_code == 303
    run = operator_site.engine.get_run(made.headers["location"].rsplit("/", 1)[-1])
    assert (run.kind, run.options["reason"]) == ("reconcile", "organization deleted by hand")
    assert operator_site.engine.catalog.get_tenant("acme").status == "reconciling"
    again = operator_site.client.post("/tenants/acme/suspend", data={
        "csrf_token": token, "reason": "busy"})
    assert again.status_code == 409


def test_the_drift_page_lists_last_checks_filtered_by_state(reader_site: Site) -> None:
    active(reader_site)
    active(reader_site, "bravo")
    active(reader_site, "charlie")
    reader_site.engine.catalog.drift.record("acme", state="missing", checked_by="tests",
                                            resources=[{"resource": "dns:CNAME:app.acme.test",
                                                        "state": "missing"}])
    reader_site.engine.catalog.drift.record("bravo", state="in_sync", checked_by="tests",
                                            resources=[])

    page = reader_site.client.get("/drift")
    assert page.status_code == 200
    overview = reader_site.client.get("/").text
    assert 'href="/drift"' in overview  # in the main navigation
    assert "Drifted tenants" in overview  # the overview lists the tenants off track
    assert "missing: dns:CNAME:app.acme.test" in overview
    assert "1 missing" in page.text
    assert "1 in sync" in page.text
    assert "1 never checked" in page.text  # charlie
    assert "<code>dns:CNAME:app.acme.test</code> missing" in page.text
    missing = reader_site.client.get("/drift", params={"state": "missing"})
    assert 'href="/tenants/acme"' in missing.text
    assert 'href="/tenants/bravo"' not in missing.text


def test_a_move_is_previewed_then_made_and_a_refused_one_says_why(
        make_site: SiteFactory, tmp_path: Path) -> None:
    site = make_site(providers={"database": {"servers": [
        {"name": "one", "directory": str(tmp_path / "one")},
        {"name": "two", "directory": str(tmp_path / "two")}]}})
    assert site.sign_in(OPERATOR).status_code == 303
    run = active(site)
    site.engine.catalog.placements.place(
        "acme", state="current", run_id=run.id, candidates=[ServerSlot("one")],
        pool="default", mode="database", database="tenant_acme", schema=None, details={})
    tenant_page = site.client.get("/tenants/acme").text
    assert 'href="/tenants/acme/move"' in tenant_page

    page = site.client.get("/tenants/acme/move?server=two")
    assert page.status_code == 200
    assert "current: server one, tenant_acme" in page.text
    assert '<option value="two" selected>two: 0</option>' in page.text
    assert "copy_data" not in page.text
    assert "database:two/tenant_acme" in page.text

    token = site.csrf("/tenants/acme/move")
    refused = site.client.post("/tenants/acme/move", data={
        "csrf_token": token, "server": "one"})
    assert refused.status_code == 409
    assert "already is on server &#39;one&#39; in database mode" in refused.text
    made = site.client.post("/tenants/acme/move", data={
        "csrf_token": token, "server": "two", "reason": "rebalance"},
        follow_redirects=False)
    assert made.status_code == 303
    moved = site.engine.get_run(made.headers["location"].rsplit("/", 1)[-1])
    assert moved.kind == "update"
    assert moved.options["move"]["target"]["server"] == "two"
    assert moved.options["reason"] == "rebalance"
    assert moved.steps[0].name == "place_target"
