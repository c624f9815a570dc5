"""The environment a process needs to act as a managed identity in an emulated Azure runtime.

The variables are the ones each runtime sets (shared reference §1), so azure-identity, msal,
the runbook and curl all pick the right endpoint without knowing about the emulator.

``workload-identity`` is what AKS's workload identity webhook injects into a pod
(azure-workload-identity docs, "Quick start": ``AZURE_CLIENT_ID``, ``AZURE_TENANT_ID``,
``AZURE_FEDERATED_TOKEN_FILE``, ``AZURE_AUTHORITY_HOST``), with the projected service-account
token written to a file under the data folder, minted by the emulator's issuer for the subject
of the identity's federated credential.
"""

from __future__ import annotations

from pathlib import Path

from tenantops.emulator.directory import AppRegistration, Directory, ManagedIdentity
from tenantops.emulator.issuers import DEFAULT_FEDERATED_TOKEN_LIFETIME, IssuerRegistry
from tenantops.emulator.server import EmulatorInfo
from tenantops.emulator.state import EmulatorState
from tenantops.errors import EmulatorError
from tenantops.pki import write_private

__all__ = ["RUNTIMES", "runtime_env"]

RUNTIMES = ("app-service", "automation", "imds", "msi", "msi-legacy", "azure-ml", "arc",
            "workload-identity")
"""``msi`` is what App Service really sets: both ``IDENTITY_ENDPOINT``/``IDENTITY_HEADER`` and,
for older clients, ``MSI_ENDPOINT``/``MSI_SECRET`` ("How to use managed identities for App
Service and Azure Functions", REST endpoint reference; shared reference §1). ``msi-legacy``
sets only the ``MSI_*`` pair, for testing a client on the 2017-09-01 protocol alone."""


def workload_identity_env(
    directory: Directory, state_dir: Path, info: EmulatorInfo, identity: str,
    lifetime: int = DEFAULT_FEDERATED_TOKEN_LIFETIME,
) -> dict[str, str]:
    """What AKS injects for ``identity`` (a user-assigned identity or an app with a federated
    credential trusting an issuer the emulator plays); writes a fresh token file each call."""
    principal: AppRegistration | ManagedIdentity | None = (
        directory.identity_by_name(identity) or directory.app_by_name(identity))
    if principal is None or (isinstance(principal, AppRegistration) and principal.first_party):
        candidates = [i.name for i in directory.identities if i.federated_credentials]
        candidates += [a.name for a in directory.apps if a.federated_credentials]
        raise EmulatorError(f"no identity or app named {identity!r}; those with federated "
                            f"credentials: {', '.join(candidates) or '(none)'}")
    issuers = IssuerRegistry(lambda: directory, state_dir, lambda: info.authority)
    hosted = {i.name for i in directory.issuers if i.hosted}
    credential = next((c for c in principal.federated_credentials if c.issuer in hosted), None)
    if credential is None:
        raise EmulatorError(
            f"{identity!r} has no federated credential trusting an issuer the emulator plays "
            f"({', '.join(sorted(hosted)) or 'none in this directory'}); add one, for example "
            f'federated_credentials = [{{name = "aks", issuer = "aks", subject = '
            f'"system:serviceaccount:<namespace>:<name>"}}] (on a user-assigned identity)')
    token = issuers.mint(credential.issuer, credential.subject, credential.audiences[0], lifetime)
    path = state_dir / "workload-identity" / f"{principal.name}.token"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_private(path, token.encode("ascii"))
    return {
        "AZURE_CLIENT_ID": principal.client_id,
        "AZURE_TENANT_ID": info.tenant_id,
        "AZURE_FEDERATED_TOKEN_FILE": str(path),
        "AZURE_AUTHORITY_HOST": info.authority,
        "REQUESTS_CA_BUNDLE": info.ca_bundle,
        "SSL_CERT_FILE": info.ca_bundle,
    }


def runtime_env(
    directory: Directory, state_dir: Path, info: EmulatorInfo, identity: str, runtime: str
) -> dict[str, str]:
    """``KEY=VALUE`` pairs for ``identity`` in ``runtime`` against the emulator in ``info``."""
    if runtime == "workload-identity":
        return workload_identity_env(directory, state_dir, info, identity)
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
