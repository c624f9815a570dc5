"""The emulator's ASGI application: Entra routes, managed-identity routes, the outside issuers it
plays, and a small admin API (health, stats, the directory, app role assignments)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tenantops.emulator.directory import RoleAssignment, describe
from tenantops.emulator.entra import entra_routes
from tenantops.emulator.issuers import issuer_routes
from tenantops.emulator.managed_identity import managed_identity_routes
from tenantops.emulator.state import EmulatorState
from tenantops.errors import DirectoryError

__all__ = ["build_app"]


def build_app(state: EmulatorState) -> Starlette:
    def stats(request: Request) -> Response:
        return JSONResponse(dict(state.stats))

    def directory(request: Request) -> Response:
        return JSONResponse(describe(state.directory, state.authority_url))

    def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "tenant_id": state.directory.tenant_id})

    async def assignments(request: Request) -> Response:
        """GET lists app role assignments; POST makes one, DELETE removes one (JSON body
        ``{"principal", "resource", "role"}``), as Microsoft Graph's appRoleAssignments would."""
        if request.method == "GET":
            return JSONResponse({"assignments": [a.model_dump()
                                                 for a in state.directory.assignments]})
        try:
            body = await request.json()
            assignment = RoleAssignment.model_validate(body)
        except ValueError as exc:
            return JSONResponse({"error": "invalid_request", "error_description":
                                 "send JSON {\"principal\": ..., \"resource\": ..., \"role\": ...}"
                                 f": {exc}"}, status_code=400)
        try:
            changed = (state.assign(assignment) if request.method == "POST"
                       else state.unassign(assignment))
        except DirectoryError as exc:
            return JSONResponse({"error": "invalid_request", "error_description": str(exc)},
                                status_code=400)
        return JSONResponse({"assignment": assignment.model_dump(), "changed": changed,
                             "token_cache": state.mi_tokens.policy.describe()},
                            status_code=201 if changed and request.method == "POST" else 200)

    admin = [
        Route("/_emulator/health", health),
        Route("/_emulator/stats", stats),
        Route("/_emulator/directory", directory),
        Route("/_emulator/assignments", assignments, methods=["GET", "POST", "DELETE"]),
    ]
    # Fixed prefixes first: they must win over Entra's "/{tenant}/...".
    return Starlette(routes=[*admin, *managed_identity_routes(state),
                             *issuer_routes(state.issuers), *entra_routes(state)])
