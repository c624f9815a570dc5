"""Identity sources: one class per kind of identity, each able to say whether it can be used here.

A source's `check` reads the environment (and, for a managed identity with no runtime
variables, probes IMDS) and never requests a token; its `build` returns the azure-identity
credential (or, for the legacy MSI endpoint, tenantops' own) for a successful check.

Detection order is azure-identity's DefaultAzureCredential order restricted to what tenantops
supports: environment, workload identity, managed identity, Azure CLI (shared reference §2).
"""

from __future__ import annotations

import shutil
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol
from urllib.parse import urlsplit

import httpx
from azure.core.credentials import SupportsTokenInfo
from azure.identity import (
    AzureCliCredential,
    CertificateCredential,
    ClientSecretCredential,
    ManagedIdentityCredential,
    WorkloadIdentityCredential,
)

from tenantops.config import IdentitySource
from tenantops.identity._legacy_msi import LegacyMsiCredential
from tenantops.identity._runtimes import (
    IMDS_HOST,
    IMDS_PATH,
    EndpointAnswer,
    ManagedIdentityRuntime,
    detect_runtime,
)
from tenantops.identity._selector import IdentitySelector, parse_identity

__all__ = [
    "DETECTION_ORDER",
    "IMDS_PROBE_SECONDS",
    "SOURCES",
    "ImdsProbe",
    "SourceCheck",
    "check_sources",
    "probe_imds",
]

class ImdsProbe(Protocol):
    """Whether Azure IMDS is there: ``None`` when it answered, else why not."""

    def __call__(self) -> str | None: ...


DETECTION_ORDER: tuple[IdentitySource, ...] = (
    "environment", "workload-identity", "managed-identity", "azure-cli",
)
_MICROSOFT_AUTHORITIES = {
    "login.microsoftonline.com", "login.microsoftonline.us", "login.chinacloudapi.cn",
    "login.partner.microsoftonline.cn", "login.microsoftonline.de",
}


IMDS_PROBE_SECONDS = 0.5


def probe_imds(timeout: float = IMDS_PROBE_SECONDS, *,
               transport: httpx.BaseTransport | None = None) -> str | None:
    """Whether Azure IMDS answers at 169.254.169.254: ``None`` if it did, else why not.

    One request, no retry, without the ``Metadata`` header: Azure IMDS answers that with a
    JSON error body (``400 {"error": "bad_request_102", "error_description": "Required
    metadata header not specified"}``, shared reference §1d). Only an answer of that shape
    counts; the metadata services of other clouds at the same address, a proxy's refusal or
    Docker Desktop's 403 "unreachable" are not Azure (azure-identity counts any answer, and
    then blames IMDS for the proxy's 403).
    """
    url = f"{IMDS_HOST}{IMDS_PATH}"
    try:
        with httpx.Client(transport=transport, timeout=timeout) as http:
            response = http.get(url, params={"api-version": "2018-02-01"})
    except httpx.HTTPError as exc:
        return f"nothing answered at {IMDS_HOST} within {timeout:g} s ({type(exc).__name__})"
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return None
    said = " ".join(response.text.split())[:80]
    return (f"something answered at {IMDS_HOST}, but not as Azure IMDS does (HTTP "
            f"{response.status_code} {said!r}): this is not an Azure VM")


@dataclass(frozen=True)
class SourceCheck:
    """Whether a source can be used here, and what it found (no secret values)."""

    source: IdentitySource
    available: bool
    detail: str
    runtime: ManagedIdentityRuntime | None = None
    selector: IdentitySelector | None = None

    def describe(self) -> str:
        return f"{self.source}: {self.detail}"


def _missing(environ: Mapping[str, str], *names: str) -> list[str]:
    return [n for n in names if not environ.get(n)]


def _client_selector(source: str, identity: str | None) -> IdentitySelector | str | None:
    """For app-based sources ``identity`` can only be the app's client ID; else why not."""
    if not identity:
        return None
    selector = parse_identity(identity)
    if selector.kind != "client_id":
        return (f"the identity setting names {selector.kind}={selector.value}, but the "
                f"{source} source names an app by its client ID")
    return selector


def authority_options(environ: Mapping[str, str]) -> dict[str, Any]:
    """Keyword arguments that point an azure-identity confidential client at the authority.

    ``AZURE_AUTHORITY_HOST`` is read by azure-identity itself; a host that is not a Microsoft
    cloud (the emulator) also needs instance discovery off, and ``REQUESTS_CA_BUNDLE`` as the
    trust store so the authority's certificate is accepted.
    """
    options: dict[str, Any] = {}
    host = environ.get("AZURE_AUTHORITY_HOST")
    if host:
        options["authority"] = host
        if (urlsplit(host if "://" in host else f"https://{host}").hostname or "") \
                not in _MICROSOFT_AUTHORITIES:
            options["disable_instance_discovery"] = True
    if environ.get("REQUESTS_CA_BUNDLE"):
        options["connection_verify"] = environ["REQUESTS_CA_BUNDLE"]
    return options


