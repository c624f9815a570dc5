"""``tenantops auth token|decode|doctor`` and ``tenantops call``, end to end through the CLI."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from tenantops.cli.main import app
from tenantops.emulator.directory import API_CLIENT_ID
from tenantops.emulator.server import EmulatorInfo
from tenantops.identity import decode_token
from tests.identity.conftest import ActAs
from tests.identity.fake_api import FakeApi

runner = CliRunner()
JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


def error_of(stderr: str) -> str:
    """The CLI's error, without the in-process emulator's access log lines."""
    return "\n".join(line for line in stderr.splitlines() if "uvicorn.access" not in line)


@pytest.fixture
def api_url(fake_api: FakeApi) -> Iterator[str]:
    with fake_api.serve() as base:
        yield f"{base}/tenants"


def test_auth_token_prints_only_the_token(act_as: ActAs) -> None:
    act_as("aa-onboarding", "automation")
    result = runner.invoke(app, ["auth", "token", "--resource", API_CLIENT_ID])
    assert result.exit_code == 0, result.output
    assert "error" not in result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    assert JWT.fullmatch(lines[0])
    assert decode_token(lines[0]).aud == API_CLIENT_ID


def test_auth_token_decode_prints_claims_not_the_token(act_as: ActAs) -> None:
    act_as("uami-reader", "imds")
    result = runner.invoke(app, ["auth", "token", "--resource", f"api://{API_CLIENT_ID}",
                                 "--decode"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["claims"]["aud"] == f"api://{API_CLIENT_ID}"
    assert data["claims"]["roles"] == ["Tenants.Read"]
    assert data["expiry"].startswith("expires in 24 h")
    assert data["source"].startswith("managed-identity: ")  # which identity was used
    assert not JWT.search(result.output)


def test_auth_token_refuses_a_named_scope_before_asking(act_as: ActAs) -> None:
    act_as("aa-onboarding", "app-service")
    result = runner.invoke(app, ["auth", "token", "--resource", "api://app/some-scope"])
    assert result.exit_code == 1
    assert error_of(result.stderr).startswith("error: audience 'api://app/some-scope' looks like a "
                                    "delegated permission scope")
    assert "AADSTS500011" in result.stderr


def test_auth_token_source_override(act_as: ActAs) -> None:
    act_as("aa-onboarding", "app-service")
    result = runner.invoke(app, ["auth", "token", "--resource", API_CLIENT_ID,
                                 "--source", "client-secret"])
    assert result.exit_code == 1
    assert "identity source 'client-secret' was chosen" in result.stderr


def test_auth_decode_reads_stdin_and_verifies(act_as: ActAs, emulator: EmulatorInfo) -> None:
    act_as("aa-onboarding", "app-service")
    token = runner.invoke(app, ["auth", "token", "--resource", API_CLIENT_ID]).stdout.strip()
    result = runner.invoke(app, ["auth", "decode", "-", "--verify", "--audience", API_CLIENT_ID],
                           input=token)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["header"]["alg"] == "RS256"
    assert data["claims"]["tid"] == emulator.tenant_id
    assert data["verified"].startswith("signature valid (RS256, key ")
    assert data["verified"].endswith(f"not expired; aud is {API_CLIENT_ID}")
    assert token not in result.output


def test_auth_decode_of_garbage_fails_cleanly() -> None:
    result = runner.invoke(app, ["auth", "decode", "not-a-token"])
    assert result.exit_code == 1
    assert error_of(result.stderr).startswith("error: this is not a JWT access token")


def test_call_discovers_the_audience_and_prints_the_body(act_as: ActAs, api_url: str) -> None:
    act_as("aa-onboarding", "arc")
    result = runner.invoke(app, ["call", "GET", api_url])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"tenants": []}


def test_call_explains_a_403_and_exits_non_zero(act_as: ActAs, fake_api: FakeApi,
                                               api_url: str) -> None:
    act_as("uami-no-role", "app-service")
    fake_api.required_role = "Tenants.Write"
    result = runner.invoke(app, ["call", "POST", api_url, "--data", '{"slug": "acme"}'])
    assert result.exit_code == 3  # not allowed, as every command reports a 401/403
    assert error_of(result.stderr).startswith(f"error: POST {api_url} was refused with HTTP 403 "
                                    "(insufficient_scope): this call needs the app role "
                                    "Tenants.Write")
    assert "assign an app role with az rest -m POST" in result.stderr


def test_call_rejects_a_body_that_is_not_json(act_as: ActAs, api_url: str) -> None:
    act_as("aa-onboarding", "app-service")
    result = runner.invoke(app, ["call", "POST", api_url, "--data", "{slug"])
    assert result.exit_code == 2  # invalid input
    assert error_of(result.stderr).startswith("error: --data is not valid JSON")


def test_auth_doctor_exit_code_follows_the_call(act_as: ActAs, fake_api: FakeApi,
                                               api_url: str) -> None:
    act_as("aa-onboarding", "app-service")
    ok = runner.invoke(app, ["auth", "doctor", api_url])
    assert ok.exit_code == 0, ok.output
    assert ok.stdout.rstrip().endswith("answered 200: the call works")
    fake_api.required_role = "Tenants.Delete"
    refused = runner.invoke(app, ["auth", "doctor", api_url, "--json"])
    assert refused.exit_code == 1
    report = json.loads(refused.stdout)
    assert report["ok"] is False
    assert report["steps"][-1]["details"]["status"] == 403


@pytest.mark.parametrize("role", ["Tenants.Read", "Tenants.Delete"])
def test_no_token_or_secret_appears_in_doctor_output_or_logs(
    role: str, act_as: ActAs, fake_api: FakeApi, api_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    env = act_as("aa-onboarding", "app-service")
    fake_api.required_role = role
    caplog.set_level(logging.DEBUG)
    for name in ("azure", "msal", "tenantops", "httpx", "httpcore"):
        caplog.set_level(logging.DEBUG, logger=name)
    outputs = [runner.invoke(app, ["auth", "doctor", api_url]),
               runner.invoke(app, ["auth", "doctor", api_url, "--json"]),
               runner.invoke(app, ["call", "GET", api_url])]
    everything = "\n".join([*(r.output for r in outputs), caplog.text])
    assert "Verdict:" in everything
    assert "Request URL" in caplog.text, "azure-core HTTP logging was not captured"
    assert not JWT.search(everything)
    assert env["IDENTITY_HEADER"] not in everything
    assert "[redacted]" not in outputs[0].stdout, "a finding was mangled by redaction"
