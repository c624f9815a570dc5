"""Small helpers for emulator tests: environments per runtime, and unverified claim reading."""

from __future__ import annotations

from typing import Any

import jwt
import pytest

from tenantops.emulator.runtime_env import runtime_env
from tenantops.emulator.server import EmulatorServer

RUNTIME_VARIABLES = (
    "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT",
    "MSI_ENDPOINT", "MSI_SECRET", "AZURE_POD_IDENTITY_AUTHORITY_HOST", "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID", "AZURE_AUTHORITY_HOST", "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_TOKEN_CREDENTIALS", "AZURE_USERNAME", "AZURE_CLIENT_CERTIFICATE_PATH",
)


def act_as(
    monkeypatch: pytest.MonkeyPatch, server: EmulatorServer, identity: str, runtime: str
) -> dict[str, str]:
    """Set exactly the variables ``runtime`` would set for ``identity``; clear the others."""
    for name in RUNTIME_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    env = runtime_env(server.state.directory, server.state.data_dir, server.info, identity,
                      runtime)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def claims_of(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims
