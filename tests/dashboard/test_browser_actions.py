"""The fleet and import actions in Chromium: an operator starts a migration of every tenant
from the fleet page (the dry run first) and pauses it while the canary tenant is being
migrated; imports tenants from a CSV file after its dry run; axe-core finds no serious or
critical violation on these pages."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tenantops.api import create_app
from tenantops.emulator.server import EmulatorInfo
from tenantops.errors import PermanentProviderError
from tenantops.provisioning import Engine, TenantSpec
from tenantops.provisioning.providers.base import Outcome, ProviderCall
from tests.dashboard.browser import CHROMIUM_ARGS, SCREENSHOTS, require_chromium, serve_in_thread
from tests.dashboard.conftest import OPERATOR, dashboard_settings
from tests.dashboard.test_browser import DESKTOP, sign_in

pytestmark = pytest.mark.integration

AXE = Axe()


class Hold:
    """Holds the database calls made while `held`, until `release`; `entered` is set when
    one is held (a `tests.provisioning.middleware.Gate` that can close again)."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self._open = threading.Event()
        self._open.set()

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def __call__(self, call: ProviderCall, proceed: Callable[[], Outcome]) -> Outcome:
        if call.provider.kind == "database" and not self._open.is_set():
            self.entered.set()
            if not self._open.wait(60):
                raise PermanentProviderError("the test never released the held call")
        return proceed()


@dataclass
class Live:
    base_url: str
    engine: Engine
    hold: Hold
    browser: Browser
    migrations: Path


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, emulator: EmulatorInfo) -> Iterator[Live]:
    chromium = require_chromium()
    migrations = tmp_path_factory.mktemp("migrations")
    (migrations / "0001_users.sql").write_text("CREATE TABLE users (id INTEGER PRIMARY KEY);")
    settings = dashboard_settings(tmp_path_factory.mktemp("fleet-dashboard") / "data",
                                  emulator, migrations={"folder": migrations},
                                  fleet={"poll_seconds": 0.05})
    hold = Hold()
    engine = Engine(settings, middleware=[hold])
    engine.start()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        runs = [engine.onboard(TenantSpec(
            slug=slug, display_name=slug.title(), custom_domain=f"app.{slug}.test",
            admin_email=f"it@{slug}.test"), requested_by="tests").id
            for slug in ("fleeta", "fleetb", "fleetc")]
        for run_id in runs:
            assert engine.wait(run_id, timeout=120).status == "succeeded"
        app = create_app(settings, engine=engine)
        with serve_in_thread(app) as base_url, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(chromium),
                                                 args=CHROMIUM_ARGS)
            try:
                yield Live(base_url, engine, hold, browser, migrations)
            finally:
                browser.close()
    finally:
        hold.release()
        engine.stop()


def serious_violations(page: Page) -> list[str]:
    results = AXE.run(page)
    assert results.response["testEngine"]["name"] == "axe-core"
    return [f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
            for v in results.response["violations"] if v["impact"] in ("serious", "critical")]


