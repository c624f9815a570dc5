"""The stdlib runbook gets its token from whichever managed-identity endpoint the runtime has."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tenantops.emulator.directory import API_CLIENT_ID
from tenantops.emulator.server import EmulatorServer
from tenantops.first_party import first_party_resource
from tests.emulator.helpers import act_as, claims_of
from tests.support.http_servers import reply, serve

RUNBOOK = Path(__file__).parents[2] / "runbooks" / "onboard_tenant.py"


def load_runbook() -> ModuleType:
    spec = importlib.util.spec_from_file_location("onboard_tenant", RUNBOOK)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["onboard_tenant"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("runtime", ["automation", "app-service", "msi", "msi-legacy", "imds"])
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


ARGS = ["--slug", "acme", "--domain", "acme.example.com", "--admin-email", "a@b.c"]


@pytest.mark.parametrize(("client_id", "service"), [
    ("https://management.azure.com/", "Azure Resource Manager"),
    ("https://management.core.windows.net/", "Azure Resource Manager"),
    ("https://management.azure.com/.default", "Azure Resource Manager"),
    ("797f4846-ba00-4fd7-ba43-dac1f8f63013", "Azure Resource Manager"),
    ("https://graph.microsoft.com", "Microsoft Graph"),
    ("https://vault.azure.net", "Azure Key Vault"),
    ("api://AzureADTokenExchange", "Entra workload identity federation (token exchange)"),
], ids=["arm", "arm-classic", "arm-default-scope", "arm-app-id", "graph", "key-vault",
        "token-exchange"])
def test_runbook_says_what_a_microsoft_service_given_as_client_id_is(
    capsys: pytest.CaptureFixture[str], client_id: str, service: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        load_runbook().parse(["--api-url", "https://x", "--client-id", client_id, *ARGS])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert f"--client-id {client_id!r} is {service}, not the tenantops API" in error
    assert "You do not have permission to view this directory or page." in error
    assert "scope" not in error


def test_runbook_services_agree_with_the_first_party_list() -> None:
    for name, service in load_runbook().MICROSOFT_SERVICES.items():
        found = first_party_resource(name)
        assert found is not None, name
        assert found.name == service, name


@pytest.mark.parametrize("url", ["https://func.example.net", "https://func.example.net/",
                                 "https://func.example.net/api", "https://func.example.net/api/",
                                 "https://func.example.net/api/tenants"])
def test_runbook_takes_the_api_url_with_or_without_api(url: str) -> None:
    assert load_runbook().api_root(url) == "https://func.example.net/api"


@pytest.mark.parametrize("url", ["http://func.example.net", "http://10.1.2.3:8000/api"])
def test_runbook_refuses_plain_http_to_another_host(capsys: pytest.CaptureFixture[str],
                                                    url: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        load_runbook().parse(["--api-url", url, "--client-id", API_CLIENT_ID, *ARGS])
    assert exit_info.value.code == 2
    assert "is plain http to another machine" in capsys.readouterr().err


def test_runbook_follows_no_redirect_with_its_token() -> None:
    runbook = load_runbook()
    with serve(reply(200, {}, b"{}")) as (elsewhere, stolen), \
            serve(reply(307, {"Location": f"{elsewhere}/collect"})) as (api, asked), \
            pytest.raises(runbook.RunbookError) as error:
        runbook._api("GET", f"{api}/api/runs/r1", "token-value")
    assert error.value.exit_code == 4
    assert f"answered HTTP 307, redirecting to {elsewhere}/collect" in str(error.value)
    assert asked == ["GET /api/runs/r1 auth=True"]
    assert stolen == []
