"""``GET /api/meta``: what a client needs to call this API, public and without a token.

The audience to request, the tenant and authority that issue tokens, and the version: values
every 401 of this API already shows (``WWW-Authenticate: ... resource_id``, ``authorization_uri``
and the body's ``expected``), so publishing them here discloses nothing new, and clients learn
the audience without sending a tokenless request that the server must log as a refusal. No
secret, no configuration beyond that. See docs/decisions.md (2026-12-06).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from tenantops import __version__
from tenantops.auth import Authenticator

__all__ = ["ApiMeta", "router"]

router = APIRouter(tags=["meta"])

ROLES = ("Tenants.Read", "Tenants.Write", "Tenants.Delete")


class ApiMeta(BaseModel):
    service: str = Field(description="always 'tenantops': how a client knows what answered")
    version: str
    audience: str = Field(description="the resource to request a token for: the API app "
                          "registration's client ID")
    audiences: list[str] = Field(description="every aud this API accepts")
    scope: str = Field(description="the client-credentials scope: api://<client ID>/.default")
    tenant_id: str
    authority: str
    authorization_uri: str
    roles: list[str] = Field(description="the app roles the API's routes need")


@router.get("/meta", response_model=ApiMeta)
async def meta(request: Request) -> ApiMeta:
    """How to get a token this API accepts. Public: needs no token."""
    auth = request.app.state.authenticator
    assert isinstance(auth, Authenticator)
    return ApiMeta(
        service="tenantops", version=__version__, audience=auth.client_id,
        audiences=list(auth.validator.audiences), scope=f"api://{auth.client_id}/.default",
        tenant_id=auth.tenant_id, authority=auth.authority,
        authorization_uri=f"{auth.authority}/{auth.tenant_id}/oauth2/authorize",
        roles=list(ROLES))
