"""Liveness and readiness: ``/api/health`` answers while the process lives; ``/api/health/
ready`` tells the truth about the catalog and the system database, within a short timeout,
and says nothing an anonymous caller should not learn (no URL, host, user or password)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tenantops.api.main import create_app
from tenantops.config import Settings
from tenantops.provisioning import Engine

from ..provisioning.conftest import fast_settings

AUTH = {"tenant_id": "8f5e1f8a-1d2b-4c3d-9e4f-5a6b7c8d9e0f",
        "client_id": "3c5f2a1e-8d7b-4f6a-9c0e-1b2d3e4f5a6b"}


def client_for(settings: Settings, engine: Engine | None = None) -> TestClient:
    return TestClient(create_app(settings, engine=engine or Engine(settings)))


def assert_reveals_nothing(body: Any, *secrets: str) -> None:
    text = str(body)
    for secret in (*secrets, socket.gethostname()):
        assert secret not in text, f"{secret!r} in {text}"


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never answers (a hung database)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    listener.close()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_liveness_needs_no_token_and_touches_no_dependency(tmp_path: Path) -> None:
    settings = fast_settings(tmp_path / "data", auth=AUTH, catalog={
        "url": f"postgresql://tenantops:hunter2@127.0.0.1:{closed_port()}/catalog"})
    with client_for(settings) as client:
        response = client.get("/api/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_ready_when_the_catalog_and_system_database_answer(tmp_path: Path) -> None:
    settings = fast_settings(tmp_path / "data", auth=AUTH)
    engine = Engine(settings)
    engine.start()
    try:
        with client_for(settings, engine) as client:
            response = client.get("/api/health/ready")
    finally:
        engine.stop()
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok", body
    assert {name: check["status"] for name, check in body["checks"].items()} == {
        "catalog": "ok", "system_database": "ok", "workers": "ok", "worker": "ok"}
    assert body["checks"]["workers"]["detail"] == "1 alive"
    assert_reveals_nothing(body, str(tmp_path))


def test_not_ready_while_the_catalog_is_down_and_the_reason_reveals_nothing(
    tmp_path: Path,
) -> None:
    port = closed_port()
    settings = fast_settings(tmp_path / "data", auth=AUTH, catalog={
        "url": f"postgresql://tenantops:hunter2@127.0.0.1:{port}/catalog"})
    with client_for(settings) as client:
        response = client.get("/api/health/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["catalog"] == {"status": "down", "detail": "unreachable",
                                         "seconds": body["checks"]["catalog"]["seconds"]}
    assert body["checks"]["system_database"]["status"] == "ok"
    assert_reveals_nothing(body, "hunter2", "tenantops:", "127.0.0.1", str(port),
                           str(tmp_path))


def test_a_hung_database_is_reported_within_the_timeout_and_probed_once(
    tmp_path: Path, silent_server: int,
) -> None:
    settings = fast_settings(
        tmp_path / "data", auth=AUTH,
        catalog={"url": f"postgresql://tenantops@127.0.0.1:{silent_server}/catalog"},
        engine={"readiness_timeout_seconds": 0.5})
    with client_for(settings) as client:
        first = client.get("/api/health/ready")
        second = client.get("/api/health/ready")
    for response in (first, second):
        assert response.status_code == 503
        assert response.json()["checks"]["catalog"] == {
            "status": "down", "detail": "no answer within 0.5 s", "seconds": None}
    hung = [t for t in threading.enumerate() if t.name == "tenantops-ready-catalog"]
    assert len(hung) == 1, "the second probe started another check of the hung database"


def test_degraded_without_a_live_worker(tmp_path: Path) -> None:
    settings = fast_settings(tmp_path / "data", auth=AUTH)
    engine = Engine(settings)
    engine.catalog.migrate()
    with client_for(settings, engine) as client:
        response = client.get("/api/health/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["workers"] == {
        "status": "degraded", "seconds": body["checks"]["workers"]["seconds"],
        "detail": "no worker has been seen in the last 120 s: runs wait until one starts"}
    assert "worker" not in body["checks"]  # this process runs none
