"""Live updates over Server-Sent Events on a real server (uvicorn on loopback): a change in
the catalog reaches an open page's stream, a reconnect with ``Last-Event-ID`` gets what it
missed at once, a stream without a session is refused, and one watcher serves every page."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from tenantops.api import create_app
from tenantops.catalog import Run
from tenantops.dashboard._app import Dashboard
from tenantops.dashboard._config import resolve
from tenantops.dashboard._live import live_id, sse_event
from tenantops.emulator.server import EmulatorInfo
from tenantops.provisioning import Engine, TenantSpec
from tenantops.provisioning.plan import onboarding_plan
from tests.auth.support import ssl_context
from tests.dashboard.browser import serve_in_thread
from tests.dashboard.conftest import OPERATOR, READER, SiteFactory, dashboard_settings
from tests.support.processes import READY_SECONDS

pytestmark = pytest.mark.integration


@dataclass
class Served:
    base_url: str
    engine: Engine
    dashboard: Dashboard
    client: httpx.Client

    def register(self, slug: str) -> Run:
        spec = TenantSpec(slug=slug, display_name=slug.title(), custom_domain=f"app.{slug}.test",
                          admin_email=f"admin@{slug}.test")
        return self.engine.catalog.open_onboarding(
            spec, requested_by="tests",
            steps=onboarding_plan().templates(self.engine.providers)).run


def signed_in_client(base_url: str, info: EmulatorInfo) -> httpx.Client:
    client = httpx.Client(base_url=base_url, timeout=httpx.Timeout(READY_SECONDS))
    start = client.get("/auth/sign-in", params={"next": "/"})
    assert start.status_code == 303, start.text
    authorize = urlsplit(start.headers["location"])
    form = {**dict(parse_qsl(authorize.query)), "username": OPERATOR[0],
            "password": OPERATOR[1]}
    answer = httpx.post(f"{authorize.scheme}://{authorize.netloc}{authorize.path}", data=form,
                        verify=ssl_context(info))
    assert answer.status_code == 302, answer.text
    back = urlsplit(answer.headers["location"])
    started = SimpleCookie()
    for header in start.headers.get_list("set-cookie"):
        started.load(header)
    callback = client.get(f"{back.path}?{back.query}", headers={
        "Cookie": "; ".join(f"{k}={m.value}" for k, m in started.items())})
    assert callback.status_code == 303, callback.text
    for header in callback.headers.get_list("set-cookie"):
        jar = SimpleCookie()
        jar.load(header)
        for name, morsel in jar.items():
            client.cookies.set(name, morsel.value)
    return client


@pytest.fixture
def served(tmp_path: Path, emulator: EmulatorInfo) -> Iterator[Served]:
    settings = dashboard_settings(tmp_path / "data", emulator, dashboard={"poll_seconds": 0.1})
    engine = Engine(settings)
    engine.catalog.migrate()
    app = create_app(settings, engine=engine)
    try:
        with serve_in_thread(app) as base_url, \
                closing(signed_in_client(base_url, emulator)) as client:
            yield Served(base_url, engine, app.state.dashboard, client)
    finally:
        engine.stop()


def stream_url(html: str) -> str:
    found = re.search(r'data-stream="([^"]+)"', html)
    assert found is not None, "the page names its stream"
    return found.group(1).replace("&amp;", "&")


def events(response: httpx.Response) -> Iterator[dict[str, str]]:
    """Parse SSE messages as a browser would (WHATWG HTML, server-sent events)."""
    message: dict[str, str] = {}
    for line in response.iter_lines():
        if not line:
            if message:
                yield message
            message = {}
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            message[name] = message[name] + "\n" + value if name in message else value


def next_update(response: httpx.Response, showing: str) -> dict[str, str]:
    """The first update that shows ``showing`` (a change may reach the page in more than one
    update: a step's start is two writes). The client's read timeout bounds the wait."""
    seen = []
    for message in events(response):
        if message.get("event") == "update":
            if showing in message["data"]:
                return message
            seen.append(message["id"])
    raise AssertionError(f"the stream ended without an update showing {showing!r} "
                         f"(updates: {seen})")


def test_a_change_reaches_the_open_page_and_a_reconnect_catches_up(served: Served) -> None:
    run = served.register("acme")
    page = served.client.get(f"/runs/{run.id}")
    url = stream_url(page.text)
    assert url.startswith(f"/live/runs/{run.id}?last=")

    with served.client.stream("GET", url) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert stream.headers["cache-control"] == "no-store"
        served.engine.catalog.step_started(run.id, "register_tenant")
        update = next_update(stream, '<li class="step step-running" id="step-register_tenant">')
        assert update["id"] == live_id(update["data"]), "the event ID is the HTML's digest"
        seen = update["id"]
    # What the page had is no longer current: a reconnect with its Last-Event-ID gets the
    # current HTML at once, without a new change.
    served.engine.catalog.step_succeeded(run.id, "register_tenant", {}, {})
    with served.client.stream("GET", url, headers={"Last-Event-ID": seen}) as again:
        caught_up = next_update(again, "")
        assert '<li class="step step-succeeded" id="step-register_tenant">' in caught_up["data"]
        assert caught_up["id"] != seen


def test_lists_and_the_overview_follow_new_runs(served: Served) -> None:
    overview = served.client.get("/")
    with served.client.stream("GET", stream_url(overview.text)) as stream:
        run = served.register("contoso")
        next_update(stream, f'href="/runs/{run.id}"')
    runs = served.client.get("/runs")
    with served.client.stream("GET", stream_url(runs.text)) as stream:
        other = served.register("fabrikam")
        update = next_update(stream, f'href="/runs/{other.id}"')
        assert "Showing 1 to 2 of 2 runs" in update["data"]


def test_a_stream_without_a_session_is_refused(served: Served) -> None:
    run = served.register("acme")
    anonymous = httpx.get(f"{served.base_url}/live/runs/{run.id}", timeout=READY_SECONDS)
    assert anonymous.status_code == 401
    unknown = served.client.get("/live/nowhere")
    assert unknown.status_code == 404
    assert "no page at /nowhere updates live" in unknown.text


def test_one_watcher_serves_every_open_page(served: Served) -> None:
    first, second = served.register("acme"), served.register("contoso")
    urls = [stream_url(served.client.get(f"/runs/{r.id}").text) for r in (first, second)]
    with served.client.stream("GET", urls[0]) as a, served.client.stream("GET", urls[1]) as b:
        # The response starts before its body subscribes: wait for both subscriptions.
        deadline = time.monotonic() + READY_SECONDS
        while served.dashboard.watcher.watching < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert served.dashboard.watcher.watching == 2
        served.engine.catalog.step_started(second.id, "register_tenant")
        next_update(b, '<li class="step step-running" id="step-register_tenant">')
        served.engine.catalog.step_started(first.id, "register_tenant")
        next_update(a, '<li class="step step-running" id="step-register_tenant">')
    # Closed pages let go of the watcher (which stops once nobody watches).
    deadline = time.monotonic() + READY_SECONDS
    while served.dashboard.watcher.watching and time.monotonic() < deadline:
        time.sleep(0.01)
    assert served.dashboard.watcher.watching == 0


def test_sse_messages_carry_multi_line_html_as_data_lines() -> None:
    message = sse_event("update", "<p>\r\none</p>\rtwo", event_id="abc")
    assert message == "event: update\nid: abc\ndata: <p>\ndata: one</p>\ndata: two\n\n"
    assert live_id("<p>x</p>") == live_id("<p>x</p>") != live_id("<p>y</p>")


def test_a_buffering_host_gets_one_update_per_response(make_site: SiteFactory) -> None:
    """stream_mode = once (Azure Functions buffers a response until it ends): the stream
    ends after its first update, and the browser's EventSource reconnects."""
    site = make_site(dashboard={"stream_mode": "once", "poll_seconds": 0.1})
    assert site.sign_in(OPERATOR).status_code == 303
    run = site.register("acme")
    url = stream_url(site.client.get(f"/runs/{run.id}").text)
    site.engine.catalog.step_started(run.id, "register_tenant")
    body = site.client.get(url).text  # ends by itself: the page's HTML is out of date
    messages = body.split("\n\n")
    updates = [m for m in messages if m.startswith("event: update")]
    assert len(updates) == 1
    assert '<li class="step step-running" id="step-register_tenant">' in updates[0]
    assert messages[0] == "retry: 250", "the browser reconnects at once"


def test_stream_mode_auto_is_once_under_azure_functions(tmp_path: Path,
                                                        emulator: EmulatorInfo) -> None:
    settings = dashboard_settings(tmp_path, emulator)
    assert resolve(settings, {"FUNCTIONS_WORKER_RUNTIME": "python"}).stream_once
    assert not resolve(settings, {}).stream_once
    held = dashboard_settings(tmp_path, emulator, dashboard={"stream_mode": "hold"})
    assert not resolve(held, {"FUNCTIONS_WORKER_RUNTIME": "python"}).stream_once


def test_streaming_a_page_without_its_role_is_refused(make_site: SiteFactory) -> None:
    """The stream builds the page with the viewer's roles: a reader gets the audit page's
    refusal, not its records, from /live/audit as from /audit."""
    site = make_site()
    assert site.sign_in(READER).status_code == 303
    refused = site.client.get("/live/audit")
    assert refused.status_code == 403
    assert "Reading the audit trail needs the app role Audit.Read" in refused.text
    assert "text/event-stream" not in refused.headers["content-type"]


def test_streaming_a_page_that_is_not_live_is_refused(make_site: SiteFactory) -> None:
    site = make_site()
    assert site.sign_in(READER).status_code == 303
    for path in ("/live/onboard", "/live/tenants/acme/offboard", "/live/auth/sign-out",
                 "/live/runs/0123/retry", "/live/runs/not-a-run"):
        response = site.client.get(path)
        assert response.status_code == 404, path
