"""``tenantops emulator`` as a user runs it: a separate process, then show, env and rotate-keys."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tenantops.cli.main import app
from tenantops.emulator.directory import API_CLIENT_ID
from tenantops.emulator.server import EmulatorInfo, read_info
from tests.emulator.helpers import claims_of
from tests.support.processes import READY_SECONDS

runner = CliRunner()


@pytest.fixture(scope="module")
def emulator_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorInfo]:
    data_dir = tmp_path_factory.mktemp("emulator-process")
    process = subprocess.Popen(
        [sys.executable, "-m", "tenantops", "--data-dir", str(data_dir), "emulator",
         "--port", "0", "--mi-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + READY_SECONDS
        info = None
        while time.monotonic() < deadline:
            info = read_info(data_dir)
            if info is not None and info.pid == process.pid:
                try:
                    httpx.get(f"{info.mi_url}/_emulator/health").raise_for_status()
                    break
                except httpx.HTTPError:
                    pass
            assert process.poll() is None, process.communicate()
            time.sleep(0.1)
        assert info is not None
        yield info
    finally:
        process.terminate()
        out, err = process.communicate(timeout=20)
        assert "LOCAL stand-in" in err
        assert "authority" in out


@pytest.mark.integration
def test_env_for_automation_lets_a_plain_http_client_get_the_api_token(
    emulator_process: EmulatorInfo,
) -> None:
    result = runner.invoke(app, ["--data-dir", emulator_process.data_dir, "emulator", "env",
                                 "--identity", "aa-onboarding", "--runtime", "automation"])
    assert result.exit_code == 0, result.output
    env = dict(line.split("=", 1) for line in result.output.splitlines())
    assert env["IDENTITY_ENDPOINT"].startswith(emulator_process.mi_url)
    response = httpx.get(env["IDENTITY_ENDPOINT"],
                         params={"resource": API_CLIENT_ID, "api-version": "2019-08-01"},
                         headers={"X-IDENTITY-HEADER": env["IDENTITY_HEADER"]})
    assert response.status_code == 200
    assert claims_of(response.json()["access_token"])["aud"] == API_CLIENT_ID


@pytest.mark.parametrize(
    ("runtime", "keys"),
    [
        ("app-service", {"IDENTITY_ENDPOINT", "IDENTITY_HEADER"}),
        ("imds", {"AZURE_POD_IDENTITY_AUTHORITY_HOST"}),
        ("msi", {"IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "MSI_SECRET"}),
        ("msi-legacy", {"MSI_ENDPOINT", "MSI_SECRET"}),
        ("arc", {"IDENTITY_ENDPOINT", "IMDS_ENDPOINT"}),
    ],
)
@pytest.mark.integration
def test_env_prints_each_runtimes_variables(
    emulator_process: EmulatorInfo, runtime: str, keys: set[str]
) -> None:
    result = runner.invoke(app, ["--data-dir", emulator_process.data_dir, "emulator", "env",
                                 "--identity", "uami-reader", "--runtime", runtime])
    assert result.exit_code == 0, result.output
    env = dict(line.split("=", 1) for line in result.output.splitlines())
    assert keys <= set(env)
    unexpected = {"IDENTITY_ENDPOINT", "MSI_ENDPOINT"} - keys
    assert not unexpected & set(env), "only the runtime's own endpoint variables"
    assert "AZURE_CLIENT_ID" in env  # a user-assigned identity must be named


@pytest.mark.integration
def test_env_for_unknown_identity_lists_the_known_ones(emulator_process: EmulatorInfo) -> None:
    result = runner.invoke(app, ["--data-dir", emulator_process.data_dir, "emulator", "env",
                                 "--identity", "nobody", "--runtime", "imds"])
    assert result.exit_code == 1
    assert "no managed identity named 'nobody'" in result.output
    assert "aa-onboarding" in result.output


def test_env_without_running_emulator_says_how_to_start_one(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--data-dir", str(tmp_path), "emulator", "env",
                                 "--identity", "aa-onboarding", "--runtime", "imds"])
    assert result.exit_code == 1
    assert "start one with 'tenantops emulator'" in result.output


@pytest.mark.integration
def test_show_prints_directory_json_with_running_authority(
    emulator_process: EmulatorInfo,
) -> None:
    result = runner.invoke(app, ["--data-dir", emulator_process.data_dir, "emulator", "show"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["authority"] == emulator_process.authority
    assert shown["tenant_id"] == emulator_process.tenant_id
    names = {i["name"]: i for i in shown["identities"]}
    assert names["aa-onboarding"]["roles"] == ["Tenants.Read", "Tenants.Write"]


@pytest.mark.integration
def test_rotate_keys_command_rotates_the_running_emulators_keys(
    emulator_process: EmulatorInfo,
) -> None:
    import ssl

    url = f"{emulator_process.authority}/{emulator_process.tenant_id}/discovery/v2.0/keys"
    context = ssl.create_default_context(cafile=emulator_process.ca_bundle)
    before = {k["kid"] for k in httpx.get(url, verify=context).json()["keys"]}
    result = runner.invoke(app, ["--data-dir", emulator_process.data_dir, "emulator",
                                 "rotate-keys"])
    assert result.exit_code == 0, result.output
    time.sleep(1.1)
    after = {k["kid"] for k in httpx.get(url, verify=context).json()["keys"]}
    assert before < after
    assert len(after - before) == 1


def test_non_loopback_bind_is_refused_without_allow_remote(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--data-dir", str(tmp_path), "emulator", "--host", "0.0.0.0"])
    assert result.exit_code == 1
    assert "refusing to bind the emulator to 0.0.0.0" in result.output
    assert "--allow-remote" in result.output