def test_operator_starts_a_fleet_migration_from_the_page_and_pauses_it(live: Live) -> None:
    (live.migrations / "0002_orders.sql").write_text("CREATE TABLE orders (id INTEGER);")
    context = live.browser.new_context(ignore_https_errors=True, viewport=DESKTOP)
    context.set_default_timeout(15_000)
    found: dict[str, list[str]] = {}
    try:
        page = context.new_page()
        sign_in(page, live, OPERATOR)  # type: ignore[arg-type]
        page.goto(f"{live.base_url}/fleet")
        found["/fleet"] = serious_violations(page)
        page.get_by_role("link", name="Start a fleet run…").click()
        expect(page.get_by_role("heading", name="Start a fleet run")).to_be_visible()
        page.get_by_label("Operation").select_option("migrate")
        page.get_by_label("All tenants").check()
        page.get_by_label("Canary tenants").fill("one")
        page.get_by_role("button", name="Preview (dry run)").click()
        expect(page.locator("#canary-error")).to_have_text(
            "Error: Canary tenants is 'one': must be a whole number")
        found["/fleet/new (errors)"] = serious_violations(page)
        page.get_by_label("Canary tenants").fill("1")
        page.get_by_label("Concurrency").fill("1")
        page.get_by_role("button", name="Preview (dry run)").click()
        expect(page.get_by_role("heading", name="Dry run: migrate on 3 tenants")).to_be_visible()
        expect(page.locator("#preview-count")).to_contain_text("3 would run")
        expect(page.get_by_text("pending=['0002_orders']").first).to_be_visible()
        found["/fleet/new (dry run)"] = serious_violations(page)
        page.screenshot(path=str(SCREENSHOTS / "fleet-dry-run.png"), full_page=True)
        assert live.engine.catalog.fleets.page(limit=5)[1] == 0, "the dry run started nothing"

        live.hold.hold()  # the canary tenant's migration waits until the fleet is paused
        page.get_by_role("button", name="Start the fleet run").click()
        expect(page.get_by_role("heading", name="migrate: fleet run")).to_be_visible()
        expect(page.get_by_role("button", name="Pause")).to_be_visible()
        assert live.hold.entered.wait(60), "the canary tenant's migration never started"
        found["/fleet/{id}"] = serious_violations(page)
        page.get_by_role("button", name="Pause").click()
        expect(page.get_by_role("button", name="Resume")).to_be_visible()
        expect(page.get_by_text("paused by Olive Operator (operator@contoso.test)")).to_be_visible()
        live.hold.release()
        fleet = live.engine.catalog.fleets.page(limit=5)[0][0]
        assert fleet.status == "stopped"
        page.screenshot(path=str(SCREENSHOTS / "fleet-paused.png"), full_page=True)
    finally:
        live.hold.release()
        context.close()
    found = {path: v for path, v in found.items() if v}
    assert not found, f"axe-core found serious or critical violations: {found}"


def test_operator_imports_tenants_from_a_csv_file_after_its_dry_run(
        live: Live, tmp_path: Path) -> None:
    csv_file = tmp_path / "tenants.csv"
    csv_file.write_text("slug,display_name,custom_domain,admin_email,database\n"
                        "quebec,Quebec,www.quebec.test,it@quebec.test,quebec_db\n"
                        "fleeta,Taken,www.taken.test,it@taken.test,\n")
    context = live.browser.new_context(ignore_https_errors=True, viewport=DESKTOP)
    context.set_default_timeout(15_000)
    found: dict[str, list[str]] = {}
    try:
        page = context.new_page()
        sign_in(page, live, OPERATOR)  # type: ignore[arg-type]
        page.goto(f"{live.base_url}/tenants")
        page.get_by_role("link", name="Import tenants…").click()
        expect(page.get_by_role("heading", name="Import tenants")).to_be_visible()
        found["/import"] = serious_violations(page)
        page.get_by_label("File").set_input_files(str(csv_file))
        page.get_by_role("button", name="Preview (dry run)").click()
        expect(page.locator("#results-count")).to_have_text(
            "0 adopted, 1 partial, 1 refused (dry run: nothing recorded).")
        expect(page.get_by_text("slug 'fleeta' is taken")).to_be_visible()
        found["/import (dry run)"] = serious_violations(page)
        page.screenshot(path=str(SCREENSHOTS / "import-dry-run.png"), full_page=True)
        assert live.engine.catalog.find_tenant("quebec") is None
        page.get_by_role("button", name="Import 1 tenant").click()
        expect(page.get_by_role("heading", name="Imported from tenants.csv")).to_be_visible()
        expect(page.get_by_role("link", name="quebec")).to_be_visible()
        assert live.engine.catalog.get_tenant("quebec").database_name == "quebec_db"
    finally:
        context.close()
    found = {path: v for path, v in found.items() if v}
    assert not found, f"axe-core found serious or critical violations: {found}"
