"""Azure Event Grid: the dispatcher publishes every event in the CloudEvents schema to a
fake of the topic's publish API (tests/azure_fake/event_grid.py), with a token for
``https://eventgrid.azure.net``; refusals are retried or parked as the API's answers mean;
and the token comes from a managed identity through the real azure-identity (emulator)."""

from __future__ import annotations

import datetime as dt
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tenantops.catalog import Catalog
from tenantops.config import EventGridSettings, IdentitySettings
from tenantops.emulator.server import EmulatorServer
from tenantops.events import EventDispatcher, EventGridSink
from tenantops.identity import Audience, BearerToken, IdentityCredential, verify_token
from tests.azure_fake.event_grid import FakeEventGrid
from tests.azure_fake.tokens import FakeEntra
from tests.provisioning.conftest import fast_settings, spec_for

HOST = "tenantops-events.westeurope-1.eventgrid.azure.net"
T0 = dt.datetime(2026, 12, 6, 9, 0, tzinfo=dt.timezone.utc)


class EntraTokens:
    """A `TokenProvider` over the fakes' Entra: a token for the audience asked for (or a
    forced one), counting requests."""

    def __init__(self, entra: FakeEntra, audience: str | None = None) -> None:
        self.entra = entra
        self.audience = audience
        self.requests: list[str] = []

    def get_token(self, audience: Audience) -> BearerToken:
        self.requests.append(audience.resource)
        value = self.entra.issue(self.audience or audience.resource)
        return BearerToken(value, int(time.time()) + 3600)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def entra() -> FakeEntra:
    return FakeEntra(time.time)


@pytest.fixture
def grid(entra: FakeEntra) -> FakeEventGrid:
    return FakeEventGrid(HOST, entra.verify)


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    catalog.migrate()
    yield catalog
    catalog.close()


def dispatcher(tmp_path: Path, catalog: Catalog, grid: FakeEventGrid, tokens: Any,
               clock: Clock, **grid_settings: Any) -> tuple[EventDispatcher, httpx.Client]:
    settings = fast_settings(tmp_path, events={
        "event_grid": {"topic_endpoint": grid.endpoint, **grid_settings},
        "retry_initial_seconds": 5, "source": "https://tenantops.contoso.test/api"})
    client = httpx.Client(transport=grid.transport())
    sink = EventGridSink(settings.events.event_grid, source=settings.events.source,
                         client=client, tokens=tokens)
    return EventDispatcher(settings, catalog, executor_id="w", sinks=[sink],
                           clock=clock), client


def onboard(catalog: Catalog, slug: str) -> None:
    run = catalog.open_onboarding(spec_for(slug), requested_by="ops", steps=[]).run
    catalog.finish_run(run.id, "succeeded")


def test_every_event_is_published_in_the_cloudevents_schema(
        tmp_path: Path, catalog: Catalog, grid: FakeEventGrid, entra: FakeEntra) -> None:
    tokens = EntraTokens(entra)
    sender, client = dispatcher(tmp_path, catalog, grid, tokens, Clock())
    try:
        onboard(catalog, "acme")
        onboard(catalog, "bravo")
        while catalog.events.counts()["pending"] or catalog.events.counts()["unrouted"]:
            assert sender.run_once() >= 1
    finally:
        sender.stop()
        client.close()
    outbox = catalog.events.page()
    assert grid.refusals == []
    for slug in ("acme", "bravo"):  # tenants go out side by side, each one in order
        assert [p.event["id"] for p in grid.published if p.event["tenant"] == slug] == [
            e.id for e in outbox if e.tenant_slug == slug]
    assert len(grid.published) == len(outbox) == 4
    first = next(p.event for p in grid.published if p.event["id"] == outbox[0].id)
    assert first["specversion"] == "1.0"
    assert first["source"] == "https://tenantops.contoso.test/api"
    assert first["type"] == "com.tenantops.run.requested"
    assert first["subject"] == "tenants/acme"
    assert first["datacontenttype"] == "application/json"
    assert first["tenant"] == "acme"
    assert first["data"]["run"]["kind"] == "onboard"
    assert tokens.requests == ["https://eventgrid.azure.net"], "one token, reused"
    assert {d.last_status for d in catalog.events.deliveries()} == {200}


def test_a_token_for_another_audience_is_refused_and_retried_not_parked(
        tmp_path: Path, catalog: Catalog, grid: FakeEventGrid, entra: FakeEntra) -> None:
    clock = Clock()
    sender, client = dispatcher(tmp_path, catalog, grid,
                                EntraTokens(entra, audience="https://management.azure.com/"),
                                clock)
    try:
        onboard(catalog, "charlie")
        sender.run_once()
    finally:
        sender.stop()
        client.close()
    (delivery,) = [d for d in catalog.events.deliveries(status="pending") if d.attempts]
    assert delivery.last_status == 401
    assert "EventGrid Data Sender" in (delivery.last_error or "")
    assert delivery.next_attempt_at > clock.now
    assert grid.published == []