class Source(ABC):
    """One kind of identity. Subclasses declare ``name`` and implement `check` and `build`."""

    name: ClassVar[IdentitySource]

    @abstractmethod
    def check(self, environ: Mapping[str, str], *, identity: str | None, forced: bool,
              imds_probe: ImdsProbe) -> SourceCheck:
        """Whether this source can be tried here; no token request, no secret in the result."""

    @abstractmethod
    def build(self, check: SourceCheck, environ: Mapping[str, str], options: dict[str, Any],
              on_answer: Callable[[EndpointAnswer], None]) -> SupportsTokenInfo:
        """The credential for a check that succeeded. Does no I/O."""


class _ServicePrincipal(Source):
    """Shared by the environment, client-secret and client-certificate sources."""

    secret: ClassVar[bool] = True
    certificate: ClassVar[bool] = True

    def check(self, environ: Mapping[str, str], *, identity: str | None, forced: bool,
              imds_probe: ImdsProbe) -> SourceCheck:
        selector = _client_selector(self.name, identity)
        if isinstance(selector, str):
            return SourceCheck(self.name, False, selector)
        needed = ["AZURE_TENANT_ID"] + ([] if selector else ["AZURE_CLIENT_ID"])
        missing = _missing(environ, *needed)
        has_secret = self.secret and bool(environ.get("AZURE_CLIENT_SECRET"))
        has_cert = self.certificate and bool(environ.get("AZURE_CLIENT_CERTIFICATE_PATH"))
        if not (has_secret or has_cert):
            wanted = [v for v, on in (("AZURE_CLIENT_SECRET", self.secret),
                                      ("AZURE_CLIENT_CERTIFICATE_PATH", self.certificate)) if on]
            missing.append(" or ".join(wanted))
        if missing:
            return SourceCheck(self.name, False, f"{', '.join(missing)} not set",
                               selector=selector)
        client_id = selector.value if selector else environ["AZURE_CLIENT_ID"]
        kind = "client secret" if has_secret else "certificate"
        variable = "AZURE_CLIENT_SECRET" if has_secret else "AZURE_CLIENT_CERTIFICATE_PATH"
        named = "" if selector else "AZURE_CLIENT_ID, "
        detail = (f"service principal {client_id} in tenant {environ['AZURE_TENANT_ID']} with a "
                  f"{kind} (AZURE_TENANT_ID, {named}{variable} set)")
        return SourceCheck(self.name, True, detail,
                           selector=selector or IdentitySelector("client_id", client_id,
                                                                 "AZURE_CLIENT_ID"))

    def build(self, check: SourceCheck, environ: Mapping[str, str], options: dict[str, Any],
              on_answer: Callable[[EndpointAnswer], None]) -> SupportsTokenInfo:
        assert check.selector is not None
        kwargs = {**authority_options(environ), **options}
        tenant, client_id = environ["AZURE_TENANT_ID"], check.selector.value
        if self.secret and environ.get("AZURE_CLIENT_SECRET"):
            return ClientSecretCredential(tenant, client_id, environ["AZURE_CLIENT_SECRET"],
                                          **kwargs)
        return CertificateCredential(
            tenant, client_id, certificate_path=environ["AZURE_CLIENT_CERTIFICATE_PATH"],
            password=environ.get("AZURE_CLIENT_CERTIFICATE_PASSWORD") or None, **kwargs)


class EnvironmentSource(_ServicePrincipal):
    """A service principal from ``AZURE_*`` variables, as azure-identity's EnvironmentCredential."""

    name = "environment"


class ClientSecretSource(_ServicePrincipal):
    name = "client-secret"
    certificate = False


class ClientCertificateSource(_ServicePrincipal):
    name = "client-certificate"
    secret = False


class WorkloadIdentitySource(Source):
    """Kubernetes workload identity: a federated token file exchanged for an Entra token."""

    name = "workload-identity"

    def check(self, environ: Mapping[str, str], *, identity: str | None, forced: bool,
              imds_probe: ImdsProbe) -> SourceCheck:
        selector = _client_selector(self.name, identity)
        if isinstance(selector, str):
            return SourceCheck(self.name, False, selector)
        needed = ["AZURE_FEDERATED_TOKEN_FILE", "AZURE_TENANT_ID"]
        if selector is None:
            needed.append("AZURE_CLIENT_ID")
        missing = _missing(environ, *needed)
        if missing:
            return SourceCheck(self.name, False, f"{', '.join(missing)} not set")
        client_id = selector.value if selector else environ["AZURE_CLIENT_ID"]
        return SourceCheck(
            self.name, True,
            f"app {client_id} in tenant {environ['AZURE_TENANT_ID']} with a federated token "
            "file (AZURE_FEDERATED_TOKEN_FILE set)",
            selector=selector or IdentitySelector("client_id", client_id, "AZURE_CLIENT_ID"))

    def build(self, check: SourceCheck, environ: Mapping[str, str], options: dict[str, Any],
              on_answer: Callable[[EndpointAnswer], None]) -> SupportsTokenInfo:
        assert check.selector is not None
        kwargs = {**authority_options(environ), **options}
        return WorkloadIdentityCredential(
            tenant_id=environ["AZURE_TENANT_ID"], client_id=check.selector.value,
            token_file_path=environ["AZURE_FEDERATED_TOKEN_FILE"], **kwargs)


