"""The CLI against an API that hiccups (issue 20 §4): ``onboard --wait`` rides out 503s and
dropped connections while it follows a run, gives up with exit code 6 only when ``--timeout``
runs out, and an unreachable catalog or identity provider is exit code 6, not 1 or 3.

The emulator and the API (with its worker) are separate processes; a small proxy of this test
between the CLI and the API answers 503 or drops the connection on the run's polls when told.
"""

from __future__ import annotations

import re
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import uvicorn

from tenantops.api import create_app
from tenantops.config import Settings
from tenantops.emulator.server import EmulatorInfo
from tenantops.provisioning.engine import Engine
from tests.auth.support import auth_settings
from tests.support.processes import (
    PYTHON_TENANTOPS,
    Process,
    clean_environment,
    emulator_env,
    start_api,
    start_emulator,
)

pytestmark = pytest.mark.integration


class FlakyProxy:
    """Forwards to ``upstream``; while ``faults`` is above 0, each GET of a run is answered
    with ``fault`` ("503": a 503 with Retry-After: 0; "drop": the connection closed without an
    answer) and counts ``faults`` down. ``forever`` keeps faulting."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/").removesuffix("/api")
        self.faults = 0
        self.fault = "503"
        self.forever = False
        self.faulted = 0
        self.lock = threading.Lock()
        self.http = httpx.Client(timeout=60)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _forward(self) -> None:
                if proxy._take_fault(self.command, self.path):
                    if proxy.fault == "drop":
                        self.connection.shutdown(socket.SHUT_RDWR)
                        self.close_connection = True
                        return
                    problem = (b'{"error":"catalog_unavailable","error_description":"the '
                               b'catalog failed: connection refused","details":[]}')
                    self.send_response(503)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Retry-After", "0")
                    self.send_header("Content-Length", str(len(problem)))
                    self.end_headers()
                    self.wfile.write(problem)
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "content-length", "connection")}
                answer = proxy.http.request(self.command, proxy.upstream + self.path,
                                            content=body, headers=headers)
                self.send_response(answer.status_code)
                for key, value in answer.headers.items():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection",
                                           "content-encoding"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_POST = do_DELETE = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/api"

    def _take_fault(self, method: str, path: str) -> bool:
        if method != "GET" or not path.startswith("/api/runs/"):
            return False
        with self.lock:
            if self.forever or self.faults > 0:
                self.faults -= 1
                self.faulted += 1
                return True
        return False

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.http.close()


@dataclass
class Stack:
    data_dir: Path
    info: EmulatorInfo
    api_url: str
    env: dict[str, str]
    proxy: FlakyProxy

    def tenantops(self, *args: str, api_url: str | None = None,
                  env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        caller = env or {**self.env, **emulator_env(self.data_dir, "ops-admin", "app-service",
                                                    self.env)}
        return subprocess.run(
            [*PYTHON_TENANTOPS, "--data-dir", str(self.data_dir), *args,
             "--api-url", api_url or self.proxy.url],
            capture_output=True, text=True, env=caller, timeout=300)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("hiccups") / "data"
    data_dir.mkdir()
    env = clean_environment({"TENANTOPS_PROVIDERS__DNS__PORT": "0",
                             "TENANTOPS_PROVIDERS__WEBHOST__PORT": "0",
                             "TENANTOPS_PROVIDERS__WEBHOST__APP_PORT": "0"})
    processes: list[Process] = []
    proxy: FlakyProxy | None = None
    try:
        emulator, info = start_emulator(data_dir, env)
        processes.append(emulator)
        api, url = start_api(data_dir, info, env, worker=True)
        processes.append(api)
        proxy = FlakyProxy(url)
        yield Stack(data_dir, info, url, env, proxy)
    finally:
        if proxy is not None:
            proxy.close()
        for process in reversed(processes):
            process.stop()


def onboard(stack: Stack, slug: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return stack.tenantops("onboard", slug, "--domain", f"{slug}.example.test",
                           "--admin-email", f"admin@{slug}.example.test", *extra)


@pytest.mark.parametrize("fault", ["503", "drop"])
def test_onboard_wait_rides_out_a_briefly_unavailable_api_and_exits_0(
    stack: Stack, fault: str,
) -> None:
    stack.proxy.fault, stack.proxy.faults, stack.proxy.faulted = fault, 3, 0

    result = onboard(stack, f"ride-{fault}")

    assert result.returncode == 0, result.stdout + result.stderr
    assert stack.proxy.faulted == 3
    assert "trying again until --timeout" in result.stderr
    assert "the API answers again after" in result.stderr
    assert result.stdout.rstrip().endswith("succeeded")


def test_onboard_wait_gives_up_with_exit_6_when_the_api_stays_unavailable(stack: Stack) -> None:
    stack.proxy.fault, stack.proxy.forever = "503", True
    try:
        result = onboard(stack, "stays-down", "--timeout", "3")
    finally:
        stack.proxy.forever = False

    assert result.returncode == 6, result.stdout + result.stderr
    assert "answered 503" in result.stderr
    assert "still unavailable" in result.stderr
    assert "when --timeout ran out" in result.stderr
    assert re.search(r"follow it again with 'tenantops runs show \w+ --wait'", result.stderr)
    shown = stack.tenantops("runs", "show", "--tenant", "stays-down", "--wait",
                            api_url=stack.api_url)
    assert shown.returncode == 0, shown.stderr  # the run went on without the CLI


def test_an_unavailable_catalog_is_exit_6_naming_it(
    stack: Stack, tmp_path: Path,
) -> None:
    """A real API whose catalog (PostgreSQL) cannot be reached answers 503."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    settings = Settings(data_dir=tmp_path, auth=auth_settings(stack.info),
                        catalog={"url": f"postgresql://tenantops@127.0.0.1:{port}/tenantops"})
    engine = Engine(settings)  # not started: it only records runs, and cannot
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    server = uvicorn.Server(uvicorn.Config(create_app(settings, engine=engine),
                                           log_level="critical", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            thread.join(timeout=0.05)
        result = stack.tenantops("tenants", "list",
                                 api_url=f"http://127.0.0.1:{sock.getsockname()[1]}/api")
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
        engine.catalog.close()

    assert result.returncode == 6, result.stdout + result.stderr
    assert "answered 503" in result.stderr
    assert "catalog" in result.stderr


def test_an_unreachable_identity_provider_is_exit_6(stack: Stack) -> None:
    caller = {**stack.env, **emulator_env(stack.data_dir, "ops-admin", "app-service", stack.env)}
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    caller["IDENTITY_ENDPOINT"] = f"http://127.0.0.1:{port}/msi/token"

    result = stack.tenantops("tenants", "list", env=caller)

    assert result.returncode == 6, result.stdout + result.stderr
    assert "identity provider did not answer" in result.stderr
