"""``GET /api/health``: liveness, and the only route that needs no token."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from tenantops import __version__

__all__ = ["Health", "router"]

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str
    version: str


@router.get("/health")
async def health() -> Health:
    return Health(status="ok", version=__version__)
