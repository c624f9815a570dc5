"""Managed-identity runtimes: which one this process is in, and how its endpoint is asked.

Detection follows azure-identity 1.27's `ManagedIdentityCredential` order (shared reference §2):
Service Fabric, App Service (also Functions, Container Apps, Automation), Azure Arc, legacy
``MSI_ENDPOINT``/``MSI_SECRET``, Cloud Shell, then IMDS. It reads variable *names* and endpoint
URLs only; secrets (``IDENTITY_HEADER``, ``MSI_SECRET``) are never copied into a description.

`request_token` speaks each endpoint's protocol directly. tenantops uses it where azure-identity
cannot be used (the legacy 2017-09-01 endpoint, whose date-string ``expires_on`` azure-identity
1.27 fails to parse) and in the doctor, which needs the endpoint's own status, body and headers
that azure-identity reshapes into a one-line message.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import httpx

from tenantops.identity._selector import IdentitySelector

__all__ = [
    "ARC_KEY_DIR",
    "DIAGNOSTIC_HEADER",
    "EndpointAnswer",
    "ManagedIdentityRuntime",
    "RuntimeName",
    "detect_runtime",
    "request_token",
]

RuntimeName = Literal["service-fabric", "app-service", "arc", "msi", "cloud-shell", "imds"]

DIAGNOSTIC_HEADER = "x-tenantops-diagnostic"
IMDS_HOST = "http://169.254.169.254"
IMDS_PATH = "/metadata/identity/oauth2/token"
ARC_KEY_DIR = Path("/var/opt/azcmagent/tokens")
_ARC_KEY_MAX = 4096


def endpoint_origin(url: str) -> str:
    """``scheme://host:port`` of ``url``: enough to recognise it, without path secrets."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else url


@dataclass(frozen=True)
class ManagedIdentityRuntime:
    """The managed-identity endpoint this process would use."""

    name: RuntimeName
    title: str
    endpoint: str
    variables: tuple[str, ...]
    detected: bool
    """False for IMDS chosen only because nothing else was found (it may not exist)."""

    @property
    def asked_directly(self) -> bool:
        """Whether `request_token` speaks this endpoint's protocol (not Service Fabric,
        Cloud Shell)."""
        return self.name in _REQUESTS

    def describe(self) -> str:
        """Title, endpoint origin and the variables that decided it; no secret values."""
        where = endpoint_origin(self.endpoint)
        why = f"{', '.join(self.variables)} set" if self.variables else "no runtime variables set"
        return f"{self.title} endpoint at {where} ({why})"


