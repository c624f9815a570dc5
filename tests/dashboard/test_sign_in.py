"""Signing in with OIDC authorization code + PKCE against the emulator, the session cookie's
flags, and what never leaves the server: tokens, codes, secrets."""

from __future__ import annotations

import base64
import logging
import re
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, urlsplit

import pytest

from tenantops.dashboard._signin import safe_next_path
from tenantops.emulator.directory import API_CLIENT_ID
from tests.dashboard.conftest import OPERATOR, READER, Site, SiteFactory

DASHBOARD_CLIENT_ID = "3c2b1a09-8e7d-4c6b-a5f4-e3d2c1b0a987"
JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")


def set_cookies(response_headers: list[str]) -> dict[str, dict[str, str | bool]]:
    """Each Set-Cookie by name: its attributes (lowercase) and ``value``."""
    cookies: dict[str, dict[str, str | bool]] = {}
    for header in response_headers:
        jar: SimpleCookie = SimpleCookie()
        jar.load(header)
        for name, morsel in jar.items():
            attributes: dict[str, str | bool] = {"value": morsel.value}
            attributes.update({k: v for k, v in morsel.items() if v})
            cookies[name] = attributes
    return cookies


def test_pages_send_a_signed_out_person_to_sign_in_and_back(site: Site) -> None:
    page = site.client.get("/tenants/acme?x=1", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/auth/sign-in?next=%2Ftenants%2Facme%3Fx%3D1"
    live = site.client.get("/live/runs/abc", follow_redirects=False)
    assert live.status_code == 401, "a page's event stream answers 401, not a redirect"


def test_sign_in_asks_the_authority_for_a_code_with_pkce_state_and_nonce(site: Site) -> None:
    start = site.client.get("/auth/sign-in", params={"next": "/runs/1"},
                            follow_redirects=False)

    assert start.status_code == 303
    where = urlsplit(start.headers["location"])
    assert f"{where.scheme}://{where.netloc}" == site.info.authority
    assert where.path == f"/{site.info.tenant_id}/oauth2/v2.0/authorize"
    query = {k: v[0] for k, v in parse_qs(where.query).items()}
    assert query["client_id"] == DASHBOARD_CLIENT_ID
    assert query["response_type"] == "code"
    assert query["response_mode"] == "query"
    assert query["redirect_uri"] == "http://127.0.0.1/auth/callback"
    assert query["scope"] == f"api://{API_CLIENT_ID}/.default openid profile"
    assert query["code_challenge_method"] == "S256"
    assert len(base64.urlsafe_b64decode(query["code_challenge"] + "=")) == 32
    assert len(query["state"]) >= 32
    assert len(query["nonce"]) >= 32
    assert "client_secret" not in query
    cookie = set_cookies(start.headers.get_list("set-cookie"))["tenantops_signin"]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "lax"
    assert query["state"] not in str(cookie["value"]), "the sign-in cookie is encrypted"


def test_operator_signs_in_and_lands_where_they_were_going(site: Site) -> None:
    callback = site.sign_in(OPERATOR, next_path="/?status=active")

    assert callback.status_code == 303
    assert callback.headers["location"] == "/?status=active"
    page = site.client.get("/?status=active")
    assert page.status_code == 200
    assert "Olive Operator" in page.text
    assert "Tenants.Read, Tenants.Write, Tenants.Delete" in page.text


@pytest.mark.parametrize(
    ("base_url", "headers", "secure"),
    [("http://127.0.0.1", {}, False),
     ("http://127.0.0.1", {"X-Forwarded-Proto": "https"}, True)],
    ids=["plain-http-on-loopback", "https-behind-a-proxy"],
)
def test_session_cookie_is_httponly_lax_and_secure_over_https(
    make_site: SiteFactory, base_url: str, headers: dict[str, str], secure: bool,
) -> None:
    site = make_site(base_url=base_url, headers=headers)
    start = site.client.get("/auth/sign-in", follow_redirects=False)
    callback = site.sign_in(OPERATOR)

    for response in (start, callback):
        cookies = set_cookies(response.headers.get_list("set-cookie"))
        for name, cookie in cookies.items():
            assert cookie["httponly"] is True, name
            assert cookie["samesite"] == "lax", name
            assert cookie["path"] == "/", name
            assert bool(cookie.get("secure")) is secure, name
            assert name.startswith("__Host-") is secure, name
    session = set_cookies(callback.headers.get_list("set-cookie"))
    name = "__Host-tenantops_session" if secure else "tenantops_session"
    assert int(str(session[name]["max-age"])) <= 3600, "no longer than the access token"


def test_callback_refuses_a_state_that_is_not_this_browsers(site: Site) -> None:
    site.client.get("/auth/sign-in", follow_redirects=False)
    forged = site.client.get("/auth/callback?code=stolen&state=not-mine")

    assert forged.status_code == 401
    assert "does not belong to this browser&#39;s sign-in (state mismatch)" in forged.text
    assert site.client.get("/", follow_redirects=False).status_code == 303


def test_callback_without_a_started_sign_in_is_refused(site: Site) -> None:
    page = site.client.get("/auth/callback?code=x&state=y")
    assert page.status_code == 401
    assert "was not started by this browser in the last 10 minutes" in page.text
    assert "Sign in again" in page.text


def test_authority_refusal_is_shown_with_its_reason(site: Site) -> None:
    start = site.client.get("/auth/sign-in", follow_redirects=False)
    state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
    page = site.client.get("/auth/callback", params={
        "state": state, "error": "access_denied",
        "error_description": "AADSTS65004: User declined to consent"})
    assert page.status_code == 401
    assert "refused the sign-in: access_denied: AADSTS65004: User declined to consent" in page.text


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example", "/\\evil",
                                    "evil", "", "/ok\r\nSet-Cookie: x=1"])
