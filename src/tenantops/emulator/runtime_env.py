"""The environment a process needs to act as a managed identity in an emulated Azure runtime.

The variables are the ones each runtime sets (shared reference §1), so azure-identity, msal,
the runbook and curl all pick the right endpoint without knowing about the emulator.
"""

from __future__ import annotations

from pathlib import Path

from tenantops.emulator.directory import Directory
from tenantops.emulator.server import EmulatorInfo
from tenantops.emulator.state import EmulatorState
from tenantops.errors import EmulatorError

__all__ = ["RUNTIMES", "runtime_env"]

RUNTIMES = ("app-service", "automation", "imds", "msi", "msi-legacy", "azure-ml", "arc")
"""``msi`` is what App Service really sets: both ``IDENTITY_ENDPOINT``/``IDENTITY_HEADER`` and,
for older clients, ``MSI_ENDPOINT``/``MSI_SECRET`` ("How to use managed identities for App
Service and Azure Functions", REST endpoint reference; shared reference §1). ``msi-legacy``
sets only the ``MSI_*`` pair, for testing a client on the 2017-09-01 protocol alone."""


def runtime_env(
    directory: Directory, state_dir: Path, info: EmulatorInfo, identity: str, runtime: str
) -> dict[str, str]:
    """``KEY=VALUE`` pairs for ``identity`` in ``runtime`` against the emulator in ``info``."""
    mi = directory.identity_by_name(identity)
    if mi is None:
        known = ", ".join(i.name for i in directory.identities) or "(none)"
        raise EmulatorError(f"no managed identity named {identity!r}; the directory has: {known}")
    if runtime not in RUNTIMES:
        raise EmulatorError(f"runtime {runtime!r} is not one of {', '.join(RUNTIMES)}")
    secret = EmulatorState(directory, state_dir).host_secret(mi.name)
    env: dict[str, str] = {}
    if runtime in {"app-service", "automation", "msi"}:
        prefix = "/automation" if runtime == "automation" else ""
        env["IDENTITY_ENDPOINT"] = f"{info.mi_url}{prefix}/msi/token"
        env["IDENTITY_HEADER"] = secret
        if runtime == "msi":
            env["MSI_ENDPOINT"] = f"{info.mi_url}/msi/2017-09-01/token"
            env["MSI_SECRET"] = secret
    elif runtime in {"msi-legacy", "azure-ml"}:
        flavor = "msi" if runtime == "msi-legacy" else runtime
        env["MSI_ENDPOINT"] = f"{info.mi_url}/{flavor}/2017-09-01/token"
        env["MSI_SECRET"] = secret
    elif runtime == "imds":
        env["AZURE_POD_IDENTITY_AUTHORITY_HOST"] = f"{info.mi_url}/imds/{secret}"
    else:
        env["IDENTITY_ENDPOINT"] = f"{info.mi_url}/arc/{secret}/metadata/identity/oauth2/token"
        env["IMDS_ENDPOINT"] = f"{info.mi_url}/arc/{secret}"
    if mi.kind == "user":
        # A user-assigned identity must be named; azure-identity reads AZURE_CLIENT_ID for that.
        env["AZURE_CLIENT_ID"] = mi.client_id
    env["AZURE_TENANT_ID"] = info.tenant_id
    env["AZURE_AUTHORITY_HOST"] = info.authority
    env["REQUESTS_CA_BUNDLE"] = info.ca_bundle
    env["SSL_CERT_FILE"] = info.ca_bundle
    return env
