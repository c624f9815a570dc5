"""The emulator's ASGI application: Entra routes, managed-identity routes, and a small admin API."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tenantops.emulator.directory import describe
from tenantops.emulator.entra import entra_routes
from tenantops.emulator.managed_identity import managed_identity_routes
from tenantops.emulator.state import EmulatorState

__all__ = ["build_app"]


def build_app(state: EmulatorState) -> Starlette:
    def stats(request: Request) -> Response:
        return JSONResponse(dict(state.stats))

    def directory(request: Request) -> Response:
        return JSONResponse(describe(state.directory, state.authority_url))

    def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "tenant_id": state.directory.tenant_id})

    admin = [
        Route("/_emulator/health", health),
        Route("/_emulator/stats", stats),
        Route("/_emulator/directory", directory),
    ]
    # Managed-identity routes first: their fixed prefixes must win over "/{tenant}/...".
    return Starlette(routes=[*admin, *managed_identity_routes(state), *entra_routes(state)])
