"""Actions without a browser: CSRF on every POST, refusals that name the missing role, the
onboard form's inline errors, and the typed confirmation of offboarding."""

from __future__ import annotations

import re

import pytest

from tests.dashboard.conftest import Site

ACTIONS = [
    ("/onboard", {"slug": "acme", "display_name": "Acme", "custom_domain": "app.acme.test",
                  "admin_email": "a@acme.test"}),
    ("/runs/{run}/retry", {}),
    ("/runs/{run}/cancel", {}),
    ("/tenants/acme/offboard", {"confirm": "acme"}),
    ("/auth/sign-out", {}),
]


@pytest.mark.parametrize(("path", "form"), ACTIONS, ids=[a[0] for a in ACTIONS])
@pytest.mark.parametrize("token", ["", "forged-token-of-the-right-length-0123456789abcdef"],
                         ids=["no-token", "wrong-token"])
def test_every_post_without_the_sessions_csrf_token_is_refused(
    operator_site: Site, path: str, form: dict[str, str], token: str,
) -> None:
    run = operator_site.register("acme")
    response = operator_site.client.post(path.format(run=run.id),
                                         data={**form, "csrf_token": token},
                                         follow_redirects=False)

    assert response.status_code == 403
    assert "CSRF token" in response.text
    assert "reload the page" in response.text
    after = operator_site.engine.get_run(run.id)
    assert (after.status, after.retries) == ("pending", 0), "nothing was done"
    assert operator_site.client.get("/", follow_redirects=False).status_code == 200


def test_a_csrf_token_of_another_session_is_refused(site: Site) -> None:
    site.sign_in(("reader@contoso.test", "reader"))
    readers_token = site.csrf()
    site.client.cookies.clear()
    site.sign_in(("operator@contoso.test", "operator"))
    refused = site.client.post("/onboard", data={"csrf_token": readers_token, "slug": "x"})
    assert refused.status_code == 403


@pytest.mark.parametrize(
    ("method", "path", "role", "action"),
    [("GET", "/onboard", "Tenants.Write", "Onboarding a tenant"),
     ("POST", "/onboard", "Tenants.Write", "Onboarding a tenant"),
     ("POST", "/runs/{run}/retry", "Tenants.Write", "Retrying a run"),
     ("POST", "/runs/{run}/cancel", "Tenants.Write", "Cancelling a run"),
     ("GET", "/tenants/acme/offboard", "Tenants.Delete", "Offboarding a tenant"),
     ("POST", "/tenants/acme/offboard", "Tenants.Delete", "Offboarding a tenant")],
)
def test_reader_is_refused_every_action_with_the_missing_role_named(
    reader_site: Site, method: str, path: str, role: str, action: str,
) -> None:
    run = reader_site.register("acme")
    data = {"csrf_token": reader_site.csrf(), "confirm": "acme"} if method == "POST" else None
    response = reader_site.client.request(method, path.format(run=run.id), data=data)

    assert response.status_code == 403
    assert (f"{action} needs the app role {role}. You are signed in as reader@contoso.test, "
            "with Tenants.Read.") in response.text
    assert "then sign out and sign in again" in response.text
    assert reader_site.engine.get_run(run.id).status == "pending"


def test_reader_pages_show_no_action_buttons(reader_site: Site) -> None:
    run = reader_site.register("acme")
    pages = {path: reader_site.client.get(path).text
             for path in ("/", "/tenants/acme", f"/runs/{run.id}", f"/runs/{run.id}/live")}

    for path, html in pages.items():
        assert 'href="/onboard"' not in html, path
        assert "/offboard" not in html, path
        assert "/retry" not in html, path
        assert "/cancel" not in html, path
        buttons = set(re.findall(r"<button[^>]*>([^<]*)</button>", html))
        assert buttons <= {"Sign out", "Filter"}, (path, buttons)


def test_operator_pages_offer_the_actions_their_roles_allow(operator_site: Site) -> None:
    run = operator_site.register("acme")
    assert 'href="/onboard"' in operator_site.client.get("/").text
    assert 'href="/tenants/acme/offboard"' in operator_site.client.get("/tenants/acme").text
    live = operator_site.client.get(f"/runs/{run.id}").text
    assert f'action="/runs/{run.id}/cancel"' in live
    assert "/retry" not in live, "a pending run cannot be retried"


def test_invalid_onboard_fields_are_shown_next_to_each_field(operator_site: Site) -> None:
    page = operator_site.client.post("/onboard", data={
        "csrf_token": operator_site.csrf(), "slug": "Bad Slug", "display_name": "Acme",
        "custom_domain": "acme.test", "plan": "gold", "admin_email": "not-an-email"})

    assert page.status_code == 422
    html = page.text
    assert '<title>Error: Onboard a tenant · tenantops</title>' in html
    assert "There are 4 problems" in html
    for field, rule in [
        ("slug", "Slug must contain only lowercase letters a-z, digits and hyphens"),
        ("custom_domain", "Custom domain must be a subdomain such as portal.contoso.com"),
        ("plan", "Plan must be one of free, standard, premium"),
        ("admin_email", "Administrator&#39;s email must be an email address"),
    ]:
        assert f'<p id="{field}-error" class="field-error"><span class="visually-hidden">' \
               f"Error: </span>{rule}" in html
        assert f'<a href="#{field}">{rule}' in html
    assert 'aria-describedby="slug-hint slug-error" aria-invalid="true"' in html
    assert 'value="Acme"' in html, "what was typed is kept"
    assert operator_site.engine.catalog.find_tenant("Bad Slug") is None


def test_offboard_needs_the_slug_typed_exactly(operator_site: Site) -> None:
    run = operator_site.register("acme")
    page = operator_site.client.get("/tenants/acme/offboard")
    assert page.status_code == 200
    assert "What will change" in page.text
    assert "delete" in page.text

    refused = operator_site.client.post("/tenants/acme/offboard", data={
        "csrf_token": operator_site.csrf(), "confirm": "ACME"})
    assert refused.status_code == 422
    assert ('<p id="confirm-error" class="field-error"><span class="visually-hidden">Error: '
            "</span>Type the tenant&#39;s slug, acme, exactly, to confirm</p>") in refused.text
    assert 'aria-invalid="true" aria-describedby="confirm-error"' in refused.text
    assert [r.kind for r in operator_site.engine.catalog.list_runs("acme")] == ["onboard"]

    conflict = operator_site.client.post("/tenants/acme/offboard", data={
        "csrf_token": operator_site.csrf(), "confirm": "acme"})
    assert conflict.status_code == 409, "the onboarding run is still active"
    assert f'href="/runs/{run.id}"' in conflict.text


def test_retrying_a_run_that_has_not_failed_explains_why_not(operator_site: Site) -> None:
    run = operator_site.register("acme")
    page = operator_site.client.post(f"/runs/{run.id}/retry",
                                     data={"csrf_token": operator_site.csrf()})
    assert page.status_code == 409
    assert f"run {run.id} is pending; only a failed or cancelled run can be retried" in page.text


def test_unknown_tenant_and_run_are_404_pages(operator_site: Site) -> None:
    tenant = operator_site.client.get("/tenants/nobody")
    run = operator_site.client.post("/runs/nothing/cancel",
                                    data={"csrf_token": operator_site.csrf()})
    assert (tenant.status_code, run.status_code) == (404, 404)
    assert "no tenant with slug &#39;nobody&#39;" in tenant.text
    assert "<h1>No such run</h1>" in run.text
