"""function_app.py: the FastAPI app behind ``AsgiFunctionApp``, invoked the way the Functions
host invokes it (an ``azure.functions.HttpRequest``), answers exactly as under a plain ASGI
client; the generated bindings are the ones the host must index; the timer keeps the worker
running."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import azure.functions as func
import pytest
from azure.functions.timer import TimerRequest
from fastapi import FastAPI

from tenantops.config import Settings
from tenantops.emulator.server import EmulatorServer
from tenantops.hosting import (
    HTTP_FUNCTION,
    TIMER_SCHEDULE,
    WORKER_FUNCTION,
    EngineWorker,
    build_function_app,
    instance_settings,
)
from tests.auth.support import API_CLIENT_ID, ARM, Api, api_for, mi_token, settings_for

ROOT = Path(__file__).resolve().parents[2]


class CountingWorker:
    def __init__(self) -> None:
        self.calls = 0

    def ensure_running(self) -> int:
        self.calls += 1
        return 2


@dataclass
class Hosted:
    function_app: func.AsgiFunctionApp
    functions: dict[str, Any]
    api: FastAPI
    worker: CountingWorker

    def invoke(self, method: str, path: str, headers: dict[str, str]) -> func.HttpResponse:
        request = func.HttpRequest(method=method, url=f"https://tenantops-func.azurewebsites.net"
                                   f"{path}", headers=headers, body=b"")
        handler = self.functions[HTTP_FUNCTION].get_user_function()

        async def call() -> func.HttpResponse:
            response: func.HttpResponse = await handler(request, None)
            return response

        return anyio.run(call)


@pytest.fixture(scope="module")
def hosted(emulator_server: EmulatorServer) -> Iterator[Hosted]:
    settings = settings_for(emulator_server.info)
    api = api_for(settings)
    worker = CountingWorker()
    app = build_function_app(settings, api=api, worker=worker)
    functions = {str(f.get_function_name()): f for f in app.get_functions()}
    yield Hosted(app, functions, api, worker)
    api.state.authenticator.validator.jwks.close()
    # AsgiFunctionApp.__del__ runs the app's shutdown with asyncio.run() when the app was
    # started; if the object is collected later, inside another test's event loop, that
    # fails there. Shut it down here, while no loop runs, so __del__ has nothing to do.
    if app.startup_task_done:
        anyio.run(app.middleware.notify_shutdown)
        app.startup_task_done = False


def test_the_function_app_has_one_anonymous_http_function_and_one_timer(hosted: Hosted) -> None:
    bindings = {name: json.loads(f.get_function_json())["bindings"]
                for name, f in hosted.functions.items()}

    assert set(bindings) == {HTTP_FUNCTION, WORKER_FUNCTION}
    http_in = bindings[HTTP_FUNCTION][0]
    assert http_in["type"] == "httpTrigger"
    assert http_in["authLevel"] == "ANONYMOUS"
    assert http_in["route"] == "/{*route}"
    assert set(http_in["methods"]) == {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD",
                                       "OPTIONS"}
    assert bindings[HTTP_FUNCTION][1] == {"direction": "OUT", "type": "http", "name": "$return"}
    assert bindings[WORKER_FUNCTION] == [{
        "direction": "IN", "type": "timerTrigger", "name": "timer",
        "schedule": TIMER_SCHEDULE, "runOnStartup": True, "useMonitor": False}]


def test_host_json_keeps_the_api_route_prefix() -> None:
    with open(ROOT / "host.json") as handle:
        host = json.load(handle)
    assert host["version"] == "2.0"
    assert host["extensions"]["http"]["routePrefix"] == "api"


Case = tuple[str, str, str]  # id, path, token kind

CASES: list[Case] = [
    ("health", "/api/health", "none"),
    ("whoami-without-token", "/api/whoami", "none"),
    ("whoami-with-managed-identity-token", "/api/whoami", "good"),
    ("whoami-with-arm-audience-token", "/api/whoami", "arm"),
    ("role-route-without-the-role", "/api/_probe/write", "no-role"),
    ("role-route-with-the-role", "/api/_probe/write", "good"),
    ("unknown-route", "/api/nothing-here", "good"),
    ("outside-the-route-prefix", "/whoami", "none"),
]


def _headers(server: EmulatorServer, kind: str) -> dict[str, str]:
    identity, resource = {"good": ("aa-onboarding", API_CLIENT_ID),
                          "arm": ("aa-onboarding", ARM),
                          "no-role": ("uami-no-role", API_CLIENT_ID)}.get(kind, ("", ""))
    if not identity:
        return {}
    return {"Authorization": f"Bearer {mi_token(server, identity, resource)}"}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_routing_and_authentication_match_a_plain_asgi_client(
    hosted: Hosted, emulator_server: EmulatorServer, case: Case
) -> None:
    _, path, kind = case
    headers = _headers(emulator_server, kind)

    through_functions = hosted.invoke("GET", path, headers)
    plain = Api(hosted.api).get(path, list(headers.items()))

    assert through_functions.status_code == plain.status_code
    assert through_functions.headers.get("WWW-Authenticate") == \
        plain.headers.get("WWW-Authenticate")
    assert json.loads(through_functions.get_body() or b"null") == (
        plain.json() if plain.content else None)


def test_rejections_through_the_function_carry_the_challenge(
    hosted: Hosted, emulator_server: EmulatorServer
) -> None:
    missing = hosted.invoke("GET", "/api/whoami", {})
    wrong = hosted.invoke("GET", "/api/whoami", _headers(emulator_server, "arm"))
    forbidden = hosted.invoke("GET", "/api/_probe/write", _headers(emulator_server, "no-role"))

    assert missing.status_code == 401
    assert f'resource_id="{API_CLIENT_ID}"' in missing.headers["WWW-Authenticate"]
    assert wrong.status_code == 401
    assert 'error="invalid_token"' in wrong.headers["WWW-Authenticate"]
    assert forbidden.status_code == 403
    assert 'error="insufficient_scope"' in forbidden.headers["WWW-Authenticate"]


def test_the_timer_keeps_the_worker_running(hosted: Hosted) -> None:
    timer = hosted.functions[WORKER_FUNCTION].get_user_function()

    timer(TimerRequest(past_due=True))
    timer(TimerRequest())

    assert hosted.worker.calls == 2


def test_each_instance_is_its_own_executor_unless_one_is_configured(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEBSITE_INSTANCE_ID", raising=False)
    instance = "a6cf2d1b9e8f7c3d5b4a2e1f0c9d8b7a6e5f4c3d2b1a0f9e8d7c6b5a4f3e2d1c"
    default = Settings(data_dir=tmp_path)
    assert EngineWorker(default).settings.engine.executor_id == "local"  # not App Service
    chosen = instance_settings(default, {"WEBSITE_INSTANCE_ID": instance})
    assert chosen.engine.executor_id == "func-a6cf2d1b9e8f7c3d"
    assert chosen.engine.worker_timeout_seconds == default.engine.worker_timeout_seconds
    assert default.engine.executor_id == "local"  # the original is left alone
    configured = Settings(data_dir=tmp_path, engine={"executor_id": "local"})
    assert instance_settings(configured, {"WEBSITE_INSTANCE_ID": instance}) is configured


def test_function_app_module_builds_without_io(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    monkeypatch.setenv("TENANTOPS_AUTH__TENANT_ID", "11111111-1111-1111-1111-111111111111")
    monkeypatch.setenv("TENANTOPS_AUTH__CLIENT_ID", API_CLIENT_ID)
    spec = importlib.util.spec_from_file_location("function_app", ROOT / "function_app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    assert isinstance(module.app, func.AsgiFunctionApp)