class ManagedIdentitySource(Source):
    """The managed identity of the Azure resource this process runs on."""

    name = "managed-identity"

    def check(self, environ: Mapping[str, str], *, identity: str | None, forced: bool,
              imds_probe: ImdsProbe) -> SourceCheck:
        runtime = detect_runtime(environ)
        selector = parse_identity(identity) if identity else None
        if selector is None and environ.get("AZURE_CLIENT_ID"):
            # azure-identity's convention (DefaultAzureCredential): AZURE_CLIENT_ID names a
            # user-assigned identity.
            selector = parse_identity(environ["AZURE_CLIENT_ID"], "AZURE_CLIENT_ID")
        which = selector.describe() if selector else "system-assigned identity"
        if runtime.detected:
            return SourceCheck(self.name, True, f"{runtime.describe()}; {which}",
                               runtime=runtime, selector=selector)
        if forced:
            return SourceCheck(
                self.name, True,
                f"no runtime variables set (IDENTITY_ENDPOINT, MSI_ENDPOINT, IMDS_ENDPOINT, "
                f"AZURE_POD_IDENTITY_AUTHORITY_HOST); using IMDS at {IMDS_HOST}; {which}",
                runtime=runtime, selector=selector)
        reason = imds_probe()
        if reason is None:
            return SourceCheck(
                self.name, True, f"Azure IMDS answered a probe at {IMDS_HOST} (no Azure runtime "
                f"variables set, so this is taken for an Azure VM); {which}",
                runtime=runtime, selector=selector)
        return SourceCheck(
            self.name, False,
            "no Azure runtime variables set (IDENTITY_ENDPOINT+IDENTITY_HEADER, IDENTITY_ENDPOINT"
            f"+IMDS_ENDPOINT, MSI_ENDPOINT) and no Azure IMDS: {reason}",
            runtime=runtime, selector=selector)

    def build(self, check: SourceCheck, environ: Mapping[str, str], options: dict[str, Any],
              on_answer: Callable[[EndpointAnswer], None]) -> SupportsTokenInfo:
        runtime, selector = check.runtime, check.selector
        assert runtime is not None
        if runtime.name == "msi":
            return LegacyMsiCredential(runtime, environ, selector, on_answer=on_answer)
        if selector is None:
            return ManagedIdentityCredential(**options)
        if selector.kind == "client_id":
            return ManagedIdentityCredential(client_id=selector.value, **options)
        return ManagedIdentityCredential(identity_config={selector.kind: selector.value},
                                         **options)


class AzureCliSource(Source):
    """The account signed in to the Azure CLI (``az login``)."""

    name = "azure-cli"

    def check(self, environ: Mapping[str, str], *, identity: str | None, forced: bool,
              imds_probe: ImdsProbe) -> SourceCheck:
        if identity:
            return SourceCheck(
                self.name, False,
                f"the identity setting names {identity!r}, but the Azure CLI uses the signed-in "
                "account (choose it with 'az login' / 'az account set')")
        path = shutil.which("az", path=environ.get("PATH"))
        if path is None:
            return SourceCheck(self.name, False, "'az' not found on PATH")
        return SourceCheck(self.name, True,
                           f"'az' found at {path} (signed-in state is known only by asking)")

    def build(self, check: SourceCheck, environ: Mapping[str, str], options: dict[str, Any],
              on_answer: Callable[[EndpointAnswer], None]) -> SupportsTokenInfo:
        return AzureCliCredential()  # runs 'az'; pipeline options do not apply


SOURCES: dict[IdentitySource, Source] = {
    source.name: source
    for source in (EnvironmentSource(), WorkloadIdentitySource(), ManagedIdentitySource(),
                   AzureCliSource(), ClientSecretSource(), ClientCertificateSource())
}


def check_sources(
    environ: Mapping[str, str],
    *,
    identity: str | None = None,
    imds_probe: ImdsProbe = probe_imds,
) -> list[SourceCheck]:
    """Every source in detection order, checked against ``environ`` (for reports)."""
    return [SOURCES[name].check(environ, identity=identity, forced=False, imds_probe=imds_probe)
            for name in DETECTION_ORDER]
