"""The FastAPI application: routers, and the one place where auth errors become HTTP.

Domain code raises `tenantops.errors.AuthError` subclasses; `create_app` maps them to 401,
403 or 503 with the ``WWW-Authenticate`` challenge and JSON body of `tenantops.auth`.
The interactive docs and the OpenAPI document are off: ``/api/health`` is the only route
served without a token.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tenantops import __version__
from tenantops.api.routes import health, whoami
from tenantops.auth import Authenticator, error_body, www_authenticate
from tenantops.config import Settings
from tenantops.errors import AuthError

__all__ = ["create_app"]


def create_app(settings: Settings, *, authenticator: Authenticator | None = None) -> FastAPI:
    """The API for ``settings``; raises `ConfigError` when ``auth.tenant_id`` or
    ``auth.client_id`` is missing. Does no I/O: signing keys are fetched on the first request."""
    auth = authenticator if authenticator is not None else Authenticator(settings.auth)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        auth.validator.jwks.close()

    app = FastAPI(
        title="tenantops", version=__version__, lifespan=lifespan,
        docs_url=None, redoc_url=None, openapi_url=None,
    )
    app.state.settings = settings
    app.state.authenticator = auth

    @app.exception_handler(AuthError)
    async def refuse(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AuthError)
        headers = {"Cache-Control": "no-store"}
        if exc.status_code in (401, 403):
            headers["WWW-Authenticate"] = www_authenticate(
                exc, client_id=auth.client_id, authority=auth.authority,
                tenant_id=auth.tenant_id)
        else:
            wait = auth.validator.jwks.seconds_until_refresh_allowed()
            headers["Retry-After"] = str(max(1, math.ceil(wait)))
        return JSONResponse(error_body(exc), status_code=exc.status_code, headers=headers)

    app.include_router(health.router, prefix="/api")
    app.include_router(whoami.router, prefix="/api")
    return app
