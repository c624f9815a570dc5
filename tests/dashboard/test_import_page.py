"""The import page without a browser: a JSON or CSV upload shown as a dry run per entry
(adopted, partial or refused, with reasons), then imported on confirmation; refused without
the session's CSRF token or without Tenants.Write, and a file that cannot be read named with
the place and the rule."""

from __future__ import annotations

import html as markup
import json
import re

import pytest

from tests.dashboard.conftest import OPERATOR, Site, SiteFactory

pytestmark = pytest.mark.integration  # the session emulator's server

CSV = ("slug,display_name,custom_domain,plan,admin_email,tags,database,login,suspended\n"
       "oscar,Oscar Ltd,www.oscar.test,premium,admin@oscar.test,tier=gold;region=eu,"
       "oscar_db,oscar_login,true\n"
       "mike,Mike,www.mike2.test,standard,admin@mike.test,,,,\n")


def upload(site: Site, name: str, content: bytes, **form: str) -> str:
    response = site.client.post(
        "/import", data={"csrf_token": site.csrf("/import"), **form},
        files={"file": (name, content, "text/csv" if name.endswith(".csv")
                        else "application/json")})
    assert response.status_code in (200, 422), response.text
    return response.text


def hidden(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, name
    return markup.unescape(found.group(1))


def test_a_csv_upload_is_shown_as_a_dry_run_then_imported_on_confirmation(
        operator_site: Site) -> None:
    operator_site.register("mike")
    assert 'href="/import"' in operator_site.client.get("/tenants").text

    dry = upload(operator_site, "tenants.csv", CSV.encode())
    assert "Dry run of tenants.csv" in dry
    assert "0 adopted, 1 partial, 1 refused (dry run: nothing recorded)." in dry
    assert "database:oscar_db (database:sqlite): gone" in dry
    assert "slug &#39;mike&#39; is taken" in dry
    assert "Import 1 tenant<" in dry
    assert operator_site.engine.catalog.find_tenant("oscar") is None, "the dry run records nothing"

    confirmed = operator_site.client.post("/import", data={
        "csrf_token": operator_site.csrf("/import"), "name": hidden(dry, "name"),
        "text": hidden(dry, "text"), "confirm": "yes"}, files={"none": ("", b"")})
    assert confirmed.status_code == 200, confirmed.text
    assert "Imported from tenants.csv" in confirmed.text
    assert "0 adopted, 1 partial, 1 refused." in confirmed.text
    assert 'href="/tenants/oscar"' in confirmed.text
    oscar = operator_site.engine.catalog.get_tenant("oscar")
    assert (oscar.status, oscar.plan, oscar.tags) == ("suspended", "premium",
                                                      {"tier": "gold", "region": "eu"})
    assert oscar.database_name == "oscar_db"


def test_a_json_upload_is_read_as_the_cli_reads_it(operator_site: Site) -> None:
    body = json.dumps({"tenants": [{"slug": "papa", "display_name": "Papa",
                                    "custom_domain": "www.papa.test",
                                    "admin_email": "a@papa.test"},
                                   {"slug": "Bad Slug"}]}).encode()
    dry = upload(operator_site, "tenants.json", body)
    assert "0 adopted, 1 partial, 1 refused (dry run: nothing recorded)." in dry
    assert "Bad Slug" in dry


@pytest.mark.parametrize(("name", "content", "shown"), [
    ("bad.csv", b"slug,tags\nx,notatag\n", "File line 2: tag &#39;notatag&#39; must be "
                                          "key=value"),
    ("bad.json", b"{not json", "File bad.json: not JSON (Expecting property name enclosed "
                               "in double quotes: line 1 column 2 (char 1)); use a .csv name "
                               "for CSV"),
    ("odd.json", b'{"slug": "x"}', "File odd.json: must hold a list of tenants"),
    ("empty.json", b"[]", "File empty.json: holds no tenants"),
    ("latin.csv", "slug\nzoë\n".encode("latin-1"), "File &#39;latin.csv&#39; is not UTF-8 "
                                                   "text"),
])
def test_a_file_that_cannot_be_read_is_named_with_the_place_and_rule(
        operator_site: Site, name: str, content: bytes, shown: str) -> None:
    html = upload(operator_site, name, content)
    assert shown in html
    assert 'aria-invalid="true"' in html
    assert "Dry run" not in html


def test_more_tenants_than_one_import_may_hold_are_refused_naming_the_setting(
        make_site: SiteFactory) -> None:
    site = make_site(drift={"import_max_tenants": 2})
    assert site.sign_in(OPERATOR).status_code == 303
    html = upload(site, "many.csv", b"slug\na\nb\nc\n")
    assert "File 3 entries: at most 2 per request (drift.import_max_tenants)" in html


def test_posting_no_file_names_the_field(operator_site: Site) -> None:
    response = operator_site.client.post("/import",
                                         data={"csrf_token": operator_site.csrf("/import")})
    assert response.status_code == 422
    assert "File is missing: choose a JSON or CSV (.csv) file" in response.text


@pytest.mark.parametrize("token", ["", "forged-token-of-the-right-length-0123456789abcdef"],
                         ids=["no-token", "wrong-token"])
def test_an_import_without_the_sessions_csrf_token_is_refused(
        operator_site: Site, token: str) -> None:
    response = operator_site.client.post("/import", data={
        "csrf_token": token, "name": "tenants.csv", "text": CSV, "confirm": "yes"},
        files={"none": ("", b"")})
    assert response.status_code == 403
    assert "CSRF token" in response.text
    assert operator_site.engine.catalog.find_tenant("oscar") is None


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_an_import_by_a_reader_is_refused_with_the_role_named(
        reader_site: Site, method: str) -> None:
    data = ({"csrf_token": reader_site.csrf(), "name": "tenants.csv", "text": CSV,
             "confirm": "yes"} if method == "POST" else None)
    response = reader_site.client.request(method, "/import", data=data)
    assert response.status_code == 403
    assert ("Importing tenants needs the app role Tenants.Write. You are signed in as "
            "reader@contoso.test, with Tenants.Read.") in response.text
    assert reader_site.engine.catalog.find_tenant("oscar") is None
    assert 'href="/import"' not in reader_site.client.get("/tenants").text




def test_an_upload_over_the_body_limit_is_refused_at_the_edge(operator_site: Site) -> None:
    limit = operator_site.engine.settings.api.max_body_bytes
    upload_over = operator_site.client.post(
        "/import", data={"csrf_token": operator_site.csrf("/import")},
        files={"file": ("big.csv", b"slug\n" + b"a" * limit, "text/csv")})
    assert upload_over.status_code == 413, upload_over.text
    assert operator_site.engine.catalog.list_tenants() == []
