"""Identity tests run with a clean identity environment; `act_as` makes the process a managed
identity of the session emulator, in one of its runtimes, through environment variables only."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tenantops.emulator.directory import API_CLIENT_ID, Directory
from tenantops.emulator.runtime_env import runtime_env
from tenantops.emulator.server import EmulatorInfo
from tests.identity.fake_api import FakeApi

ActAs = Callable[[str, str], dict[str, str]]
Stats = Callable[[], dict[str, int]]

IDENTITY_VARIABLES = (
    "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT",
    "MSI_ENDPOINT", "MSI_SECRET", "AZURE_POD_IDENTITY_AUTHORITY_HOST", "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST",
    "AZURE_USERNAME", "AZURE_PASSWORD", "AZURE_TOKEN_CREDENTIALS", "REQUESTS_CA_BUNDLE",
    "SSL_CERT_FILE", "AZUREPS_HOST_ENVIRONMENT", "TENANTOPS_IDENTITY__SOURCE",
    "TENANTOPS_IDENTITY__IDENTITY", "TENANTOPS_IDENTITY__AUDIENCE", "TENANTOPS_CONFIG",
)
RUNTIMES = ("app-service", "automation", "imds", "msi-legacy", "azure-ml", "arc")
"""``msi-legacy`` is the 2017-09-01 protocol alone (``emulator env --runtime msi`` now sets
both pairs, as App Service does, and clients then take the IDENTITY_* one)."""
MI_COUNTER = {runtime: "mi:msi" if runtime == "msi-legacy" else f"mi:{runtime}"
              for runtime in RUNTIMES}


def no_imds() -> str:
    """An IMDS probe for machines that are not Azure VMs (no wait on 169.254.169.254)."""
    return "nothing answered at http://169.254.169.254 within 0.5 s (ConnectTimeout)"


@pytest.fixture(autouse=True)
def quiet_azure_logging() -> Iterator[None]:
    """azure-identity logs each refusal with the exception as an argument; pytest keeps the
    captured records, the exception keeps the credential, and the credential keeps the refused
    response's connection open, so the session emulator's shutdown would wait 10 s. tenantops
    reports refusals itself (the CLI quiets these loggers the same way)."""
    azure = logging.getLogger("azure")
    level = azure.level
    azure.setLevel(logging.ERROR)
    yield
    azure.setLevel(level)


@pytest.fixture(autouse=True)
def clean_identity_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in IDENTITY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no 'az' here, whatever the machine has
    monkeypatch.chdir(tmp_path)  # no tenantops.toml from the checkout


@pytest.fixture
def act_as(monkeypatch: pytest.MonkeyPatch, emulator: EmulatorInfo,
           directory: Directory) -> ActAs:
    def act(identity: str, runtime: str) -> dict[str, str]:
        env = runtime_env(directory, Path(emulator.data_dir) / "emulator", emulator, identity,
                          runtime)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        return env
    return act


@pytest.fixture
def stats(emulator: EmulatorInfo) -> Stats:
    def read() -> dict[str, int]:
        data: dict[str, int] = httpx.get(f"{emulator.mi_url}/_emulator/stats").json()
        return data
    return read


@pytest.fixture
def fake_api(emulator: EmulatorInfo) -> FakeApi:
    return FakeApi(API_CLIENT_ID, emulator.tenant_id, authority=emulator.authority)
