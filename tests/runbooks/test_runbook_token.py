"""The stdlib runbook gets its token from whichever managed-identity endpoint the runtime has."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tenantops.emulator.directory import API_CLIENT_ID
from tenantops.emulator.server import EmulatorServer
from tests.emulator.helpers import act_as, claims_of

RUNBOOK = Path(__file__).parents[2] / "runbooks" / "onboard_tenant.py"


def load_runbook() -> ModuleType:
    spec = importlib.util.spec_from_file_location("onboard_tenant", RUNBOOK)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["onboard_tenant"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("runtime", ["automation", "app-service", "msi", "imds"])
def test_runbook_gets_api_audience_token_in_each_runtime(
    monkeypatch: pytest.MonkeyPatch, emulator_server: EmulatorServer, runtime: str
) -> None:
    act_as(monkeypatch, emulator_server, "aa-onboarding", runtime)
    token = load_runbook().get_token(API_CLIENT_ID, None)
    assert claims_of(token)["aud"] == API_CLIENT_ID


def test_runbook_explains_the_vague_500_with_the_real_cause(
    monkeypatch: pytest.MonkeyPatch, emulator_server: EmulatorServer
) -> None:
    act_as(monkeypatch, emulator_server, "aa-onboarding", "automation")
    runbook = load_runbook()
    with pytest.raises(runbook.RunbookError) as error:
        runbook.get_token("api://billing", None)
    message = str(error.value)
    assert error.value.exit_code == 3
    assert "HTTP 500" in message
    assert "AADSTS501051" in message
    assert "no app role on the API" in message


def test_runbook_refuses_a_scope_as_client_id(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        load_runbook().parse(["--api-url", "https://x", "--client-id",
                              f"api://{API_CLIENT_ID}/Tenants.Write", "--slug", "acme",
                              "--domain", "acme.example.com", "--admin-email", "a@b.c"])
    assert exit_info.value.code == 2
    assert "AADSTS500011" in capsys.readouterr().err


def test_runbook_accepts_app_id_uri_as_client_id() -> None:
    args = load_runbook().parse(["--api-url", "https://x", "--client-id", f"api://{API_CLIENT_ID}",
                                 "--slug", "acme", "--domain", "acme.example.com",
                                 "--admin-email", "a@b.c"])
    assert args.client_id == f"api://{API_CLIENT_ID}"
