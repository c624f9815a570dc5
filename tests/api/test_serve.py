"""``tenantops serve``: which tokens it trusts in each mode, the errors when it cannot know,
and, end to end in a subprocess, an API that accepts the emulator's tokens."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tenantops.cli.main import app
from tenantops.cli.serve import emulator_auth
from tenantops.config import AuthSettings
from tenantops.emulator.directory import default_directory
from tenantops.emulator.runtime_env import runtime_env
from tenantops.emulator.server import EmulatorInfo, EmulatorServer, read_info
from tenantops.errors import EmulatorError
from tests.auth.support import API_CLIENT_ID, mi_token
from tests.support.processes import Process

runner = CliRunner()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """No tenantops configuration from the environment or the working directory."""
    for name in list(os.environ):
        if name.startswith("TENANTOPS_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return {k: v for k, v in os.environ.items() if not k.startswith("TENANTOPS_")}


@pytest.mark.parametrize(
    ("args", "says"),
    [([], "auth.tenant_id is not set"),
     (["--dev", "--emulator", "https://127.0.0.1:1"], "do not combine it with --emulator")])
def test_serve_refuses_to_start_when_it_cannot_know_whom_to_trust(
    clean_env: dict[str, str], tmp_path: Path, args: list[str], says: str
) -> None:
    result = runner.invoke(app, ["--data-dir", str(tmp_path / "data"), "serve", *args])

    assert result.exit_code == 1
    assert says in result.output


def test_serve_names_the_missing_client_id_setting(
    clean_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TENANTOPS_AUTH__TENANT_ID", "8d6f5c2a-1b3e-4f70-9a6c-2e4b7d9f0a15")

    result = runner.invoke(app, ["--data-dir", str(tmp_path / "data"), "serve"])

    assert result.exit_code == 1
    assert "auth.client_id is not set" in result.output
    assert "TENANTOPS_AUTH__CLIENT_ID" in result.output


def test_emulator_mode_trusts_the_emulators_tenant_and_api_app(emulator: EmulatorInfo) -> None:
    auth = emulator_auth(AuthSettings(leeway_seconds=5), f"{emulator.authority}/",
                         Path(emulator.ca_bundle))

    assert (auth.authority, auth.tenant_id, auth.client_id) == (
        emulator.authority, emulator.tenant_id, API_CLIENT_ID)
    assert auth.ca_bundle == Path(emulator.ca_bundle)
    assert auth.leeway_seconds == 5


def test_emulator_mode_without_its_ca_bundle_says_which_option_to_add(
    emulator: EmulatorInfo,
) -> None:
    with pytest.raises(EmulatorError) as caught:
        emulator_auth(AuthSettings(), emulator.authority, None)

    assert f"{emulator.authority}/_emulator/directory" in str(caught.value)
    assert "--emulator-ca" in str(caught.value)


class Served(Process):
    """A ``tenantops serve`` subprocess (stdout lines awaited, stderr kept)."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        # Its embedded servers on free ports: a fixed default port taken by anything else
        # on a busy machine would stop it before it prints its URL.
        super().__init__(
            [sys.executable, "-c", "from tenantops.cli import main; main()", *args],
            env={**env, "PYTHONUNBUFFERED": "1", "TENANTOPS_PROVIDERS__DNS__PORT": "0",
                 "TENANTOPS_PROVIDERS__WEBHOST__PORT": "0",
                 "TENANTOPS_PROVIDERS__WEBHOST__APP_PORT": "0"}, cwd=cwd)

    def url(self) -> str:
        """The API URL it prints once it listens (waits for that line, or its exit)."""
        return self.wait_for_line("tenantops API").split()[-1]


@pytest.fixture
def served(clean_env: dict[str, str], tmp_path: Path) -> Iterator[list[Served]]:
    started: list[Served] = []
    yield started
    for server in started:
        server.stop()  # closes its pipes too, also when it has exited on its own


@pytest.mark.integration
def test_serve_with_emulator_accepts_its_tokens_and_warns(
    emulator_server: EmulatorServer, clean_env: dict[str, str], tmp_path: Path,
    served: list[Served],
) -> None:
    info = emulator_server.info
    server = Served(["--data-dir", str(tmp_path / "data"), "serve", "--port", "0",
                     "--emulator", info.authority, "--emulator-ca", info.ca_bundle],
                    clean_env, tmp_path)
    served.append(server)
    api = server.url()
    token = mi_token(emulator_server, "aa-onboarding", API_CLIENT_ID)

    health = httpx.get(f"{api}/health")
    whoami = httpx.get(f"{api}/whoami", headers={"Authorization": f"Bearer {token}"})
    refused = httpx.get(f"{api}/whoami")
    stderr = server.stop()

    assert health.status_code == 200
    assert whoami.status_code == 200
    assert whoami.json()["tid"] == info.tenant_id
    assert refused.status_code == 401
    assert "WARNING: tenantops serve is trusting the LOCAL EMULATOR" in stderr
    assert token not in stderr


@pytest.mark.integration
def test_serve_dev_starts_an_emulator_and_trusts_it(
    clean_env: dict[str, str], tmp_path: Path, served: list[Served]
) -> None:
    data_dir = tmp_path / "data"
    env = {**clean_env, "TENANTOPS_EMULATOR__PORT": "0", "TENANTOPS_EMULATOR__MI_PORT": "0"}
    server = Served(["--data-dir", str(data_dir), "serve", "--port", "0", "--dev"], env,
                    tmp_path)
    served.append(server)
    api = server.url()
    dashboard = server.wait_for_line("dashboard")
    server.wait_for_line("identities")
    admin = server.wait_for_line("  export $(")
    info = read_info(data_dir)
    assert info is not None
    mi = runtime_env(default_directory(), data_dir / "emulator", info, "aa-onboarding",
                     "app-service")
    token = httpx.get(mi["IDENTITY_ENDPOINT"],
                      params={"resource": API_CLIENT_ID, "api-version": "2019-08-01"},
                      headers={"X-IDENTITY-HEADER": mi["IDENTITY_HEADER"]}).json()["access_token"]

    whoami = httpx.get(f"{api}/whoami", headers={"Authorization": f"Bearer {token}"})
    stderr = server.stop()

    assert whoami.status_code == 200
    assert whoami.json()["roles"] == ["Tenants.Read", "Tenants.Write"]
    assert "LOCAL EMULATOR" in stderr
    assert dashboard.split()[1] == api.removesuffix("api")
    assert f"--data-dir {data_dir} emulator env --identity ops-admin" in admin
