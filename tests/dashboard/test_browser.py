"""The dashboard in Chromium, end to end: an operator signs in through the emulator's page,
onboards a tenant through the form (an invalid field first), watches the steps complete live,
meets an injected database outage, retries once it is fixed, and offboards the tenant by
typing its slug; a reader then finds no action buttons. Every page is saved as a screenshot,
at desktop width and at 375 px."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Locator,
    Page,
    ViewportSize,
    expect,
    sync_playwright,
)

from tenantops.api import create_app
from tenantops.dashboard._app import Dashboard
from tenantops.emulator.server import EmulatorInfo
from tenantops.provisioning import Engine, TenantSpec
from tests.dashboard.browser import (
    CHROMIUM_ARGS,
    SCREENSHOTS,
    require_chromium,
    serve_in_thread,
)
from tests.dashboard.conftest import OPERATOR, READER, dashboard_settings
from tests.provisioning.middleware import Delay, Outage

pytestmark = pytest.mark.integration

QUOTA = ("quota exceeded: the subscription allows 10 databases; raise the quota or delete "
         "unused databases")
PHONE: ViewportSize = {"width": 375, "height": 812}
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
AXE = Axe()


@dataclass
class Live:
    base_url: str
    engine: Engine
    outage: Outage
    browser: Browser
    dashboard: Dashboard


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, emulator: EmulatorInfo) -> Iterator[Live]:
    """The app with a started engine (a database outage switched on, a little delay per
    provider call so steps can be watched), served by uvicorn, and one Chromium."""
    chromium = require_chromium()
    settings = dashboard_settings(tmp_path_factory.mktemp("dashboard") / "data", emulator,
                                  dashboard={"poll_seconds": 0.5})
    outage = Outage("database", QUOTA)
    engine = Engine(settings, middleware=[Delay(0.1), outage])
    engine.start()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        app = create_app(settings, engine=engine)
        with serve_in_thread(app) as base_url, \
                sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(chromium),
                                                 args=CHROMIUM_ARGS)
            try:
                yield Live(base_url, engine, outage, browser, app.state.dashboard)
            finally:
                browser.close()
    finally:
        engine.stop()


@pytest.fixture
def context(live: Live) -> Iterator[BrowserContext]:
    # The emulator's TLS certificate comes from its own test CA.
    context = live.browser.new_context(ignore_https_errors=True, viewport=DESKTOP)
    context.set_default_timeout(15_000)
    yield context
    context.close()


DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images" / "dashboard"
DOC_SHOTS = {"light-home": "overview", "dark-home": "overview-dark",
             "dark-runs-status-failed": "runs-failed-dark", "run-succeeded": "run",
             "tenant": "tenant", "light-runs": "runs"}
"""Screenshots that docs/dashboard.md shows, copied there with TENANTOPS_DOC_SCREENSHOTS=1."""


def shoot(page: Page, name: str) -> Path:
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("TENANTOPS_DOC_SCREENSHOTS") == "1" and name in DOC_SHOTS:
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_IMAGES / f"{DOC_SHOTS[name]}.png")
    return path


def sign_in(page: Page, live: Live, who: tuple[str, str]) -> None:
    """Through the emulator's own sign-in page, as a person would."""
    page.goto(f"{live.base_url}/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("Username").fill(who[0])
    page.get_by_label("Password").fill(who[1])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Overview", exact=True)).to_be_visible()
    assert page.url == f"{live.base_url}/"


def step_badge(page: Page, step: str) -> Locator:
    return page.locator(f"#step-{step} .badge")


def at_phone_width(page: Page, name: str) -> None:
    """The page as it is now, at 375 px: no sideways scrolling, and a screenshot."""
    page.set_viewport_size(PHONE)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{page.url} scrolls sideways at 375 px ({width} px wide)"
    shoot(page, f"{name}-375")
    page.set_viewport_size(DESKTOP)


def test_operator_onboards_retries_after_an_outage_and_offboards(
    live: Live, context: BrowserContext,
) -> None:
    page = context.new_page()
    sign_in(page, live, OPERATOR)
    # Keyboard: the first Tab reaches the skip link, which moves focus to the content.
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to main content")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#main")).to_be_focused()

    # The onboard form refuses an invalid slug next to the field, focused on the summary.
    page.get_by_role("link", name="Onboard a tenant").first.click()
    page.get_by_label("Slug").fill("Contoso Retail")
    page.get_by_label("Display name").fill("Contoso Retail")
    page.get_by_label("Custom domain").fill("portal.contoso-retail.test")
    page.get_by_label("Administrator's email").fill("admin@contoso-retail.test")
    page.get_by_role("button", name="Onboard tenant").click()
    error = page.locator("#slug-error")
    expect(error).to_contain_text("must contain only lowercase letters")
    expect(page.get_by_label("Slug")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("alert")).to_be_focused()
    expect(page.get_by_label("Display name")).to_have_value("Contoso Retail")
    shoot(page, "onboard-invalid")
    at_phone_width(page, "onboard")

    streams: list[str] = []
    page.on("request", lambda request: streams.append(request.url)
            if "/live/" in request.url else None)
    page.get_by_label("Slug").fill("contoso-retail")
    page.get_by_role("button", name="Onboard tenant").click()
    expect(page.get_by_role("heading", name="Onboarding contoso-retail")).to_be_visible()
    run_url = page.url
    assert "/runs/" in run_url

    # The timeline updates in place: steps complete, then the outage stops the run.
    page.evaluate("window.__sameDocument = true")
    expect(step_badge(page, "register_tenant")).to_have_text("Succeeded")
    expect(step_badge(page, "create_database")).to_have_text("Failed")
    expect(page.locator("#run-error")).to_contain_text(QUOTA)
    expect(page.locator("#step-create_database .step-error")).to_contain_text(QUOTA)
    expect(page.locator("#live-announcer")).to_contain_text("failed at step create_database")
    assert page.evaluate("window.__sameDocument") is True, "the page reloaded instead"
    assert [url.split("?")[0] for url in streams] == [
        run_url.replace("/runs/", "/live/runs/")], "one stream for the page, no polling"
    expect(page.locator("#live-status")).to_have_text("Live")
    shoot(page, "run-failed")

    # Fixed; retried from the failed step; every step succeeds.
    live.outage.fix()
    with page.expect_navigation():
        page.get_by_role("button", name="Retry from create_database").click()
    page.evaluate("window.__sameDocument = true")
    expect(page.locator(".run-status .badge")).to_have_text("Succeeded", timeout=30_000)
    badges = page.locator(".timeline .badge")
    assert badges.count() == 14
    expect(badges).to_have_text(["Succeeded"] * 14)
    expect(page.locator("#step-create_database")).to_contain_text("2 attempts")
    expect(page.get_by_role("button", name="Retry from create_database")).to_have_count(0)
    expect(page.locator("#live-announcer")).to_contain_text("succeeded: 14 of 14 steps done")
    assert page.evaluate("window.__sameDocument") is True
    shoot(page, "run-succeeded")
    at_phone_width(page, "run")

    # The tenant: active, with its DNS records, hostname, certificate and database.
    page.get_by_role("navigation", name="Breadcrumb").get_by_role(
        "link", name="contoso-retail").click()
    expect(page.get_by_role("heading", name="Contoso Retail contoso-retail")).to_be_visible()
    expect(page.locator(".tenant-status .badge")).to_have_text("Active")
    dns = page.get_by_role("table", name="DNS records")
    expect(dns).to_contain_text("CNAME")
    expect(dns).to_contain_text("asuid.portal.contoso-retail.test")
    expect(page.locator("dl.details").first).to_contain_text("portal.contoso-retail.test")
    expect(page.get_by_text("thumbprint")).to_be_visible()
    shoot(page, "tenant")
    tenant_url = page.url
    at_phone_width(page, "tenant")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Tenants").click()
    expect(page.get_by_role("link", name="Contoso Retail")).to_be_visible()
    page.get_by_label("Search").fill("retail")
    page.get_by_label("Status").select_option("active")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#result-count")).to_contain_text("Showing 1 to 1 of 1 tenant")
    shoot(page, "tenants")
    at_phone_width(page, "tenants")

    # Offboarding: a preview of what goes, then the slug must be typed exactly.
    page.goto(tenant_url)
    page.get_by_role("link", name="Offboard contoso-retail…").click()
    expect(page.get_by_role("list", name="What will change")).to_contain_text("delete")
    page.get_by_label("Type contoso-retail to confirm").fill("contoso")
    page.get_by_role("button", name="Offboard contoso-retail").click()
    expect(page.locator("#confirm-error")).to_contain_text("contoso-retail")
    expect(page.get_by_label("Type contoso-retail to confirm")).to_be_focused()
    shoot(page, "offboard-confirm")
    at_phone_width(page, "offboard")
    page.get_by_label("Type contoso-retail to confirm").fill("contoso-retail")
    page.get_by_role("button", name="Offboard contoso-retail").click()
    expect(page.get_by_role("heading", name="Offboarding contoso-retail")).to_be_visible()
    expect(page.locator(".run-status .badge")).to_have_text("Succeeded", timeout=30_000)
    shoot(page, "offboard-run")
    assert live.engine.catalog.get_tenant("contoso-retail").status == "offboarded"

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="You are signed out")).to_be_visible()
    shoot(page, "signed-out")


def test_reader_sees_runs_and_errors_but_no_action_buttons(
    live: Live, context: BrowserContext,
) -> None:
    engine = live.engine
    live.outage.broken = True
    failed = engine.wait(engine.onboard(TenantSpec(
        slug="northwind", display_name="Northwind Traders", custom_domain="app.northwind.test",
        admin_email="it@northwind.test"), requested_by="operator@contoso.test").id, timeout=30)
    live.outage.fix()
    assert failed.status == "failed"

    page = context.new_page()
    sign_in(page, live, READER)
    expect(page.locator(".account-roles")).to_have_text("Tenants.Read")
    expect(page.get_by_role("link", name="Onboard a tenant")).to_have_count(0)
    shoot(page, "reader-overview")

    # The failed run, from the overview, in one click (its error on the run page).
    page.locator("#failed-runs").get_by_role("link", name="Onboarding northwind").click()
    expect(page.locator("#run-error")).to_contain_text(QUOTA)
    expect(page.get_by_role("button")).to_have_text(["Sign out"])
    shoot(page, "reader-run")
    at_phone_width(page, "reader-run")
    # ... or through every failed run, in two.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Overview").click()
    page.get_by_role("link", name="Every failed run").click()
    page.get_by_role("link", name="Onboarding of northwind").click()
    expect(page.locator("#run-error")).to_contain_text(QUOTA)

    page.get_by_role("navigation", name="Breadcrumb").get_by_role("link", name="northwind").click()
    expect(page.get_by_role("heading", name="Northwind Traders northwind")).to_be_visible()
    expect(page.get_by_role("link", name="Offboard northwind…")).to_have_count(0)

    # Asking anyway: the page says which role is missing.
    page.goto(f"{live.base_url}/onboard")
    expect(page.get_by_role("heading", name="You do not have the role for this")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text(
        "Onboarding a tenant needs the app role Tenants.Write. You are signed in as "
        "reader@contoso.test, with Tenants.Read.")
    shoot(page, "reader-refused")


PAGES = ["/", "/runs", "/runs?status=failed", "/tenants", "/events", "/audit", "/onboard",
         "/fleet", "/fleet/new", "/import"]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_page_passes_axe_in_both_colour_schemes(
    live: Live, scheme: Literal["light", "dark"],
) -> None:
    engine = live.engine
    live.outage.broken = True
    failed = engine.wait(engine.onboard(TenantSpec(
        slug=f"axe-{scheme}", display_name=f"Axe {scheme.title()}",
        custom_domain=f"app.axe-{scheme}.test", admin_email=f"it@axe-{scheme}.test"),
        requested_by="operator@contoso.test").id, timeout=30)
    live.outage.fix()
    context = live.browser.new_context(ignore_https_errors=True, viewport=DESKTOP,
                                       color_scheme=scheme)
    context.set_default_timeout(15_000)
    try:
        page = context.new_page()
        sign_in(page, live, OPERATOR)
        # The trends are computed off the request; the overview's stream brings them.
        expect(page.locator(".day-chart")).to_be_visible(timeout=30_000)
        live.dashboard.trends.refresh()  # with this test's run in them, for the screenshots
        found: dict[str, list[str]] = {}
        for path in [*PAGES, f"/runs/{failed.id}", f"/tenants/axe-{scheme}"]:
            page.goto(f"{live.base_url}{path}")
            expect(page.locator("#main")).to_be_visible()
            results = AXE.run(page)
            assert results.response["testEngine"]["name"] == "axe-core"
            assert results.response["url"].startswith(live.base_url + path.split("?")[0])
            serious = [f"{v['id']} ({v['impact']}): {v['help']} at "
                       f"{[n['target'] for n in v['nodes']][:3]}"
                       for v in results.response["violations"]
                       if v["impact"] in ("serious", "critical")]
            if serious:
                found[path] = serious
            name = "home" if path == "/" else path.strip("/").replace("/", "-").replace(
                "?", "-").replace("=", "-")
            shoot(page, f"{scheme}-{name}")
        assert not found, f"axe-core found serious or critical violations: {found}"
    finally:
        context.close()


def test_keyboard_alone_reaches_a_failed_run_from_the_overview(
    live: Live, context: BrowserContext,
) -> None:
    engine = live.engine
    live.outage.broken = True
    failed = engine.wait(engine.onboard(TenantSpec(
        slug="keyboard", display_name="Keyboard Ltd", custom_domain="app.keyboard.test",
        admin_email="it@keyboard.test"), requested_by="operator@contoso.test").id, timeout=30)
    live.outage.fix()
    page = context.new_page()
    sign_in(page, live, READER)
    target = page.locator("#failed-runs").get_by_role("link", name="Onboarding keyboard")
    expect(target).to_be_visible()
    for _ in range(60):
        page.keyboard.press("Tab")
        if target.evaluate("link => link === document.activeElement"):
            break
    else:
        raise AssertionError("Tab never reached the failed run's link on the overview")
    expect(target).to_be_focused()
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{live.base_url}/runs/{failed.id}")
    expect(page.locator("#run-error")).to_contain_text(QUOTA)
    # Every focusable element shows where focus is.
    page.keyboard.press("Tab")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none", "focus is visible"