def detect_runtime(environ: Mapping[str, str]) -> ManagedIdentityRuntime:
    """The runtime azure-identity's `ManagedIdentityCredential` would pick from ``environ``."""
    def has(*names: str) -> bool:
        return all(environ.get(n) for n in names)

    if has("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT"):
        return ManagedIdentityRuntime(
            "service-fabric", "Service Fabric", environ["IDENTITY_ENDPOINT"],
            ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT"), True)
    if has("IDENTITY_ENDPOINT", "IDENTITY_HEADER"):
        return ManagedIdentityRuntime(
            "app-service", "App Service / Functions / Automation", environ["IDENTITY_ENDPOINT"],
            ("IDENTITY_ENDPOINT", "IDENTITY_HEADER"), True)
    if has("IDENTITY_ENDPOINT", "IMDS_ENDPOINT"):
        return ManagedIdentityRuntime(
            "arc", "Azure Arc", environ["IDENTITY_ENDPOINT"],
            ("IDENTITY_ENDPOINT", "IMDS_ENDPOINT"), True)
    if has("MSI_ENDPOINT", "MSI_SECRET"):
        return ManagedIdentityRuntime(
            "msi", "legacy MSI (api-version 2017-09-01)", environ["MSI_ENDPOINT"],
            ("MSI_ENDPOINT", "MSI_SECRET"), True)
    if has("MSI_ENDPOINT"):
        return ManagedIdentityRuntime(
            "cloud-shell", "Cloud Shell", environ["MSI_ENDPOINT"], ("MSI_ENDPOINT",), True)
    override = environ.get("AZURE_POD_IDENTITY_AUTHORITY_HOST")
    if override:
        return ManagedIdentityRuntime(
            "imds", "Azure VM IMDS", override.rstrip("/") + IMDS_PATH,
            ("AZURE_POD_IDENTITY_AUTHORITY_HOST",), True)
    return ManagedIdentityRuntime("imds", "Azure VM IMDS", IMDS_HOST + IMDS_PATH, (), False)


@dataclass(frozen=True)
class EndpointAnswer:
    """An identity endpoint's refusal, as it was sent: status, message, headers that matter.

    ``diagnostic`` is the emulator's ``x-tenantops-diagnostic`` header (Entra's real answer,
    which Azure does not show); it is ``None`` against real Azure.
    """

    status: int
    message: str
    diagnostic: str | None = None
    server: str | None = None
    correlation_id: str | None = None

    @classmethod
    def from_parts(cls, status: int, headers: Mapping[str, str], text: str) -> EndpointAnswer:
        lowered = {k.lower(): v for k, v in headers.items()}
        return cls(
            status=status,
            message=_error_message(text),
            diagnostic=lowered.get(DIAGNOSTIC_HEADER),
            server=lowered.get("server"),
            correlation_id=lowered.get("x-correlation-id") or lowered.get("x-ms-request-id"),
        )

    def describe(self) -> str:
        text = f"HTTP {self.status} {self.message!r}"
        if self.diagnostic and self.diagnostic not in self.message:
            text += f" (diagnostic header: {self.diagnostic})"
        return text


def _error_message(text: str) -> str:
    """The human part of an identity endpoint's error body, whatever its shape."""
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip()[:500]
    if isinstance(data, dict):
        if isinstance(data.get("message"), str):  # App Service / legacy MSI (Kestrel)
            return str(data["message"])
        error = data.get("error")
        if isinstance(error, dict):  # Cloud Shell, Service Fabric
            return str(error.get("message") or error.get("code") or error)
        if isinstance(error, str):  # IMDS, Arc: OAuth shape
            description = data.get("error_description")
            return f"{error}: {description}" if description else error
    return text.strip()[:500]


def _selector_param(runtime: RuntimeName, selector: IdentitySelector | None,
                    names: Mapping[str, str]) -> dict[str, str]:
    """The query parameter that names ``selector`` on ``runtime``'s endpoint."""
    if selector is None:
        return {}
    name = names.get(selector.kind)
    if name is None:
        raise ValueError(
            f"the {runtime} endpoint can select a user-assigned identity only by "
            f"{' or '.join(sorted(names))}, not by {selector.kind}")
    return {name: selector.value}


def _arc_key(challenge: str | None) -> str:
    """The key file content named by Arc's ``WWW-Authenticate: Basic realm=<path>``."""
    if not challenge or "=" not in challenge:
        raise ValueError(
            "Azure Arc answered 401 without 'WWW-Authenticate: Basic realm=<key file>'")
    path = Path(challenge.split("=", 1)[1].strip().strip('"'))
    if path.parent != ARC_KEY_DIR or path.suffix != ".key":
        raise ValueError(
            f"Azure Arc named key file {path}, which is not a .key file in {ARC_KEY_DIR}; refusing "
            "to read it (azure-identity applies the same rule)")
    if path.stat().st_size > _ARC_KEY_MAX:
        raise ValueError(f"Azure Arc key file {path} is larger than {_ARC_KEY_MAX} bytes")
    return path.read_text(encoding="utf-8").strip()


_Request = Callable[
    [ManagedIdentityRuntime, Mapping[str, str], str, "IdentitySelector | None", httpx.Client],
    httpx.Response,
]


def _app_service(runtime: ManagedIdentityRuntime, environ: Mapping[str, str], resource: str,
                 selector: IdentitySelector | None, http: httpx.Client) -> httpx.Response:
    """App Service, Functions, Automation: api-version 2019-08-01, ``X-IDENTITY-HEADER``."""
    params = {"resource": resource, "api-version": "2019-08-01", **_selector_param(
        runtime.name, selector,
        {"client_id": "client_id", "object_id": "object_id", "resource_id": "mi_res_id"})}
    return http.get(runtime.endpoint, params=params, headers={
        "X-IDENTITY-HEADER": environ.get("IDENTITY_HEADER", ""), "Metadata": "true"})


def _legacy_msi(runtime: ManagedIdentityRuntime, environ: Mapping[str, str], resource: str,
                selector: IdentitySelector | None, http: httpx.Client) -> httpx.Response:
    """``MSI_ENDPOINT``: api-version 2017-09-01, ``secret`` header, ``clientid`` only."""
    params = {"resource": resource, "api-version": "2017-09-01",
              **_selector_param(runtime.name, selector, {"client_id": "clientid"})}
    return http.get(runtime.endpoint, params=params,
                    headers={"secret": environ.get("MSI_SECRET", "")})


_IMDS_SELECTORS = {"client_id": "client_id", "object_id": "object_id",
                   "resource_id": "msi_res_id"}


def _imds(runtime: ManagedIdentityRuntime, environ: Mapping[str, str], resource: str,
          selector: IdentitySelector | None, http: httpx.Client) -> httpx.Response:
    """Azure VM IMDS: api-version 2018-02-01, ``Metadata: true``."""
    params = {"resource": resource, "api-version": "2018-02-01",
              **_selector_param(runtime.name, selector, _IMDS_SELECTORS)}
    return http.get(runtime.endpoint, params=params, headers={"Metadata": "true"})


def _arc(runtime: ManagedIdentityRuntime, environ: Mapping[str, str], resource: str,
         selector: IdentitySelector | None, http: httpx.Client) -> httpx.Response:
    """Azure Arc: a 401 naming a key file only root can read, then ``Authorization: Basic``."""
    params = {"resource": resource, "api-version": "2020-06-01",
              **_selector_param(runtime.name, selector, _IMDS_SELECTORS)}
    first = http.get(runtime.endpoint, params=params, headers={"Metadata": "true"})
    if first.status_code != 401:
        return first
    key = _arc_key(first.headers.get("www-authenticate"))
    return http.get(runtime.endpoint, params=params,
                    headers={"Metadata": "true", "Authorization": f"Basic {key}"})


_REQUESTS: dict[RuntimeName, _Request] = {
    "app-service": _app_service, "msi": _legacy_msi, "imds": _imds, "arc": _arc,
}


def request_token(
    runtime: ManagedIdentityRuntime,
    environ: Mapping[str, str],
    resource: str,
    selector: IdentitySelector | None,
    http: httpx.Client,
) -> httpx.Response:
    """One token request to ``runtime``'s endpoint, as azure-identity/msal would send it.

    Returns the final response (after Arc's key challenge). Raises `ValueError` for a runtime
    tenantops does not ask directly (Service Fabric, Cloud Shell) or an unusable selector, and
    `httpx.HTTPError` when the endpoint cannot be reached; callers translate both.
    """
    request = _REQUESTS.get(runtime.name)
    if request is None:
        raise ValueError(f"tenantops does not call the {runtime.title} endpoint directly")
    return request(runtime, environ, resource, selector, http)
