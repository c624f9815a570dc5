"""The API and the provisioning worker as an Azure Function App (Python v2 programming model).

Two functions (shared reference orchestration-and-hosting.md §1 "Running DBOS inside Azure
Functions", §2 "Hosting FastAPI with AsgiFunctionApp"):

- ``http_app_func``: ``AsgiFunctionApp`` hands every request, any method, route
  ``/{*route}`` under the host's ``routePrefix`` (``api``, kept in host.json), to the FastAPI
  app of `tenantops.api.main.create_app`. The ASGI scope carries the full path, so FastAPI
  sees ``/api/...``, where its routes are. The function's auth level is **anonymous**:
  function keys would add a second, shared secret; App Service Authentication (Easy Auth)
  and tenantops' own token validation protect every route but ``/api/health``.
- ``keep_worker_running``: a timer trigger (every minute, and at host start) that launches the
  engine's worker in this process if it is not running (DBOS recovers this executor's
  unfinished workflows on launch) and re-enqueues every active run that has no workflow.
  DBOS's queue poller then drains the queue on its own threads; the timer only makes sure a
  worker exists even when no HTTP request has arrived since the instance started (the
  FastAPI lifespan runs lazily, on the first request, §1).

In Azure the engine's workflows live in Azure Database for PostgreSQL
(``engine.system_database_url``); SQLite on a Functions file share is not supported by DBOS
for several hosts (§1). Each instance is its own DBOS executor, ``func-<WEBSITE_INSTANCE_ID>``
unless ``engine.executor_id`` is configured, so a live instance takes over the runs of one
that was scaled in (docs/engine.md, "A worker that never comes back").
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from typing import Protocol

import azure.functions as func
from fastapi import FastAPI

from tenantops.api.main import create_app
from tenantops.config import Settings, load_settings

__all__ = [
    "HTTP_FUNCTION",
    "TIMER_SCHEDULE",
    "WORKER_FUNCTION",
    "EngineWorker",
    "WorkerKeeper",
    "build_function_app",
    "instance_settings",
]

log = logging.getLogger("tenantops.hosting")

HTTP_FUNCTION = "http_app_func"
WORKER_FUNCTION = "keep_worker_running"
TIMER_SCHEDULE = "0 */1 * * * *"
"""NCRONTAB (seconds first): at second 0 of every minute."""


class WorkerKeeper(Protocol):
    """What the timer calls: start the worker if it is not running, make sure queued work is
    picked up; returns the number of active runs seen. Must be idempotent and quick."""

    def ensure_running(self) -> int: ...


def instance_settings(settings: Settings, environ: Mapping[str, str] = os.environ) -> Settings:
    """``settings`` with this Functions instance's own executor ID, ``func-<first 16
    characters of WEBSITE_INSTANCE_ID>``, unless ``engine.executor_id`` is set; unchanged
    outside App Service. Instances sharing one ID would each recover the others' runs at
    start-up; with their own, a live instance takes over a scaled-in one's runs."""
    instance = environ.get("WEBSITE_INSTANCE_ID", "").strip()
    if not instance or "executor_id" in settings.engine.model_fields_set:
        return settings
    engine = settings.engine.model_copy(update={"executor_id": f"func-{instance[:16]}"})
    return settings.model_copy(update={"engine": engine})


class EngineWorker:
    """The engine's worker, started in this process on first use and kept for its lifetime."""

    def __init__(self, settings: Settings) -> None:
        self.settings = instance_settings(settings)
        self._engine: object | None = None
        self._lock = threading.Lock()

    def ensure_running(self) -> int:
        from tenantops.provisioning.engine import Engine  # the engine imports DBOS: lazily

        with self._lock:
            engine = self._engine
            if not isinstance(engine, Engine):
                engine = Engine(self.settings)
                self._engine = engine
            if not engine.started:
                engine.start(serve_embedded=False)
                log.info("provisioning worker started in the function app")
            return engine.reconcile()


def build_function_app(
    settings: Settings | None = None,
    *,
    api: FastAPI | None = None,
    worker: WorkerKeeper | None = None,
) -> func.AsgiFunctionApp:
    """The Function App: ``api`` (default: ``create_app(settings)``) behind one anonymous HTTP
    function, and the timer that keeps ``worker`` (default: `EngineWorker`) running.
    Builds everything without I/O; the worker starts on the first timer tick."""
    settings = settings if settings is not None else load_settings()
    keeper: WorkerKeeper = worker if worker is not None else EngineWorker(settings)
    app = func.AsgiFunctionApp(app=api if api is not None else create_app(settings),
                               http_auth_level=func.AuthLevel.ANONYMOUS,
                               function_name=HTTP_FUNCTION)

    @app.function_name(name=WORKER_FUNCTION)
    @app.timer_trigger(arg_name="timer", schedule=TIMER_SCHEDULE, run_on_startup=True,
                       use_monitor=False)
    def keep_worker_running(timer: func.TimerRequest) -> None:
        active = keeper.ensure_running()
        log.info("worker running; %d active runs%s", active,
                 " (timer past due)" if timer.past_due else "")

    return app
