"""Hosting tenantops outside ``tenantops serve``: the Azure Functions entry point."""

from __future__ import annotations

from tenantops.hosting.azure_functions import (
    HTTP_FUNCTION,
    TIMER_SCHEDULE,
    WORKER_FUNCTION,
    EngineWorker,
    WorkerKeeper,
    build_function_app,
    instance_settings,
)

__all__ = [
    "HTTP_FUNCTION",
    "TIMER_SCHEDULE",
    "WORKER_FUNCTION",
    "EngineWorker",
    "WorkerKeeper",
    "build_function_app",
    "instance_settings",
]