def test_sign_in_never_redirects_off_site(target: str) -> None:
    assert safe_next_path(target) == "/"


def test_off_site_next_lands_on_the_tenants_page(site: Site) -> None:
    assert site.sign_in(OPERATOR, next_path="//evil.example/").headers["location"] == "/"


def test_sign_out_ends_the_session(site: Site) -> None:
    site.sign_in(READER)
    out = site.client.post("/auth/sign-out", data={"csrf_token": site.csrf()},
                           follow_redirects=False)
    assert out.status_code == 303
    assert out.headers["location"] == "/auth/signed-out"
    cookie = set_cookies(out.headers.get_list("set-cookie"))["tenantops_session"]
    assert cookie["value"] == ""
    assert int(str(cookie["max-age"])) == 0
    assert site.client.get("/", follow_redirects=False).status_code == 303


def test_a_session_cookie_from_another_secret_is_ignored(make_site: SiteFactory) -> None:
    first = make_site()
    first.sign_in(OPERATOR)
    cookie = {"Cookie": f"tenantops_session={first.client.cookies.get('tenantops_session')}"}
    assert first.client.get("/", headers=cookie).status_code == 200
    second = make_site()
    assert second.client.get("/", headers=cookie, follow_redirects=False).status_code == 303


def test_no_token_code_or_secret_reaches_logs_pages_or_cookies(
    site: Site, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(logging.getLogger("tenantops"), "propagate", True)
    caplog.set_level(logging.DEBUG)
    callback = site.sign_in(OPERATOR)
    code = parse_qs(urlsplit(str(callback.request.url)).query)["code"][0]
    pages = [site.client.get(p).text for p in ("/", "/onboard")]

    # The test's own HTTP client logs the URLs it calls; the server's records are what count.
    logged = "\n".join(r.getMessage() for r in caplog.records
                       if not r.name.startswith(("httpx", "httpcore")))
    assert "dashboard sign-in: operator@contoso.test" in logged
    for text in [logged, *pages, *callback.headers.get_list("set-cookie")]:
        assert not JWT_SHAPE.search(text)
        assert code not in text
        assert "dashboard-local-secret" not in text
    session = site.client.cookies.get("tenantops_session") or ""
    assert session, "signed in"
    assert "operator@contoso.test" not in base64.urlsafe_b64decode(session + "==").decode(
        "latin-1")
