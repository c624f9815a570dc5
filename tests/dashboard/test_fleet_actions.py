"""Fleet actions without a browser: starting a fleet run (a dry run first, then the
confirmation), pausing, resuming and cancelling one; each refused without the session's CSRF
token or without Tenants.Write, and bad fields named with their value and rule."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tenantops.catalog import NewFleet, NewTarget
from tests.dashboard.conftest import OPERATOR, READER, Site, SiteFactory

pytestmark = pytest.mark.integration  # the session emulator's server


@pytest.fixture
def fleet_site(make_site: SiteFactory, tmp_path: Path) -> Site:
    """Signed in as the operator, with a migrations folder and three tenants (not started:
    the fleet runs created stay ``running`` until paused or cancelled)."""
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0001_users.sql").write_text("CREATE TABLE users (id INTEGER PRIMARY KEY);")
    site = make_site(migrations={"folder": folder})
    for slug in ("alpha", "bravo", "charlie"):
        site.register(slug, plan="premium" if slug == "bravo" else "standard")
    assert site.sign_in(OPERATOR).status_code == 303
    return site


def a_fleet(site: Site) -> str:
    return site.engine.catalog.fleets.create(NewFleet(
        operation="migrate", selection={"all": True}, options={"revision": "0001_users"},
        canary=1, concurrency=1, batch_size=None, max_failures=0, max_failure_percent=None,
        requested_by="tests"), [NewTarget("alpha"), NewTarget("bravo")]).id


START = {"operation": "migrate", "selection": "tenants", "tenants": "charlie, alpha",
         "canary": "1", "concurrency": "2", "max_failures": "0"}


def test_starting_a_fleet_run_shows_the_dry_run_then_starts_on_confirmation(
        fleet_site: Site) -> None:
    client = fleet_site.client
    assert 'href="/fleet/new"' in client.get("/fleet").text
    token = fleet_site.csrf("/fleet/new")

    preview = client.post("/fleet/new", data={**START, "csrf_token": token})
    assert preview.status_code == 200
    assert "Dry run: migrate on 2 tenants" in preview.text
    html = preview.text
    assert html.index('href="/tenants/charlie"') < html.index('href="/tenants/alpha"')
    assert "<code>revision=0001_users</code>" in html
    assert 'name="confirm" value="yes"' in html
    assert fleet_site.engine.catalog.fleets.page(limit=5)[1] == 0, "a dry run starts nothing"

    started = client.post("/fleet/new", data={**START, "csrf_token": token, "confirm": "yes"},
                          follow_redirects=False)
    assert started.status_code == 303
    fleets, total = fleet_site.engine.catalog.fleets.page(limit=5)
    assert total == 1
    fleet = fleets[0]
    assert started.headers["location"] == f"/fleet/{fleet.id}"
    assert (fleet.operation, fleet.canary, fleet.concurrency, fleet.max_failures) == (
        "migrate", 1, 2, 0)
    assert fleet.selection == {"tenants": ["charlie", "alpha"]}
    assert fleet.requested_by == "Olive Operator (operator@contoso.test)"
    targets = fleet_site.engine.catalog.fleets.targets(fleet.id)
    assert [t.tenant_slug for t in targets] == ["charlie", "alpha"]


def test_a_plan_selection_and_blank_numbers_take_the_fleet_settings(fleet_site: Site) -> None:
    started = fleet_site.client.post("/fleet/new", data={
        "csrf_token": fleet_site.csrf("/fleet/new"), "operation": "migrate",
        "selection": "plan", "plan": "premium", "confirm": "yes"}, follow_redirects=False)
    assert started.status_code == 303
    fleet = fleet_site.engine.catalog.fleets.page(limit=5)[0][0]
    settings = fleet_site.engine.settings.fleet
    assert (fleet.canary, fleet.concurrency) == (settings.canary, settings.concurrency)
    assert [t.tenant_slug for t in fleet_site.engine.catalog.fleets.targets(fleet.id)] == [
        "bravo"]


@pytest.mark.parametrize(("field", "value", "shown"), [
    ("canary", "two", "Canary tenants is &#39;two&#39;: must be a whole number"),
    ("concurrency", "0", "Concurrency is 0: must be between 1 and 100000"),
    ("max_failure_percent", "150", "Stop after failure % is 150.0: must be more than 0 and "
                                   "at most 100"),
    ("tag", "tier", "Tag is &#39;tier&#39;: must be key=value"),
    ("revision", "9999_nope", "Revision is &#39;9999_nope&#39;: "),
])
def test_invalid_fleet_fields_are_named_with_value_and_rule(
        fleet_site: Site, field: str, value: str, shown: str) -> None:
    form = {**START, "csrf_token": fleet_site.csrf("/fleet/new"), field: value,
            "confirm": "yes"}
    if field == "tag":
        form["selection"] = "tag"
    page = fleet_site.client.post("/fleet/new", data=form, follow_redirects=False)
    assert page.status_code == 422
    assert shown in page.text
    assert f'id="{field}-error"' in page.text
    assert "There is a problem" in page.text
    assert fleet_site.engine.catalog.fleets.page(limit=5)[1] == 0, "nothing was started"


def test_a_selection_that_is_not_offered_is_named(fleet_site: Site) -> None:
    page = fleet_site.client.post("/fleet/new", data={
        "csrf_token": fleet_site.csrf("/fleet/new"), "operation": "migrate",
        "selection": "everyone"})
    assert page.status_code == 422
    assert "Tenants is &#39;everyone&#39;: must be one of all, plan, tag, tenants" in page.text


def test_unknown_operation_is_named(fleet_site: Site) -> None:
    page = fleet_site.client.post("/fleet/new", data={
        "csrf_token": fleet_site.csrf("/fleet/new"), "operation": "drop-everything",
        "selection": "all"})
    assert page.status_code == 422
    assert ("Operation is &#39;drop-everything&#39;: must be one of migrate, "
            "renew-certificates, rotate-database-credentials") in page.text


def test_pause_resume_and_cancel_from_the_fleet_page(fleet_site: Site) -> None:
    fleet_id = a_fleet(fleet_site)
    client = fleet_site.client
    page = client.get(f"/fleet/{fleet_id}").text
    assert f'action="/fleet/{fleet_id}/pause"' in page
    assert f'action="/fleet/{fleet_id}/cancel"' in page
    assert "/resume" not in page
    token = fleet_site.csrf(f"/fleet/{fleet_id}")

    paused = client.post(f"/fleet/{fleet_id}/pause", data={"csrf_token": token},
                         follow_redirects=False)
    assert (paused.status_code, paused.headers["location"]) == (303, f"/fleet/{fleet_id}")
    fleet = fleet_site.engine.catalog.fleets.get(fleet_id)
    assert fleet.status == "stopped"
    assert fleet.stop_reason == "paused by Olive Operator (operator@contoso.test)"
    page = client.get(f"/fleet/{fleet_id}").text
    assert f'action="/fleet/{fleet_id}/resume"' in page
    assert "/pause" not in page

    again = client.post(f"/fleet/{fleet_id}/pause", data={"csrf_token": token})
    assert again.status_code == 409
    assert f"fleet run {fleet_id} is stopped; only a running fleet run can be paused" in (
        again.text)

    assert client.post(f"/fleet/{fleet_id}/resume", data={"csrf_token": token},
                       follow_redirects=False).status_code == 303
    assert fleet_site.engine.catalog.fleets.get(fleet_id).status == "running"
    assert client.post(f"/fleet/{fleet_id}/cancel", data={"csrf_token": token},
                       follow_redirects=False).status_code == 303
    assert fleet_site.engine.catalog.fleets.get(fleet_id).status == "cancelled"
    finished = client.get(f"/fleet/{fleet_id}").text
    assert not re.search(r'action="/fleet/[0-9a-f]+/(pause|resume|cancel)"', finished)
    assert client.post("/fleet/nope/pause", data={"csrf_token": token}).status_code == 404


FLEET_POSTS = ["/fleet/new", "/fleet/{fleet}/pause", "/fleet/{fleet}/resume",
               "/fleet/{fleet}/cancel"]


@pytest.mark.parametrize("path", FLEET_POSTS)
@pytest.mark.parametrize("token", ["", "forged-token-of-the-right-length-0123456789abcdef"],
                         ids=["no-token", "wrong-token"])
def test_fleet_action_without_the_sessions_csrf_token_is_refused(
        fleet_site: Site, path: str, token: str) -> None:
    fleet_id = a_fleet(fleet_site)
    response = fleet_site.client.post(path.format(fleet=fleet_id),
                                      data={**START, "confirm": "yes", "csrf_token": token},
                                      follow_redirects=False)
    assert response.status_code == 403
    assert "CSRF token" in response.text
    fleets, total = fleet_site.engine.catalog.fleets.page(limit=5)
    assert (total, fleets[0].status) == (1, "running"), "nothing was done"


@pytest.mark.parametrize(("method", "path", "action"), [
    ("GET", "/fleet/new", "Starting a fleet run"),
    ("POST", "/fleet/new", "Starting a fleet run"),
    ("POST", "/fleet/{fleet}/pause", "Pausing a fleet run"),
    ("POST", "/fleet/{fleet}/resume", "Resuming a fleet run"),
    ("POST", "/fleet/{fleet}/cancel", "Cancelling a fleet run"),
])
def test_fleet_action_by_a_reader_is_refused_with_the_role_named(
        make_site: SiteFactory, method: str, path: str, action: str) -> None:
    site = make_site()
    site.register("alpha")
    fleet_id = a_fleet(site)
    assert site.sign_in(READER).status_code == 303
    data = {**START, "confirm": "yes", "csrf_token": site.csrf()} if method == "POST" else None
    response = site.client.request(method, path.format(fleet=fleet_id), data=data)

    assert response.status_code == 403
    assert (f"{action} needs the app role Tenants.Write. You are signed in as "
            "reader@contoso.test, with Tenants.Read.") in response.text
    fleets, total = site.engine.catalog.fleets.page(limit=5)
    assert (total, fleets[0].status) == (1, "running"), "nothing was done"


def test_reader_sees_no_fleet_buttons(make_site: SiteFactory) -> None:
    site = make_site()
    site.register("alpha")
    fleet_id = a_fleet(site)
    assert site.sign_in(READER).status_code == 303
    for path in ("/fleet", f"/fleet/{fleet_id}"):
        html = site.client.get(path).text
        assert "/fleet/new" not in html, path
        assert not re.search(r"/fleet/[0-9a-f]+/(pause|resume|cancel)", html), path
        buttons = set(re.findall(r"<button[^>]*>([^<]*)</button>", html))
        assert buttons <= {"Sign out"}, (path, buttons)
