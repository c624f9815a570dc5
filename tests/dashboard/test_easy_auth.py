"""Behind App Service Authentication: the principal header says who is signed in, the platform
signs people in and out, and forms still need the session's CSRF token."""

from __future__ import annotations

import pytest

from tests.api.test_easy_auth import principal_header
from tests.dashboard.conftest import Site, SiteFactory

SECRET = "a-session-secret-shared-by-every-instance-0123456789"


@pytest.fixture(autouse=True)
def behind_app_service_authentication(monkeypatch: pytest.MonkeyPatch) -> None:
    """App Service sets WEBSITE_AUTH_ENABLED when its authentication is on; without it the
    API refuses to trust the principal header."""
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")


def easy_auth_site(make_site: SiteFactory) -> Site:
    return make_site(auth={"trust_easy_auth_principal": True},
                     dashboard={"session_secret": SECRET})


def test_principal_header_signs_the_person_in(make_site: SiteFactory) -> None:
    site = easy_auth_site(make_site)
    header = principal_header(site.info.tenant_id, "Tenants.Read")

    page = site.client.get("/", headers={"X-MS-CLIENT-PRINCIPAL": header})

    assert page.status_code == 200
    assert "Tenants.Read" in page.text
    assert 'href="/onboard"' not in page.text
    assert "signed in through App Service Authentication" in page.text
    assert "tenantops_session=" in page.headers["set-cookie"], "a session for the CSRF token"


def test_without_the_header_people_go_to_the_platforms_sign_in(make_site: SiteFactory) -> None:
    site = easy_auth_site(make_site)
    page = site.client.get("/tenants/acme", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == (
        "/auth/sign-in?next=%2Ftenants%2Facme")
    start = site.client.get("/auth/sign-in?next=/tenants/acme", follow_redirects=False)
    assert start.headers["location"] == (
        "/.auth/login/aad?post_login_redirect_uri=%2Ftenants%2Facme")
    assert site.client.get("/auth/callback").status_code == 404, "no OIDC callback here"


def test_forms_need_the_csrf_token_of_the_session(make_site: SiteFactory) -> None:
    site = easy_auth_site(make_site)
    site.client.headers["X-MS-CLIENT-PRINCIPAL"] = principal_header(
        site.info.tenant_id, "Tenants.Read", "Tenants.Write")
    run = site.register("acme")

    refused = site.client.post(f"/runs/{run.id}/cancel", data={"csrf_token": "guess"})
    assert refused.status_code == 403
    accepted = site.client.post(f"/runs/{run.id}/cancel", data={"csrf_token": site.csrf()},
                                follow_redirects=False)
    assert accepted.status_code == 303
    assert site.engine.get_run(run.id).status == "cancelled"


def test_another_persons_header_gets_a_new_csrf_token(make_site: SiteFactory) -> None:
    site = easy_auth_site(make_site)
    first = principal_header(site.info.tenant_id, "Tenants.Read", "Tenants.Write")
    site.client.headers["X-MS-CLIENT-PRINCIPAL"] = first
    token = site.csrf()
    site.client.headers["X-MS-CLIENT-PRINCIPAL"] = principal_header(
        site.info.tenant_id, "Tenants.Read", "Tenants.Write",
        oid="99999999-2222-4333-8444-555555555555")
    assert site.csrf() != token
    refused = site.client.post("/onboard", data={"csrf_token": token, "slug": "x"})
    assert refused.status_code == 403


def test_sign_out_goes_to_the_platforms_logout(make_site: SiteFactory) -> None:
    site = easy_auth_site(make_site)
    site.client.headers["X-MS-CLIENT-PRINCIPAL"] = principal_header(
        site.info.tenant_id, "Tenants.Read")
    out = site.client.post("/auth/sign-out", data={"csrf_token": site.csrf()},
                           follow_redirects=False)
    assert out.headers["location"] == (
        "/.auth/logout?post_logout_redirect_uri=%2Fauth%2Fsigned-out")


def test_header_from_another_tenant_is_refused(make_site: SiteFactory) -> None:
    site = easy_auth_site(make_site)
    header = principal_header("0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f", "Tenants.Read")
    page = site.client.get("/", headers={"X-MS-CLIENT-PRINCIPAL": header})
    assert page.status_code == 401
    assert "this API trusts only tenant" in page.text


def test_spoofed_header_is_ignored_when_easy_auth_is_not_trusted(site: Site) -> None:
    header = principal_header(site.info.tenant_id, "Tenants.Read", "Tenants.Write")
    page = site.client.get("/", headers={"X-MS-CLIENT-PRINCIPAL": header},
                           follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"].startswith("/auth/sign-in")
