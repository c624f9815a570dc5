"""``GET /api/whoami``: the caller as the API sees it; any valid token will do.

The first thing to call when a request is refused elsewhere: it shows which identity,
application and app roles the token carries.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from tenantops.api.deps import CurrentPrincipal
from tenantops.auth import PrincipalSource

__all__ = ["WhoAmI", "router"]

router = APIRouter(tags=["identity"])


class WhoAmI(BaseModel):
    oid: str
    appid: str
    tid: str
    roles: list[str]
    token_version: str
    source: PrincipalSource


@router.get("/whoami")
async def whoami(principal: CurrentPrincipal) -> WhoAmI:
    return WhoAmI(
        oid=principal.oid, appid=principal.appid, tid=principal.tid,
        roles=list(principal.roles), token_version=principal.token_version,
        source=principal.source,
    )
