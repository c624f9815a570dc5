"""The HTTP API: FastAPI, one router per resource under ``routes/``, auth in ``deps``."""

from __future__ import annotations

from tenantops.api.main import create_app

__all__ = ["create_app"]
