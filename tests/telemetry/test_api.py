"""The API's side of a trace: a server span per request continuing the caller's traceparent,
the run that request opens remembering it, refusals counted by reason, the queue's depth."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from opentelemetry.trace import SpanKind

from tenantops.api import create_app
from tenantops.emulator.directory import API_CLIENT_ID
from tenantops.emulator.server import EmulatorServer
from tenantops.provisioning import Engine
from tests.auth.support import ARM, auth_settings, mi_token
from tests.provisioning.conftest import fast_settings

from .conftest import Traced

pytestmark = pytest.mark.integration

CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"


@pytest.fixture
def client(emulator_server: EmulatorServer, tmp_path: Path) -> Iterator[TestClient]:
    """The API with an engine that is not started: runs are recorded and queued only."""
    settings = fast_settings(tmp_path / "data").model_copy(
        update={"auth": auth_settings(emulator_server.info)})
    engine = Engine(settings)
    engine.catalog.migrate()
    try:
        with TestClient(create_app(settings, engine=engine)) as client:
            yield client
    finally:
        engine.stop()


def writer(server: EmulatorServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {mi_token(server, 'aa-onboarding', API_CLIENT_ID)}"}


def test_the_request_span_continues_the_callers_trace_and_the_run_keeps_it(
        traced: Traced, client: TestClient, emulator_server: EmulatorServer) -> None:
    response = client.post(
        "/api/tenants", headers={**writer(emulator_server),
                                 "traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"},
        json={"slug": "spanned", "display_name": "Spanned", "custom_domain": "www.spanned.test",
              "admin_email": "admin@spanned.test"})
    assert response.status_code == 202, response.text

    [span] = traced.named("POST /api/tenants")
    assert span.kind is SpanKind.SERVER
    assert f"{span.context.trace_id:032x}" == CALLER_TRACE
    assert span.parent is not None
    assert f"{span.parent.span_id:016x}" == CALLER_SPAN
    assert span.attributes is not None
    assert span.attributes["http.route"] == "/api/tenants"
    assert span.attributes["http.response.status_code"] == 202
    assert span.attributes["tenantops.request.id"] == response.headers["x-request-id"]
    engine: Engine = client.app.state.engine  # type: ignore[attr-defined]
    run = engine.get_run(response.json()["run"]["id"])
    assert run.trace_context == f"00-{CALLER_TRACE}-{span.context.span_id:016x}-01"


def test_a_request_without_traceparent_starts_a_trace_and_every_response_has_an_id(
        traced: Traced, client: TestClient) -> None:
    first = client.get("/api/health")
    second = client.get("/api/health")
    ids = {first.headers["x-request-id"], second.headers["x-request-id"]}
    assert len(ids) == 2
    assert all(len(i) == 32 for i in ids)
    spans = traced.named("GET /api/health")
    assert len(spans) == 2
    assert all(s.parent is None for s in spans)


def test_token_refusals_are_counted_by_reason(
        traced: Traced, client: TestClient, emulator_server: EmulatorServer) -> None:
    client.get("/api/tenants")
    client.get("/api/tenants", headers={
        "Authorization": f"Bearer {mi_token(emulator_server, 'aa-onboarding', ARM)}"})
    client.get("/api/tenants", headers={
        "Authorization": f"Bearer {mi_token(emulator_server, 'uami-no-role', API_CLIENT_ID)}"})
    counted = {(a["reason"], a["status"]): p.value
               for a, p in traced.points("tenantops.auth.token_refusals")}
    assert counted == {("MissingTokenError", 401): 1, ("WrongAudienceError", 401): 1,
                       ("MissingRoleError", 403): 1}


def test_queue_depth_counts_runs_waiting_for_a_worker(
        traced: Traced, client: TestClient, emulator_server: EmulatorServer) -> None:
    for slug in ("queued-a", "queued-b"):
        response = client.post("/api/tenants", headers=writer(emulator_server), json={
            "slug": slug, "display_name": slug, "custom_domain": f"www.{slug}.test",
            "admin_email": f"admin@{slug}.test"})
        assert response.status_code == 202, response.text
    depth = {a["status"]: p.value for a, p in traced.points("tenantops.queue.depth")}
    assert depth == {"pending": 2, "running": 0}



def test_an_unrouted_path_names_no_span_and_a_token_in_it_is_redacted(
        traced: Traced, client: TestClient, emulator_server: EmulatorServer) -> None:
    token = mi_token(emulator_server, "aa-onboarding", API_CLIENT_ID)
    assert client.get(f"/api/{token}", headers=writer(emulator_server)).status_code == 404
    [span] = traced.named("GET")
    assert span.attributes is not None
    assert token.split(".")[1] not in str(span.attributes["url.path"])
    assert "http.route" not in span.attributes
