"""The FastAPI application: routers, and the one place where domain errors become HTTP.

Domain code raises `tenantops.errors` exceptions; `create_app` maps them here and nowhere
else: `AuthError` to 401/403/503 with the ``WWW-Authenticate`` challenge of `tenantops.auth`,
`SpecError` and request validation to 422 naming field, value and rule, unknown tenants and
runs to 404, conflicts to 409. ``/api/health``, ``/api/health/ready`` and ``/api/meta`` are the
only routes served without a token; the OpenAPI document is served at ``/api/openapi.json``
to any valid token.
Credentials and body size are checked at the request edge (`tenantops.api.edge`), before a
route reads the body.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from tenantops import __version__, telemetry
from tenantops.api.deps import CurrentPrincipal
from tenantops.api.edge import RequestEdge
from tenantops.api.middleware import RequestObserver
from tenantops.api.routes import (
    audit,
    drift,
    events,
    fleets,
    health,
    meta,
    runs,
    tenants,
    whoami,
)
from tenantops.auth import Authenticator, error_body, www_authenticate
from tenantops.config import Settings
from tenantops.dashboard import mount_dashboard
from tenantops.errors import (
    AuthError,
    CatalogError,
    ConfirmationError,
    DriftNotCheckedError,
    EventDeliveryNotFoundError,
    FleetNotFoundError,
    FleetStateError,
    IdempotencyKeyReusedError,
    MigrationError,
    PlacementError,
    ProvisioningError,
    RunConflictError,
    RunNotFoundError,
    RunStateError,
    SpecError,
    TenantConflictError,
    TenantNotFoundError,
    TenantOpsError,
    TenantStateError,
)
from tenantops.log import redact
from tenantops.provisioning.engine import Engine

__all__ = ["create_app"]

_STATUS: list[tuple[type[TenantOpsError], int, str]] = [
    (TenantNotFoundError, 404, "tenant_not_found"),
    (RunNotFoundError, 404, "run_not_found"),
    (DriftNotCheckedError, 404, "drift_not_checked"),
    (EventDeliveryNotFoundError, 404, "delivery_not_found"),
    (FleetNotFoundError, 404, "fleet_run_not_found"),
    (SpecError, 422, "invalid_spec"),
    (ConfirmationError, 422, "confirmation_mismatch"),
    (IdempotencyKeyReusedError, 409, "idempotency_key_reused"),
    (TenantConflictError, 409, "tenant_conflict"),
    (RunConflictError, 409, "run_conflict"),
    (TenantStateError, 409, "tenant_state"),
    (RunStateError, 409, "run_state"),
    (PlacementError, 409, "placement_refused"),
    (FleetStateError, 409, "fleet_run_state"),
    (MigrationError, 422, "invalid_migration"),
    (CatalogError, 503, "catalog_unavailable"),
    (ProvisioningError, 500, "provisioning_error"),
]


def _problem(error: str, description: str, details: list[dict[str, Any]] | None = None,
             status: int = 400, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": error, "error_description": redact(description), "details": details or []}
    return JSONResponse(jsonable_encoder(body), status_code=status, headers=headers)


def _with_plans(schema: dict[str, Any], plans: list[str]) -> dict[str, Any]:
    """The OpenAPI document with the ``plan`` a tenant is given (onboarding, change)
    limited to the deployment's plans, so a client generated from it offers those and not
    the defaults. Responses and fleet selections list none: a tenant may hold a plan since
    removed from the settings."""
    components = schema.get("components", {}).get("schemas", {})
    for name in ("TenantRequest", "TenantPatch"):
        plan = components.get(name, {}).get("properties", {}).get("plan")
        if plan is None:
            continue
        branches = [b for b in plan.get("anyOf", [plan]) if b.get("type") == "string"]
        for branch in branches:
            branch["enum"] = list(plans)
    return schema


def create_app(
    settings: Settings, *, authenticator: Authenticator | None = None,
    engine: Engine | None = None,
) -> FastAPI:
    """The API for ``settings``; raises `ConfigError` when ``auth.tenant_id`` or
    ``auth.client_id`` is missing. Does no I/O: signing keys are fetched on the first request,
    the catalog is opened on the first tenant request. ``engine`` executes runs when it is
    started (``tenantops serve``); an engine that is not started only records and enqueues
    them for a worker (``tenantops worker``)."""
    auth = authenticator if authenticator is not None else Authenticator(settings.auth)
    runs_engine = engine if engine is not None else Engine(settings)
    telemetry.configure(settings.telemetry)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop_watching = telemetry.watch_queue(runs_engine.catalog.count_active_runs)
        yield
        stop_watching()
        dashboard = getattr(app.state, "dashboard", None)
        if dashboard is not None:
            dashboard.close()  # its change watcher's thread
        auth.validator.jwks.close()

    app = FastAPI(
        title="tenantops", version=__version__, lifespan=lifespan,
        description="Tenant onboarding for multi-tenant SaaS on Azure. Every route but "
        "/api/health, /api/health/ready and /api/meta needs an Entra ID access token "
        "whose audience is this API and whose "
        "roles include Tenants.Read (reads), Tenants.Write (onboard, change, suspend, resume, "
        "retry, cancel), Tenants.Delete (offboard) or Audit.Read (the audit trail).",
        docs_url=None, redoc_url=None, openapi_url=None,
        # FastAPI's own OpenTelemetry (0.165+) is off: RequestObserver opens the request
        # spans of the API and the dashboard alike, and nothing records exception text.
        telemetry={"tracing": False, "metrics": False, "logs": False,
                   "operation_spans": False},
    )
    app.state.settings = settings
    app.state.authenticator = auth
    app.state.engine = runs_engine

    def refusal(exc: AuthError) -> JSONResponse:
        headers = {"Cache-Control": "no-store"}
        if exc.status_code in (401, 403):
            headers["WWW-Authenticate"] = www_authenticate(
                exc, client_id=auth.client_id, authority=auth.authority,
                tenant_id=auth.tenant_id)
        else:
            wait = auth.validator.jwks.seconds_until_refresh_allowed()
            headers["Retry-After"] = str(max(1, math.ceil(wait)))
        return JSONResponse(error_body(exc), status_code=exc.status_code, headers=headers)

    @app.exception_handler(AuthError)
    async def refuse(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AuthError)
        return refusal(exc)

    @app.exception_handler(TenantOpsError)
    async def domain_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, TenantOpsError)
        status, code = next(((s, c) for kind, s, c in _STATUS if isinstance(exc, kind)),
                            (500, "internal_error"))
        details = ([{"field": p.field, "value": p.value, "rule": p.rule} for p in exc.problems]
                   if isinstance(exc, SpecError) else None)
        if isinstance(exc, RunConflictError) and exc.active_run_id:
            details = [{"field": "active_run", "value": exc.active_run_id,
                        "rule": "a run of this tenant is in progress; wait for it or cancel it"}]
        headers = {"Retry-After": "5"} if status == 503 else None
        return _problem(code, str(exc), details, status, headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        details = []
        for err in exc.errors():
            where = [str(p) for p in err.get("loc", ()) if p != "body"]
            details.append({"field": ".".join(where) or "body", "value": err.get("input"),
                            "rule": err.get("msg", "invalid")})
        listed = "; ".join(f"{d['field']} = {d['value']!r}: {d['rule']}" for d in details)
        return _problem("invalid_request", f"invalid request: {listed}", details, 422)

    app.include_router(health.router, prefix="/api")
    app.include_router(meta.router, prefix="/api")
    app.include_router(whoami.router, prefix="/api")
    app.include_router(tenants.router, prefix="/api")
    app.include_router(drift.router, prefix="/api")
    app.include_router(runs.router, prefix="/api")
    app.include_router(fleets.router, prefix="/api")
    app.include_router(events.router, prefix="/api")
    app.include_router(audit.router, prefix="/api")
    mount_dashboard(app, settings, runs_engine)

    @app.get("/api/openapi.json", include_in_schema=False)
    async def openapi(principal: CurrentPrincipal) -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _with_plans(app.openapi(), sorted(settings.plans))
        return app.openapi_schema

    app.add_middleware(RequestEdge, authenticator=auth, refusal=refusal,
                       max_body_bytes=settings.api.max_body_bytes)
    # Outermost: request IDs, request spans, and the audit record of every state-changing
    # request, the edge's refusals (401, 413) included.
    app.add_middleware(RequestObserver, catalog=runs_engine.catalog)
    return app
