"""The fleet pages: fleet runs with progress and why one stopped, one fleet run's tenants in
order with their outcome, the certificates expiring soon; Tenants.Read needed."""

from __future__ import annotations

import datetime as dt

from tenantops.catalog import NewFleet, NewTarget, TargetOutcome
from tests.dashboard.conftest import Site


def test_fleet_pages_show_progress_stop_reason_targets_and_expiring_certificates(
        operator_site: Site) -> None:
    catalog = operator_site.engine.catalog
    for slug in ("alpha", "bravo", "charlie"):
        operator_site.register(slug)
    soon = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=12, hours=1)
    catalog.update_tenant_outputs("bravo", {"certificate_thumbprint": "BEEF",
                                            "certificate_expires_at": soon})
    catalog.update_tenant_outputs("charlie", {
        "certificate_thumbprint": "CAFE",
        "certificate_expires_at": soon + dt.timedelta(days=300)})
    fleet = catalog.fleets.create(NewFleet(
        operation="migrate", selection={"all": True}, options={"revision": "0002_orders"},
        canary=1, concurrency=2, batch_size=None, max_failures=0, max_failure_percent=None,
        requested_by="Automation: release"), [
        NewTarget("alpha"), NewTarget("bravo"), NewTarget("charlie", skip="no database")])
    catalog.fleets.record(fleet.id, [TargetOutcome(
        "alpha", "", "failed", error="revision 0002_orders failed: <b>duplicate</b>")])
    catalog.fleets.stop(fleet.id, "canary tenant alpha failed; fix the cause, then resume")

    listing = operator_site.client.get("/fleet")
    assert listing.status_code == 200
    html = listing.text
    assert f'href="/fleet/{fleet.id}"' in html
    assert "canary tenant alpha failed" in html
    assert "2 of 3" in html  # alpha failed and charlie skipped are done; bravo remains
    assert "Certificates expiring within 30 days" in html
    assert 'href="/tenants/bravo"' in html
    assert "BEEF" in html
    assert "in 12 days" in html
    assert "CAFE" not in html

    detail = operator_site.client.get(f"/fleet/{fleet.id}").text
    assert detail.index("alpha") < detail.index("bravo") < detail.index("charlie")
    assert "canary" in detail
    assert "&lt;b&gt;duplicate&lt;/b&gt;" in detail  # escaped, not markup
    assert "no database" in detail
    assert "<code>revision=0002_orders</code>" in detail
    assert operator_site.client.get("/fleet/nope").status_code == 404


def test_fleet_pages_send_a_visitor_who_is_not_signed_in_to_sign_in(site: Site) -> None:
    page = site.client.get("/fleet/abc", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/auth/sign-in?next=%2Ffleet%2Fabc"
