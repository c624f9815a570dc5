"""Fixtures of the dashboard tests: the API app with its dashboard on a fresh catalog, signed in
through the session emulator's real authorize and token endpoints (no browser needed)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import httpx2
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tenantops.api import create_app
from tenantops.catalog import Run
from tenantops.emulator.directory import API_CLIENT_ID
from tenantops.emulator.server import EmulatorInfo
from tenantops.provisioning import Engine, TenantSpec
from tenantops.provisioning.plan import onboarding_plan
from tests.auth.support import ssl_context
from tests.provisioning.conftest import fast_settings

OPERATOR = ("operator@contoso.test", "operator")
READER = ("reader@contoso.test", "reader")
ALL_ROLES = ("Tenants.Read", "Tenants.Write", "Tenants.Delete")


def dashboard_settings(data_dir: Path, info: EmulatorInfo, **overrides: Any) -> Any:
    """Embedded everything, tokens from the session emulator, the dashboard on defaults."""
    auth = {"authority": info.authority, "tenant_id": info.tenant_id,
            "client_id": API_CLIENT_ID, "ca_bundle": info.ca_bundle}
    auth.update(overrides.pop("auth", {}))
    return fast_settings(data_dir, auth=auth, **overrides)


@dataclass
class Site:
    """The app under test, its (not started) engine, and a client on http://127.0.0.1."""

    app: FastAPI
    engine: Engine
    client: TestClient
    info: EmulatorInfo

    def sign_in(self, who: tuple[str, str], next_path: str = "/") -> httpx2.Response:
        return sign_in(self.client, self.info, who, next_path)

    def csrf(self, path: str = "/") -> str:
        """The CSRF token the page at ``path`` puts in its forms."""
        page = self.client.get(path)
        assert page.status_code == 200, page.text
        marker = 'name="csrf_token" value="'
        start = page.text.index(marker) + len(marker)
        return page.text[start:page.text.index('"', start)]

    def register(self, slug: str, **changes: str) -> Run:
        """A tenant and its onboarding run in the catalog, without executing anything."""
        fields = {"slug": slug, "display_name": f"{slug.title()} Ltd",
                  "custom_domain": f"app.{slug}.test", "admin_email": f"admin@{slug}.test"}
        spec = TenantSpec(**{**fields, **changes})
        opened = self.engine.catalog.open_onboarding(
            spec, requested_by="tests", steps=onboarding_plan().templates(self.engine.providers))
        return opened.run


def sign_in(client: TestClient, info: EmulatorInfo, who: tuple[str, str],
            next_path: str = "/") -> httpx2.Response:
    """Sign in as a browser would: start, post the emulator's sign-in form, follow the
    redirect to the callback. Returns the callback's response (303 and the session cookie;
    Starlette's test client is built on httpx2)."""
    start = client.get("/auth/sign-in", params={"next": next_path}, follow_redirects=False)
    assert start.status_code == 303, start.text
    authorize = urlsplit(start.headers["location"])
    form = {**dict(parse_qsl(authorize.query)), "username": who[0], "password": who[1]}
    answer = httpx.post(f"{authorize.scheme}://{authorize.netloc}{authorize.path}", data=form,
                        verify=ssl_context(info))
    assert answer.status_code == 302, answer.text
    back = urlsplit(answer.headers["location"])
    # Sent by hand: a Secure cookie (https behind a proxy) would not go back over plain http.
    started = SimpleCookie()
    for header in start.headers.get_list("set-cookie"):
        started.load(header)
    cookie = "; ".join(f"{name}={morsel.value}" for name, morsel in started.items())
    return client.get(f"{back.path}?{back.query}", headers={"Cookie": cookie},
                      follow_redirects=False)


SiteFactory = Callable[..., Site]


@pytest.fixture
def make_site(tmp_path: Path, emulator: EmulatorInfo) -> Iterator[SiteFactory]:
    """Build the app for settings overrides; ``base_url`` and ``headers`` go to the client."""
    opened: list[tuple[TestClient, Engine]] = []

    def make(*, base_url: str = "http://127.0.0.1", headers: dict[str, str] | None = None,
             **overrides: Any) -> Site:
        settings = dashboard_settings(tmp_path / f"data{len(opened)}", emulator, **overrides)
        engine = Engine(settings)
        engine.catalog.migrate()
        client = TestClient(create_app(settings, engine=engine), base_url=base_url,
                            headers=headers)
        client.__enter__()
        opened.append((client, engine))
        return Site(client.app, engine, client, emulator)  # type: ignore[arg-type]

    yield make
    for client, engine in opened:
        client.__exit__(None, None, None)
        engine.stop()


@pytest.fixture
def site(make_site: SiteFactory) -> Site:
    return make_site()


@pytest.fixture
def operator_site(site: Site) -> Site:
    assert site.sign_in(OPERATOR).status_code == 303
    return site


@pytest.fixture
def reader_site(site: Site) -> Site:
    assert site.sign_in(READER).status_code == 303
    return site