@pytest.mark.parametrize(("status", "headers", "parked"), [
    (429, {"Retry-After": "120"}, False),
    (500, {}, False),
    (404, {}, False),
    (400, {}, True),
    (413, {}, True),
])
def test_refusals_are_retried_or_parked_as_the_api_means_them(
        tmp_path: Path, catalog: Catalog, grid: FakeEventGrid, entra: FakeEntra,
        status: int, headers: dict[str, str], parked: bool) -> None:
    clock = Clock()
    sender, client = dispatcher(tmp_path, catalog, grid, EntraTokens(entra), clock)
    grid.fail_next(1, status, headers)
    try:
        onboard(catalog, "delta")
        sender.run_once()
        (delivery,) = [d for d in catalog.events.deliveries() if d.attempts]
        assert (delivery.status == "parked") is parked
        assert delivery.last_status == status
        if status == 429:
            assert delivery.next_attempt_at >= clock.now + dt.timedelta(seconds=120)
        if not parked:
            clock.now = delivery.next_attempt_at
            while catalog.events.counts()["pending"]:
                sender.run_once()
            assert len(grid.published) == 2
    finally:
        sender.stop()
        client.close()


@pytest.mark.parametrize(("event", "problem"), [
    ({"source": "/s", "specversion": "1.0", "type": "t"}, "`id` attribute is required"),
    ({"id": "1", "specversion": "1.0", "type": "t"}, "`source` attribute is required"),
    ({"id": "1", "source": "/s", "specversion": "0.3", "type": "t"}, "specversion"),
    ({"id": 1, "source": "/s", "specversion": "1.0", "type": "t"}, "must be a string"),
    ({"id": "1", "source": "/s", "specversion": "1.0", "type": "t", "time": "yesterday"},
     "RFC 3339"),
    ({"id": "1", "source": "/s", "specversion": "1.0", "type": "t", "data": {},
      "data_base64": "e30="}, "not both"),
])
def test_the_fake_refuses_what_is_not_a_cloudevent(
        grid: FakeEventGrid, entra: FakeEntra, event: dict[str, Any], problem: str) -> None:
    token = entra.issue("https://eventgrid.azure.net")
    response = grid.handle(httpx.Request(
        "POST", f"{grid.endpoint}?api-version=2018-01-01", json=[event],
        headers={"authorization": f"Bearer {token}",
                 "content-type": "application/cloudevents-batch+json; charset=utf-8"}))
    assert response.status_code == 400
    assert problem in response.json()["error"]["message"]


@pytest.mark.parametrize(("change", "status"), [
    ({"params": {"api-version": "2020-06-01"}}, 400),
    ({"headers": {"content-type": "application/json"}}, 400),
    ({"headers": {"authorization": ""}}, 401),
    ({"audience": "https://management.azure.com/"}, 401),
])
def test_the_fake_refuses_a_wrong_version_content_type_or_token(
        grid: FakeEventGrid, entra: FakeEntra, change: dict[str, Any], status: int) -> None:
    token = entra.issue(change.get("audience", "https://eventgrid.azure.net"))
    headers = {"authorization": f"Bearer {token}",
               "content-type": "application/cloudevents-batch+json; charset=utf-8",
               **change.get("headers", {})}
    response = grid.handle(httpx.Request(
        "POST", grid.endpoint, params=change.get("params", {"api-version": "2018-01-01"}),
        json=[{"id": "1", "source": "/s", "specversion": "1.0", "type": "t"}],
        headers=headers))
    assert response.status_code == status


@pytest.mark.integration
def test_the_token_comes_from_a_managed_identity_through_azure_identity(
        tmp_path: Path, catalog: Catalog, emulator_server: EmulatorServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """App Service's managed-identity endpoint (the emulator's), the real azure-identity,
    audience https://eventgrid.azure.net; the fake checks the token with the emulator's
    published keys."""
    info = emulator_server.info
    state = emulator_server.state
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"{info.mi_url}/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", state.host_secret("aa-onboarding"))
    keys = httpx.Client(verify=ssl.create_default_context(cafile=info.ca_bundle))

    def verified(token: str) -> dict[str, Any] | None:
        return dict(verify_token(token, http=keys).claims)

    grid = FakeEventGrid(HOST, verified)
    tokens = IdentityCredential(IdentitySettings(source="managed-identity"),
                                azure_options={"retry_total": 0})
    sender, client = dispatcher(tmp_path, catalog, grid, tokens, Clock())
    try:
        onboard(catalog, "echo")
        while catalog.events.counts()["pending"] or catalog.events.counts()["unrouted"]:
            assert sender.run_once() >= 1
    finally:
        sender.stop()
        client.close()
        keys.close()
    assert len(grid.published) == 2
    identity = state.directory.identity_by_name("aa-onboarding")
    assert identity is not None
    assert {p.publisher for p in grid.published} == {identity.principal_id}


def test_event_grid_settings_turn_the_sink_on(tmp_path: Path) -> None:
    settings = fast_settings(tmp_path, events={"event_grid": {
        "topic_endpoint": f"https://{HOST}/api/events", "filter": ["com.tenantops.tenant.*"]}})
    catalog = Catalog(f"sqlite:///{tmp_path / 'c.sqlite'}")
    sender = EventDispatcher(settings, catalog, executor_id="w")
    try:
        assert [s.name for s in sender.sinks] == ["event-grid"]
        assert isinstance(settings.events.event_grid, EventGridSettings)
    finally:
        sender.stop()
