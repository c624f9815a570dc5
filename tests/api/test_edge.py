"""The request edge (issue 12 §3): credentials and the route's role are checked before a byte of
the body is read; bodies over ``api.max_body_bytes`` get 413 without being buffered, for the
API's JSON and the dashboard's forms; the public metadata route says what to request.

Bodies are streamed from generators that count what the app pulled, so "not read" is measured,
not assumed; one test sends a real 100 MB Content-Length over a socket and never the body.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from starlette.types import Message

from tenantops.config import Settings
from tenantops.emulator.server import EmulatorServer
from tests.auth.support import (
    API_CLIENT_ID,
    Forge,
    api_for,
    auth_settings,
    parse_challenge,
)

LIMIT = 4096
CHUNK = 1024


@dataclass
class Body:
    """A streamed request body of ``chunks`` chunks; ``pulled`` counts what the app read."""

    chunks: int
    chunk: bytes = b"x" * CHUNK
    pulled: int = field(default=0)

    async def stream(self) -> AsyncIterator[bytes]:
        for _ in range(self.chunks):
            self.pulled += 1
            yield self.chunk


@pytest.fixture(scope="module")
def app(emulator_server: EmulatorServer, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[FastAPI]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("edge"),
                        auth=auth_settings(emulator_server.info),
                        api={"max_body_bytes": LIMIT})
    application = api_for(settings)
    yield application
    application.state.authenticator.validator.jwks.close()


@pytest.fixture(scope="module")
def writer(emulator_server: EmulatorServer) -> str:
    return Forge(emulator_server).token()


def call(app: FastAPI, method: str, path: str, *, token: str | None = None,
         content: bytes | Body | None = None, headers: dict[str, str] | None = None
         ) -> httpx.Response:
    sent = dict(headers or {})
    if token:
        sent["Authorization"] = f"Bearer {token}"

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tenantops.test") as c:
            body = content.stream() if isinstance(content, Body) else content
            return await c.request(method, path, content=body, headers=sent)

    return anyio.run(go)


def test_invalid_json_without_a_token_gets_401_not_422(app: FastAPI) -> None:
    response = call(app, "POST", "/api/tenants", content=b"{not json",
                    headers={"Content-Type": "application/json"})
    assert response.status_code == 401
    assert response.json()["error"] == "missing_token"


def test_a_huge_body_without_a_token_gets_401_without_being_read(app: FastAPI) -> None:
    body = Body(chunks=100_000)  # 100 MB if anyone read it
    response = call(app, "POST", "/api/tenants", content=body,
                    headers={"Content-Type": "application/json"})
    assert response.status_code == 401
    assert body.pulled == 0


def test_a_writer_posting_invalid_json_gets_the_422_that_names_the_body(
    app: FastAPI, writer: str
) -> None:
    response = call(app, "POST", "/api/tenants", token=writer, content=b"{not json",
                    headers={"Content-Type": "application/json"})
    assert response.status_code == 422


def test_a_streamed_body_over_the_limit_gets_413_without_being_buffered(
    app: FastAPI, writer: str
) -> None:
    body = Body(chunks=10_000)
    response = call(app, "POST", "/api/tenants", token=writer, content=body,
                    headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    problem = response.json()
    assert problem["error"] == "request_too_large"
    assert problem["error_description"].startswith(
        f"the request body is longer than {LIMIT} bytes ({LIMIT + CHUNK} had arrived when "
        f"reading stopped); this app reads at most {LIMIT} bytes (api.max_body_bytes")
    assert problem["details"] == [{"field": "body", "value": LIMIT + CHUNK,
                                   "rule": f"at most {LIMIT} bytes"}]
    assert body.pulled == LIMIT // CHUNK + 1


def test_a_declared_length_over_the_limit_gets_413_at_once(app: FastAPI, writer: str) -> None:
    response = call(app, "POST", "/api/tenants", token=writer, content=b"{" * (LIMIT + 1),
                    headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error_description"].startswith(
        f"the request body is declared as {LIMIT + 1} bytes (Content-Length)")


def test_a_body_at_the_limit_is_read(app: FastAPI, writer: str) -> None:
    response = call(app, "POST", "/api/tenants", token=writer,
                    content=b" " * (LIMIT - 2) + b"[]",
                    headers={"Content-Type": "application/json"})
    assert response.status_code == 422  # read and parsed: a list is not a tenant spec


def test_a_content_length_that_is_not_a_number_gets_400(app: FastAPI, writer: str) -> None:
    async def go() -> tuple[int, bytes]:
        status: list[int] = []
        sent: list[bytes] = []

        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            elif message["type"] == "http.response.body":
                sent.append(message.get("body", b""))

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "POST", "path": "/api/tenants", "raw_path": b"/api/tenants",
                 "query_string": b"", "root_path": "", "scheme": "http",
                 "server": ("tenantops.test", 80), "client": ("127.0.0.1", 1),
                 "headers": [(b"authorization", f"Bearer {writer}".encode()),
                             (b"content-length", b"12abc")]}
        await app(scope, receive, send)
        return status[0], b"".join(sent)

    status, body = anyio.run(go)
    assert status == 400
    assert json.loads(body)["details"][0]["field"] == "Content-Length"


@pytest.mark.parametrize("path", ["/api/no-such-route", "/api/runs/r1/retry", "/api"])
def test_any_api_path_without_a_token_gets_the_challenge_whatever_the_method(
    app: FastAPI, path: str
) -> None:
    response = call(app, "GET", path)
    assert response.status_code == 401
    assert parse_challenge(response.headers["www-authenticate"])["resource_id"] == API_CLIENT_ID


def test_an_unknown_api_path_with_a_token_is_404(app: FastAPI, writer: str) -> None:
    assert call(app, "GET", "/api/no-such-route", token=writer).status_code == 404


def test_the_metadata_route_is_public_and_says_what_to_request(
    app: FastAPI, emulator_server: EmulatorServer
) -> None:
    response = call(app, "GET", "/api/meta")
    assert response.status_code == 200
    info = emulator_server.info
    assert response.json() == {
        "service": "tenantops", "version": response.json()["version"],
        "audience": API_CLIENT_ID, "audiences": [API_CLIENT_ID, f"api://{API_CLIENT_ID}"],
        "scope": f"api://{API_CLIENT_ID}/.default", "tenant_id": info.tenant_id,
        "authority": info.authority,
        "authorization_uri": f"{info.authority}/{info.tenant_id}/oauth2/authorize",
        "roles": ["Tenants.Read", "Tenants.Write", "Tenants.Delete"]}
    challenge = parse_challenge(call(app, "GET", "/api/whoami").headers["www-authenticate"])
    assert challenge["resource_id"] == response.json()["audience"]
    assert challenge["authorization_uri"] == response.json()["authorization_uri"]


def test_a_dashboard_form_over_the_limit_gets_413_without_being_buffered(app: FastAPI) -> None:
    body = Body(chunks=1_000, chunk=b"slug=" + b"a" * (CHUNK - 5))
    response = call(app, "POST", "/onboard", content=body,
                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 413
    assert response.text.startswith("413 Request Entity Too Large: the request body is longer "
                                    f"than {LIMIT} bytes")
    assert body.pulled == LIMIT // CHUNK + 1


@pytest.fixture(scope="module")
def live(app: FastAPI) -> Iterator[tuple[str, int]]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False,
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120  # readiness, on a loaded machine
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped before it served"
        assert time.monotonic() < deadline, "uvicorn did not start serving within 120 s"
        time.sleep(0.01)
    try:
        yield sock.getsockname()
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        sock.close()


def _status_before_sending_the_body(address: tuple[str, int], headers: str) -> int:
    """Send only the head of a 100 MB request; the answer must come without the body."""
    with socket.create_connection(address, timeout=60) as conn:
        conn.sendall((f"POST /api/tenants HTTP/1.1\r\nHost: tenantops.test\r\n"
                      f"Content-Type: application/json\r\nContent-Length: {100 << 20}\r\n"
                      f"{headers}\r\n").encode())
        head = conn.recv(4096).decode("latin-1")
    return int(head.split(" ", 2)[1])


def test_a_100_mb_request_without_a_token_is_answered_before_its_body_is_sent(
    live: tuple[str, int]
) -> None:
    assert _status_before_sending_the_body(live, "") == 401


def test_a_100_mb_request_with_a_token_is_answered_413_before_its_body_is_sent(
    live: tuple[str, int], writer: str
) -> None:
    assert _status_before_sending_the_body(live, f"Authorization: Bearer {writer}\r\n") == 413


def test_the_limit_is_a_setting_with_a_default_of_32_kib(tmp_path: Path) -> None:
    assert Settings().api.max_body_bytes == 32 * 1024
