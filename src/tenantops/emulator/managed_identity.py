"""The managed-identity endpoints of Azure runtimes, field for field (shared reference §1).

- App Service / Functions / Automation: ``IDENTITY_ENDPOINT`` + ``X-IDENTITY-HEADER``,
  api-version 2019-08-01, selectors ``client_id`` | ``principal_id`` | ``object_id`` |
  ``mi_res_id``; Automation's POST form variant; Kestrel-shaped errors, and the vague 500 that
  hides Entra's AADSTS500011 / AADSTS501051.
- Legacy ``MSI_ENDPOINT`` + ``MSI_SECRET``: api-version 2017-09-01, ``secret`` header,
  ``clientid`` selector, ``expires_on`` as a date string (App Service), or as epoch seconds
  (Azure Machine Learning, which uses the same variables; azure-identity treats the pair as
  Azure ML and cannot parse App Service's date string).
- IMDS: ``/metadata/identity/oauth2/token`` with ``Metadata: true``; OAuth-shaped errors.
- Azure Arc: 401 + ``WWW-Authenticate: Basic realm=<key file>``, then ``Authorization: Basic``.

Every refusal also carries ``x-tenantops-diagnostic`` with what Entra really said, which Azure
does not show; ``tenantops auth doctor`` reads it. Endpoints that cache tokens (App Service by
default, `tenantops.emulator.token_cache`) serve an identity the same token for a resource for
the cache age, and say so in the same header: when it was issued, its roles and today's.
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
import time
import uuid
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tenantops.emulator.directory import ManagedIdentity
from tenantops.emulator.state import EmulatorState, Host
from tenantops.emulator.token_cache import CacheFamily
from tenantops.emulator.tokens import AadstsError, IssuedToken

__all__ = ["ARC_KEY_DIR", "managed_identity_routes"]

DIAGNOSTIC_HEADER = "x-tenantops-diagnostic"
ARC_KEY_DIR = Path("/var/opt/azcmagent/tokens")
_VAGUE_500 = "An unexpected error occured while fetching the AAD Token."
_UNLOAD = "Unable to load the proper Managed Identity."


def _kestrel(status: int, message: str, diagnostic: str) -> JSONResponse:
    correlation = str(uuid.uuid4())
    return JSONResponse(
        {"statusCode": status, "message": message, "correlationId": correlation},
        status_code=status,
        headers={"Server": "Kestrel", "X-CORRELATION-ID": correlation,
                 DIAGNOSTIC_HEADER: diagnostic},
    )


def _oauth_error(status: int, error: str, description: str, diagnostic: str | None = None,
                 server: str = "IMDS/150.870.65.1854") -> JSONResponse:
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status,
        headers={"Server": server, DIAGNOSTIC_HEADER: diagnostic or description},
    )


def _select(host: Host, selectors: dict[str, str]) -> ManagedIdentity | None:
    """The identity a request names, or the host's system-assigned identity when it names none."""
    if not selectors:
        return host.system_identity
    (kind, value), = selectors.items()
    wanted = value.strip().lower()
    candidates = [*host.user_identities]
    if host.system_identity is not None:
        candidates.append(host.system_identity)
    for mi in candidates:
        if kind in {"client_id", "clientid"} and mi.client_id.lower() == wanted:
            return mi
        if kind in {"principal_id", "object_id"} and mi.principal_id.lower() == wanted:
            return mi
        if kind in {"mi_res_id", "msi_res_id"} and mi.resource_id.lower() == wanted:
            return mi
    return None


def _selector_diagnostic(host: Host, selectors: dict[str, str]) -> str:
    if not selectors:
        return (
            f"host {host.name!r} has no system-assigned identity; name a user-assigned identity "
            "with client_id, principal_id/object_id or mi_res_id "
            "(azure-identity: ManagedIdentityCredential(client_id=...) or AZURE_CLIENT_ID)"
        )
    (kind, value), = selectors.items()
    return f"no managed identity on host {host.name!r} has {kind}={value}"


def _issue(state: EmulatorState, family: CacheFamily, identity: ManagedIdentity,
           resource: str) -> tuple[IssuedToken, dict[str, str]]:
    """A token for ``identity``, from the cache when ``family`` caches; and the headers that
    say which (``x-tenantops-diagnostic``), empty when nothing is cached."""
    app = state.tokens.resolve_resource(resource)
    cache = state.mi_tokens
    cached = cache.get(family, identity.client_id, resource)
    if cached is not None:
        state.count("tokens:managed-identity:cached")
        roles_now = state.application_roles(identity.name, app)
        return cached, {DIAGNOSTIC_HEADER: cache.served_diagnostic(family, cached, roles_now)}
    token = state.tokens.app_token(app, resource, identity, "managed-identity")
    state.count("tokens:managed-identity")
    if not cache.policy.caches(family):
        return token, {}
    cache.put(family, identity.client_id, resource, token)
    return token, {DIAGNOSTIC_HEADER: cache.issued_diagnostic(family, token)}


