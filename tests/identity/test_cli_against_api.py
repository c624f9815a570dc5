"""The CLI against a running tenantops API (issue 13 §1, §3, §5, §7), through the real commands:
every command finds the audience without --audience (POST-only routes too), an API that is not
running is "unreachable" (exit 6, the URL named), --api-url works with or without /api, and
the server logs no refusal for the CLI's discovery."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send
from typer.testing import CliRunner

from tenantops.api import create_app
from tenantops.cli.main import app
from tenantops.config import Settings
from tenantops.emulator.server import EmulatorServer
from tests.auth.support import auth_settings
from tests.identity.conftest import ActAs
from tests.support.http_servers import reply, serve

runner = CliRunner()


@dataclass
class Counting:
    """Counts the requests that reach the API, by path."""

    app: ASGIApp
    paths: list[str] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.paths.append(f"{scope['method']} {scope['path']}")
        await self.app(scope, receive, send)


class Refusals(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@dataclass
class LiveApi:
    root: str
    counting: Counting
    refusals: Refusals


@pytest.fixture(scope="module")
def live_api(emulator_server: EmulatorServer, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[LiveApi]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("cli-api"),
                        auth=auth_settings(emulator_server.info), log_level="WARNING")
    api = create_app(settings)
    api.state.engine.catalog.migrate()  # as 'tenantops serve --no-worker' does
    counting = Counting(api)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(uvicorn.Config(counting, log_config=None, access_log=False,
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped before it served"
        assert time.monotonic() < deadline, "uvicorn did not start serving within 120 s"
        time.sleep(0.01)
    refusals = Refusals()
    auth_log = logging.getLogger("tenantops.auth")
    level = auth_log.level
    auth_log.addHandler(refusals)
    auth_log.setLevel(logging.INFO)  # refusals are INFO, whatever the root logger says
    try:
        yield LiveApi(f"http://127.0.0.1:{sock.getsockname()[1]}", counting, refusals)
    finally:
        auth_log.removeHandler(refusals)
        auth_log.setLevel(level)
        server.should_exit = True
        thread.join(timeout=60)
        sock.close()
        api.state.authenticator.validator.jwks.close()
        api.state.engine.catalog.close()


@pytest.fixture
def operator(act_as: ActAs, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An Automation job's identity with Tenants.Read and Tenants.Write, and its own cache."""
    act_as("aa-onboarding", "automation")
    cache = tmp_path / "cache"
    monkeypatch.setenv("TENANTOPS_IDENTITY__CACHE_DIR", str(cache))
    return cache


@pytest.mark.parametrize("action", ["retry", "cancel"])
def test_runs_retry_and_cancel_find_the_audience_without_audience_option(
    live_api: LiveApi, operator: Path, action: str
) -> None:
    result = runner.invoke(app, ["runs", action, "no-such-run", "--api-url",
                                 f"{live_api.root}/api"])
    assert result.exit_code == 4, result.output
    assert "no run with ID 'no-such-run'" in result.stderr
    assert "audience" not in result.stderr


@pytest.mark.parametrize("suffix", ["", "/", "/api", "/api/"])
def test_api_url_is_accepted_with_or_without_api(live_api: LiveApi, operator: Path,
                                                 suffix: str) -> None:
    result = runner.invoke(app, ["tenants", "list", "--json",
                                 "--api-url", f"{live_api.root}{suffix}"])
    assert result.exit_code == 0, result.output
    assert '"total"' in result.stdout


def test_the_cli_learns_the_audience_once_and_the_server_logs_no_refusal(
    live_api: LiveApi, operator: Path
) -> None:
    before = len(live_api.counting.paths)
    live_api.refusals.messages.clear()
    for _ in range(3):
        result = runner.invoke(app, ["tenants", "list", "--api-url", live_api.root])
        assert result.exit_code == 0, result.output
    asked = live_api.counting.paths[before:]
    assert asked == ["GET /api/meta"] + ["GET /api/tenants"] * 3
    assert [m for m in live_api.refusals.messages if "request refused" in m] == []
    assert (operator / "audiences.json").is_file()


def test_a_call_without_a_token_is_still_logged_as_a_refusal(live_api: LiveApi) -> None:
    live_api.refusals.messages.clear()
    assert httpx.get(f"{live_api.root}/api/tenants").status_code == 401
    assert any("request refused (401 MissingTokenError)" in m
               for m in live_api.refusals.messages)


def test_an_api_that_is_not_running_is_unreachable_exit_6_naming_the_url(
    operator: Path,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = runner.invoke(app, ["tenants", "list", "--api-url", f"http://127.0.0.1:{port}"])
    assert result.exit_code == 6, result.output
    assert result.stderr.startswith(
        f"error: the API is unreachable: GET http://127.0.0.1:{port}/api/meta failed "
        "(ConnectError: ")
    assert "audience" not in result.stderr


def test_call_reports_an_unreachable_api_with_exit_6(operator: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = runner.invoke(app, ["call", "GET", f"http://127.0.0.1:{port}/api/whoami"])
    assert result.exit_code == 6
    assert "the API is unreachable" in result.stderr


def test_call_refuses_an_advertised_arm_audience_with_exit_3(operator: Path) -> None:
    challenge = {"WWW-Authenticate":
                 'Bearer realm="x", resource_id="https://management.azure.com/"'}
    with serve(reply(401, challenge)) as (url, asked):
        result = runner.invoke(app, ["call", "GET", f"{url}/api/whoami"])
    assert result.exit_code == 3
    assert "which is Azure Resource Manager" in result.stderr
    assert all(path.endswith("auth=False") for path in asked)
