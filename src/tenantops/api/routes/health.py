"""``GET /api/health`` (liveness) and ``GET /api/health/ready`` (readiness): the only routes
that need no token, so they say nothing an anonymous caller should not know (no URL, host
name, user or secret).

- ``/api/health``: the process answers. For a liveness probe: restart the process when it
  fails. It touches no dependency, so a database outage never restarts healthy processes.
- ``/api/health/ready``: the catalog and the system database answer within
  ``engine.readiness_timeout_seconds``; 503 when one of them is down (send this process no
  traffic), 200 with ``"degraded"`` when something needs a look (no worker alive, a worker's
  clock off the database's, a worker's upkeep failing). For readiness probes (containers)
  and the Function App's health check.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from tenantops import __version__
from tenantops.api.deps import EngineDep

__all__ = ["CheckOut", "Health", "ReadinessOut", "router"]

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str
    version: str


class CheckOut(BaseModel):
    status: Literal["ok", "degraded", "down"]
    detail: str | None = Field(default=None, description="why, in a few words")
    seconds: float | None = Field(default=None, description="how long the check took")


class ReadinessOut(BaseModel):
    """Each dependency's state; ``unavailable`` (HTTP 503) when the catalog or the system
    database is down."""

    status: Literal["ok", "degraded", "unavailable"]
    version: str
    checks: dict[str, CheckOut]


@router.get("/health")
async def health() -> Health:
    """Liveness: the process answers (no dependency is touched)."""
    return Health(status="ok", version=__version__)


@router.get("/health/ready", response_model=ReadinessOut,
            responses={503: {"model": ReadinessOut, "description": "a database is down"}})
def ready(engine: EngineDep) -> JSONResponse:
    """Readiness: the catalog and the system database answer; what is degraded."""
    readiness = engine.readiness()
    body = ReadinessOut(
        status=readiness.status, version=__version__,
        checks={name: CheckOut(status=c.status, detail=c.detail, seconds=c.seconds)
                for name, c in readiness.checks.items()})
    return JSONResponse(body.model_dump(), status_code=503 if readiness.status == "unavailable"
                        else 200, headers={"Cache-Control": "no-store"})