def _selectors(params: dict[str, str], names: tuple[str, ...]) -> dict[str, str]:
    return {name: params[name] for name in names if params.get(name)}


async def _params(request: Request) -> dict[str, str]:
    params = dict(request.query_params)
    if request.method == "POST":
        form = await request.form()
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    return params


def managed_identity_routes(state: EmulatorState) -> list[Route]:
    async def app_service(request: Request) -> Response:
        """App Service, Functions, Container Apps and Automation cloud jobs."""
        runtime = request.path_params.get("runtime", "app-service")
        state.count(f"mi:{runtime}")
        params = await _params(request)
        host = state.host_for_secret(request.headers.get("x-identity-header", ""))
        if host is None:
            what = "missing" if "x-identity-header" not in request.headers else "wrong"
            return _kestrel(401, "Unauthorized request.",
                            f"the X-IDENTITY-HEADER header is {what}; send the value of the "
                            "IDENTITY_HEADER environment variable")
        version = params.get("api-version")
        if version != "2019-08-01" and not (runtime == "automation" and version is None):
            return _kestrel(400, f"The api-version '{version}' is not supported.",
                            "this endpoint speaks api-version=2019-08-01")
        resource = params.get("resource", "")
        if not resource:
            return _kestrel(400, "The resource parameter is required.",
                            "add resource=<app ID URI or client ID> to the request")
        selectors = _selectors(params, ("client_id", "principal_id", "object_id", "mi_res_id"))
        if len(selectors) > 1:
            return _kestrel(400, "Only one of client_id, principal_id, object_id, mi_res_id "
                            "may be given.", f"several selectors sent: {sorted(selectors)}")
        identity = _select(host, selectors)
        if identity is None:
            message = (
                "No User Assigned or Delegated Managed Identity found for specified "
                "ClientId/ResourceId/PrincipalId." if selectors else _UNLOAD
            )
            return _kestrel(400, message, _selector_diagnostic(host, selectors))
        family: CacheFamily = "automation" if runtime == "automation" else "app-service"
        try:
            token, diagnostic = _issue(state, family, identity, resource)
        except AadstsError as exc:
            return _kestrel(500, _VAGUE_500, str(exc))
        correlation = str(uuid.uuid4())
        return JSONResponse(
            {"access_token": token.access_token, "expires_on": str(token.expires_on),
             "resource": resource, "token_type": "Bearer", "client_id": identity.client_id,
             "not_before": str(token.not_before)},
            headers={"Server": "Kestrel", "X-CORRELATION-ID": correlation, **diagnostic},
        )

    async def legacy_msi(request: Request) -> Response:
        """``MSI_ENDPOINT`` / ``MSI_SECRET``, api-version 2017-09-01."""
        flavor = request.path_params.get("flavor", "msi")
        state.count(f"mi:{flavor}")
        params = await _params(request)
        host = state.host_for_secret(request.headers.get("secret", ""))
        if host is None:
            return _kestrel(401, "Unauthorized request.",
                            "the secret header is missing or wrong; send the value of MSI_SECRET")
        if params.get("api-version") != "2017-09-01":
            return _kestrel(400, f"The api-version '{params.get('api-version')}' is not "
                            "supported.", "this endpoint speaks api-version=2017-09-01")
        resource = params.get("resource", "")
        if not resource:
            return _kestrel(400, "The resource parameter is required.",
                            "add resource=<app ID URI or client ID> to the request")
        selectors = _selectors(params, ("clientid",))
        identity = _select(host, selectors)
        if identity is None:
            return _kestrel(400, _UNLOAD, _selector_diagnostic(host, selectors))
        family: CacheFamily = "azure-ml" if flavor == "azure-ml" else "app-service"
        try:
            token, diagnostic = _issue(state, family, identity, resource)
        except AadstsError as exc:
            return _kestrel(500, _VAGUE_500, str(exc))
        expires = dt.datetime.fromtimestamp(token.expires_on, dt.timezone.utc)
        expires_on = (str(token.expires_on) if flavor == "azure-ml"
                      else expires.strftime("%m/%d/%Y %H:%M:%S +00:00"))
        return JSONResponse(
            {"access_token": token.access_token, "expires_on": expires_on,
             "resource": resource, "token_type": "Bearer"},
            headers={"Server": "Kestrel", **diagnostic},
        )

    def _imds_body(token: IssuedToken, identity: ManagedIdentity) -> dict[str, Any]:
        # expires_in counts from now: a cached token has less left than its lifetime.
        left = str(max(token.expires_on - int(time.time()), 0))
        return {
            "access_token": token.access_token, "refresh_token": "",
            "expires_in": left, "expires_on": str(token.expires_on),
            "ext_expires_in": left, "not_before": str(token.not_before),
            "resource": token.resource, "token_type": "Bearer",
            "client_id": identity.client_id, "object_id": identity.principal_id,
            "msi_res_id": identity.resource_id,
        }

    def _imds_token(host: Host, params: dict[str, str], server: str,
                    family: CacheFamily) -> Response:
        if not params.get("api-version"):
            return _oauth_error(400, "invalid_request",
                                "Required query variable 'api-version' is missing", server=server)
        resource = params.get("resource", "")
        if not resource:
            return _oauth_error(400, "invalid_request",
                                "Required query variable 'resource' is missing", server=server)
        selectors = _selectors(params, ("client_id", "object_id", "msi_res_id", "mi_res_id"))
        if len(selectors) > 1:
            return _oauth_error(400, "invalid_request",
                                "Only one of client_id, object_id, msi_res_id may be given",
                                server=server)
        identity = _select(host, selectors)
        if identity is None:
            return _oauth_error(400, "invalid_request", "Identity not found",
                                _selector_diagnostic(host, selectors), server=server)
        try:
            token, diagnostic = _issue(state, family, identity, resource)
        except AadstsError as exc:
            return _oauth_error(400, exc.error, str(exc), server=server)
        return JSONResponse(_imds_body(token, identity), headers={"Server": server, **diagnostic})

    async def imds(request: Request) -> Response:
        """Azure VM Instance Metadata Service."""
        state.count("mi:imds")
        host = state.host_for_secret(request.path_params["host"])
        if request.headers.get("metadata") != "true":
            return _oauth_error(400, "bad_request_102", "Required metadata header not specified",
                                "send the header 'Metadata: true' (lowercase true)")
        if host is None:
            return _oauth_error(400, "invalid_request", "Identity not found",
                                "this IMDS address belongs to no emulated host")
        return _imds_token(host, dict(request.query_params), "IMDS/150.870.65.1854", "imds")

    arc_keys: dict[str, Path] = {}
    """Each key the agent issued and its file; both go once the key is used (Arc's himds
    writes a new key file per challenge and deletes it after use)."""

    def _arc_key_dir() -> Path:
        try:
            ARC_KEY_DIR.mkdir(parents=True, exist_ok=True)
            probe = ARC_KEY_DIR / ".tenantops-probe"
            probe.write_text("")
            probe.unlink()
            return ARC_KEY_DIR
        except OSError:
            return state.data_dir / "arc-tokens"

    async def arc(request: Request) -> Response:
        """Azure Arc's himds: a challenge with a key file only root can read, then the token."""
        state.count("mi:arc")
        server = "Microsoft-HTTPAPI/2.0"
        host = state.host_for_secret(request.path_params["host"])
        if request.headers.get("metadata", "").lower() != "true":
            return _oauth_error(400, "invalid_request", "Required metadata header not specified",
                                "send the header 'Metadata: true'", server=server)
        if host is None:
            return _oauth_error(404, "invalid_request", "Identity not found",
                                "this Arc address belongs to no emulated host", server=server)
        authorization = request.headers.get("authorization", "")
        if not authorization.lower().startswith("basic "):
            folder = _arc_key_dir()
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            key = secrets.token_hex(32)
            path = folder / f"{uuid.uuid4()}.key"
            path.write_text(key)
            path.chmod(0o600)
            arc_keys[key] = path
            return Response(status_code=401, headers={
                "WWW-Authenticate": f"Basic realm={path}", "Server": server,
                DIAGNOSTIC_HEADER: "challenge: read the key file named in WWW-Authenticate and "
                "retry with 'Authorization: Basic <its contents>'"})
        presented = authorization[len("basic "):].strip()
        used = next((k for k in list(arc_keys) if hmac.compare_digest(presented, k)), None)
        if used is None:
            return _oauth_error(401, "unauthorized_client", "Invalid secret key",
                                "the Basic credential is not a key this agent issued (each key "
                                "is good for one request)", server=server)
        arc_keys.pop(used).unlink(missing_ok=True)
        return _imds_token(host, dict(request.query_params), server, "arc")

    return [
        Route("/msi/token", app_service, methods=["GET", "POST"]),
        Route("/{runtime:str}/msi/token", app_service, methods=["GET", "POST"]),
        Route("/msi/2017-09-01/token", legacy_msi, methods=["GET", "POST"]),
        Route("/{flavor:str}/2017-09-01/token", legacy_msi, methods=["GET", "POST"]),
        Route("/imds/{host:str}/metadata/identity/oauth2/token", imds, methods=["GET"]),
        Route("/arc/{host:str}/metadata/identity/oauth2/token", arc, methods=["GET"]),
    ]
