"""The dashboard's side of the audit trail: its actions and sign-ins are recorded with the
signed-in person, refusals included; the audit page is for Audit.Read only."""

from __future__ import annotations

import pytest

from tenantops.catalog import AuditRecord

from .conftest import OPERATOR, READER, Site

pytestmark = pytest.mark.integration


def records(site: Site) -> list[AuditRecord]:
    return site.engine.catalog.audit.page(limit=500)[0]


def test_sign_in_and_actions_are_recorded_with_the_signed_in_person(site: Site) -> None:
    assert site.sign_in(OPERATOR).status_code == 303
    form = {"csrf_token": site.csrf("/onboard"), "slug": "dashed", "display_name": "Dashed",
            "custom_domain": "app.dashed.test", "plan": "standard",
            "admin_email": "admin@dashed.test"}
    onboarded = site.client.post("/onboard", data=form, follow_redirects=False)
    assert onboarded.status_code == 303

    onboard, sign_in = records(site)[:2]
    assert (sign_in.action, sign_in.channel, sign_in.outcome) == (
        "session.sign_in", "dashboard", "succeeded")
    assert sign_in.principal_name == "operator@contoso.test"
    assert (onboard.action, onboard.route, onboard.channel) == (
        "tenant.onboard", "/onboard", "dashboard")
    assert onboard.tenant == "dashed"
    assert onboard.run_id == onboarded.headers["location"].rsplit("/", 1)[1]
    assert onboard.principal_name == "operator@contoso.test"
    assert onboard.request_id == onboarded.headers["x-request-id"]
    assert "csrf" not in str(onboard).lower()


def test_a_refused_dashboard_action_is_recorded(reader_site: Site) -> None:
    run = reader_site.register("guarded")
    token = reader_site.csrf()
    refused = reader_site.client.post(f"/runs/{run.id}/cancel", data={"csrf_token": token})
    assert refused.status_code == 403
    [record] = [r for r in records(reader_site) if r.action == "run.cancel"]
    assert (record.outcome, record.status_code) == ("refused", 403)
    assert (record.run_id, record.tenant) == (run.id, "guarded")
    assert record.principal_name == "reader@contoso.test"


def test_the_audit_page_shows_the_trail_to_audit_read_only(site: Site) -> None:
    assert site.sign_in(READER).status_code == 303
    page = site.client.get("/")
    assert 'href="/audit"' not in page.text
    refused = site.client.get("/audit")
    assert refused.status_code == 403
    assert "Audit.Read" in refused.text

    assert site.sign_in(OPERATOR).status_code == 303
    assert 'href="/audit"' in site.client.get("/").text
    page = site.client.get("/audit", params={"principal": "operator@contoso.test"})
    assert page.status_code == 200
    assert "session.sign_in" in page.text
    assert "reader@contoso.test" not in page.text
    everything = site.client.get("/audit")
    assert "reader@contoso.test" in everything.text
