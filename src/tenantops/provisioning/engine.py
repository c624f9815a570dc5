"""The provisioning engine: one durable DBOS workflow per run, one durable step per
provider action, with every step's status recorded in the catalog as it changes.

How the guarantees are kept:

- **Idempotent requests.** `Engine.onboard` registers the tenant and its run in the catalog
  (unique indexes decide races) and enqueues the workflow under the run's workflow ID
  (``tenantops/<slug>/<kind>/<run id>``); DBOS returns the existing workflow for a known ID,
  so a repeated request returns the same run and starts nothing new.
- **One active run per tenant.** A partial unique index on runs allows one pending or
  running run per tenant, across any number of API instances.
- **Crash safety.** DBOS checkpoints each step's result; a restarted worker recovers its
  pending workflows and continues at the first step without a checkpoint. Providers are
  idempotent, so the one step that was running when the process died may run again safely;
  a step that succeeded never runs again.
- **Transient faults** (`TransientProviderError`) are retried with exponential backoff and
  jitter, sleeping durably (``DBOS.sleep``) between attempts, up to
  ``engine.max_attempts``. **Pending** operations (certificate issuance, DNS propagation)
  are polled after durable sleeps, up to ``engine.pending_timeout_seconds``.
- **A worker that never comes back.** Every started engine says it is alive in the catalog
  (``workers``) every quarter of ``engine.worker_timeout_seconds``; a live worker resumes the
  unfinished workflows of workers unheard of for that long, or signed off, on the shared
  queue (`Engine.take_over_orphaned_runs`).
- **Permanent faults** end the run as ``failed`` with the provider's message.
  `Engine.retry` rewinds the same workflow to the failed step's first attempt (earlier
  steps keep their checkpoints and are not run again). `Engine.cancel` stops a run at its
  next step.

DBOS is a process-wide singleton: one `Engine` may be started per process. An engine that
is not started still accepts requests (through a DBOS client on the system database), which
a started engine, a worker, executes.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import logging
import os
import random
import socket
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from dbos import DBOS, DBOSClient, DBOSConfig, SetWorkflowID
from sqlalchemy.engine import make_url

from tenantops.catalog import Catalog, IdempotencyClaim, Run
from tenantops.config import Settings
from tenantops.errors import (
    CatalogError,
    ProviderError,
    ProvisioningError,
    RunStateError,
    TenantOpsError,
    TransientProviderError,
)
from tenantops.provisioning.plan import (
    Plan,
    Preview,
    StepInputs,
    offboarding_plan,
    onboarding_options,
    plan_for,
    preview,
)
from tenantops.provisioning.providers.base import EmbeddedService, Middleware, Pending
from tenantops.provisioning.providers.registry import Providers, build_providers
from tenantops.provisioning.spec import TenantSpec

__all__ = [
    "QUEUE_NAME",
    "WORKFLOW_NAME",
    "Engine",
    "StepRef",
    "current_step",
    "run_workflow",
    "system_database_url",
]

log = logging.getLogger("tenantops.provisioning.engine")

QUEUE_NAME = "tenantops-runs"
WORKFLOW_NAME = "tenantops.run"
_EXECUTE_STEP = "tenantops.execute_step"
_APP_NAME = "tenantops"
_RECONCILE_SECONDS = 30.0
_RETRY_SETTLE_SECONDS = 10.0

_engine: Engine | None = None
_engine_lock = threading.Lock()


@dataclass(frozen=True)
class StepRef:
    """The step whose provider call is running on this thread (for call logs)."""

    run_id: str
    tenant: str
    step: str
    attempt: int


@dataclass(frozen=True)
class _RunContext:
    """What every step of one run is built from, parsed once per workflow execution from
    the checkpointed result of ``tenantops.load_run``; ``outputs`` grows as steps succeed."""

    spec: TenantSpec
    plan: Plan
    outputs: dict[str, dict[str, Any]]


_current_step: contextvars.ContextVar[StepRef | None] = contextvars.ContextVar(
    "tenantops_current_step", default=None
)


def current_step() -> StepRef | None:
    """The run step being executed on this thread, or None outside the engine."""
    return _current_step.get()


def system_database_url(settings: Settings) -> str:
    """The DBOS system database: configured, or ``<data_dir>/engine.sqlite``."""
    if settings.engine.system_database_url:
        return settings.engine.system_database_url
    return f"sqlite:///{(settings.data_dir / 'engine.sqlite').resolve()}"


def _active() -> Engine:
    engine = _engine
    if engine is None:
        raise ProvisioningError(
            "a tenantops workflow ran in a process without a started engine; start one with "
            "Engine.start() or python -m tenantops.provisioning.worker"
        )
    return engine


def _is_catalog_error(error: BaseException) -> bool:
    return isinstance(error, CatalogError)


# -- the durable workflow and its steps (module level: DBOS registers them at import) ----

@DBOS.workflow(name=WORKFLOW_NAME)
def run_workflow(run_id: str) -> str:
    """Carry out one run; returns its final status (``succeeded``, ``failed``)."""
    return _active()._run(run_id)


@DBOS.step(name="tenantops.load_run", retries_allowed=True, max_attempts=5,
           interval_seconds=0.5, should_retry=_is_catalog_error)
def _load_run_step(run_id: str) -> dict[str, Any]:
    catalog = _active().catalog
    run = catalog.get_run(run_id)
    return {
        "kind": run.kind, "options": dict(run.options),
        "spec": catalog.get_tenant(run.tenant_slug).spec_fields(),
        "outputs": {s.name: s.outputs for s in run.steps if s.status == "succeeded"},
    }


@DBOS.step(name=_EXECUTE_STEP, retries_allowed=True, max_attempts=5, interval_seconds=0.5,
           should_retry=_is_catalog_error)
def _execute_step(run_id: str, step: str, context: _RunContext) -> dict[str, Any]:
    # DBOS checkpoints a step's result, not its arguments: the context may hold objects.
    return _active()._execute(run_id, step, context)


@DBOS.step(name="tenantops.finish_run", retries_allowed=True, max_attempts=5,
           interval_seconds=0.5, should_retry=_is_catalog_error)
def _finish_run_step(run_id: str, failed_step: str | None, error: str | None) -> str:
    if failed_step is None:
        return _active().catalog.finish_run(run_id, "succeeded").status
    return _active().catalog.finish_run(
        run_id, "failed", error=error, failed_step=failed_step).status


class Engine:
    """Requests, executes, retries and cancels runs. See the module docstring."""

    def __init__(
        self,
        settings: Settings,
        *,
        catalog: Catalog | None = None,
        providers: Providers | None = None,
        middleware: Sequence[Middleware] = (),
    ) -> None:
        self.settings = settings
        self.catalog = catalog or Catalog.from_settings(settings)
        self.providers = providers or build_providers(
            settings, self.catalog, serve=settings.engine.serve_embedded
        )
        if middleware:
            self.providers.use(middleware)
        self.system_database_url = system_database_url(settings)
        self._client: DBOSClient | None = None
        self._client_lock = threading.Lock()
        self._launched = False
        self._services: list[EmbeddedService] = []
        self._stop = threading.Event()
        self._reconciler: threading.Thread | None = None
        self._system_engine: sa.Engine | None = None
        self._registered = False

    # -- lifecycle (the worker role) ------------------------------------------------------

    @property
    def started(self) -> bool:
        return self._launched

    def start(self, *, serve_embedded: bool | None = None) -> None:
        """Migrate the catalog, start embedded servers, launch DBOS (recovering this
        executor's unfinished workflows) and make sure every active run has a workflow."""
        global _engine
        with _engine_lock:
            if _engine is not None:
                raise ProvisioningError(
                    "an engine is already started in this process and DBOS allows one per "
                    "process; stop it first"
                )
            _engine = self
        try:
            self.catalog.migrate()
            self._worker_seen()  # before DBOS starts: no other worker may take this one for dead
            _prepare_sqlite(self.system_database_url)
            serve = self.settings.engine.serve_embedded if serve_embedded is None else (
                serve_embedded)
            if serve:
                for service in self.providers.services():
                    service.start()
                    self._services.append(service)
            self._system_engine = _sqlite_system_engine(self.system_database_url)
            DBOS(config=self._dbos_config())
            DBOS.launch()
            self._launched = True
            DBOS.register_queue(
                QUEUE_NAME,
                worker_concurrency=self.settings.engine.worker_concurrency,
                polling_interval_sec=self.settings.engine.queue_polling_seconds,
                on_conflict="always_update",
            )
            self._stop.clear()
            self.reconcile()
            self._reconciler = threading.Thread(
                target=self._keep_up, name="tenantops-reconciler", daemon=True)
            self._reconciler.start()
        except TenantOpsError:
            self.stop()
            raise
        except Exception as exc:
            self.stop()
            raise ProvisioningError(
                f"the engine could not start on {_safe_url(self.system_database_url)}: "
                f"{type(exc).__name__}: {exc}; check engine.system_database_url"
            ) from exc
        log.info("engine started: catalog %s, workflows %s, %d runs at once",
                 self.catalog.url, _safe_url(self.system_database_url),
                 self.settings.engine.worker_concurrency)

    def stop(self) -> None:
        """Stop executing (unfinished runs resume when an engine starts again)."""
        global _engine
        self._stop.set()
        if self._reconciler is not None:
            self._reconciler.join(timeout=5)
            self._reconciler = None
        if _engine is self:
            DBOS.destroy()
        self._launched = False
        if self._registered:
            # Gone, not dead: other workers take over its unfinished runs at their next beat.
            self._registered = False
            try:
                self.catalog.worker_left(self.settings.engine.executor_id, pid=os.getpid())
            except TenantOpsError as exc:
                log.warning("could not sign this worker off in the catalog: %s", exc)
        if self._system_engine is not None:
            self._system_engine.dispose()
            self._system_engine = None
        for service in reversed(self._services):
            try:
                service.stop()
            except Exception as exc:  # a server that fails to stop must not stop the rest
                log.warning("could not stop %s: %s", service.name, exc)
        self._services = []
        with self._client_lock:
            if self._client is not None:
                self._client.destroy()
                self._client = None
        with _engine_lock:
            if _engine is self:
                _engine = None
        self.catalog.close()

    def __enter__(self) -> Engine:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _dbos_config(self) -> DBOSConfig:
        config: DBOSConfig = {
            "name": _APP_NAME,
            "system_database_url": self.system_database_url,
            "executor_id": self.settings.engine.executor_id,
            "log_level": "WARNING",
            "run_migrations": True,
            "notification_listener_polling_interval_sec": 0.1,
            # Polling rather than LISTEN/NOTIFY on PostgreSQL too: the engine waits on no
            # notifications, and the listener's dedicated connection outlives DBOS.destroy().
            "use_listen_notify": False,
        }
        if self._system_engine is not None:
            config["system_database_engine"] = self._system_engine
        return config

    def _keep_up(self) -> None:
        """The worker's background duties: say it is alive every quarter of
        ``engine.worker_timeout_seconds`` (at least every 30 s), take over the runs of
        workers that stopped saying so, and every 30 s make sure every active run has a
        workflow."""
        beat = min(self.settings.engine.worker_timeout_seconds / 4, _RECONCILE_SECONDS)
        next_reconcile = time.monotonic() + _RECONCILE_SECONDS
        while not self._stop.wait(beat):
            try:
                self._worker_seen()
                self.take_over_orphaned_runs()
                if time.monotonic() >= next_reconcile:
                    next_reconcile = time.monotonic() + _RECONCILE_SECONDS
                    self.reconcile()
            except TenantOpsError as exc:
                log.warning("worker upkeep failed (will try again in %.0f s): %s", beat, exc)
            except Exception as exc:  # the system database unreachable, for one
                log.warning("worker upkeep failed (will try again in %.0f s): %s: %s", beat,
                            type(exc).__name__, exc)

    def _worker_seen(self) -> None:
        self.catalog.worker_seen(self.settings.engine.executor_id, host=socket.gethostname(),
                                 pid=os.getpid())
        self._registered = True

    def take_over_orphaned_runs(self) -> list[str]:
        """Resume, on the queue, the workflows held by workers that are gone: not seen for
        ``engine.worker_timeout_seconds``, or stopped. Any worker (this one included) then
        continues them from their first unfinished step. Returns their workflow IDs.

        DBOS recovers a worker's workflows only when a worker with the same executor ID
        starts again, which a scaled-in instance never does. Resuming clears the workflow's
        owner, so a worker wrongly taken for dead stops at its next step instead of running
        beside the new owner (providers are idempotent for the step it was in)."""
        timeout = self.settings.engine.worker_timeout_seconds
        alive = self.catalog.live_workers(dt.timedelta(seconds=timeout))
        alive.add(self.settings.engine.executor_id)
        client = self._dbos()
        held = client.list_workflows(status="PENDING", queue_name=QUEUE_NAME,
                                     load_input=False, load_output=False)
        orphans = [w for w in held if w.executor_id and w.executor_id not in alive]
        for workflow in orphans:
            client.resume_workflow(workflow.workflow_id, queue_name=QUEUE_NAME)
            log.warning("taking over %s from worker %s, unheard of for %.0f s or stopped",
                        workflow.workflow_id, workflow.executor_id, timeout)
        return [w.workflow_id for w in orphans]

    def reconcile(self) -> int:
        """Enqueue the workflow of every pending or running run (a no-op for those that
        have one): covers a requester that died between registering a run and enqueueing."""
        runs = self.catalog.active_runs()
        for run in runs:
            self._enqueue(run)
        return len(runs)

    # -- requests (any process) -----------------------------------------------------------

    def onboard(self, spec: TenantSpec | Mapping[str, object], *, requested_by: str,
                idempotency: IdempotencyClaim | None = None) -> Run:
        """Onboard a tenant, or return the run already onboarding (or onboarded) it."""
        if not isinstance(spec, TenantSpec):
            spec = TenantSpec.parse(spec)
        options = onboarding_options(spec, self.settings, self.providers)
        plan = plan_for("onboard", options)
        opened = self.catalog.open_onboarding(
            spec, requested_by=requested_by, steps=plan.templates(self.providers),
            options=options, idempotency=idempotency)
        if not opened.run.finished:
            self._enqueue(opened.run)
        if opened.created:
            log.info("onboarding %s requested by %s: run %s", spec.slug, requested_by,
                     opened.run.id)
        return opened.run

    def offboard(self, slug: str, *, requested_by: str, keep_database: bool = False) -> Run:
        """Offboard a tenant (reverse order), or return the offboarding already requested."""
        plan = offboarding_plan(keep_database=keep_database)
        opened = self.catalog.open_offboarding(
            slug, requested_by=requested_by, keep_database=keep_database,
            steps=plan.templates(self.providers))
        if not opened.run.finished:
            self._enqueue(opened.run)
        if opened.created:
            log.info("offboarding %s requested by %s: run %s", slug, requested_by, opened.run.id)
        return opened.run

    def preview_onboarding(self, spec: TenantSpec | Mapping[str, object]) -> Preview:
        """What onboarding ``spec`` would create or change, provider by provider."""
        if not isinstance(spec, TenantSpec):
            spec = TenantSpec.parse(spec)
        options = onboarding_options(spec, self.settings, self.providers, previewing=True)
        return preview(plan_for("onboard", options),
                       StepInputs(spec, self.providers, self.settings))

    def preview_offboarding(self, slug: str, *, keep_database: bool = False) -> Preview:
        """What offboarding ``slug`` would delete, provider by provider."""
        spec = TenantSpec(**self.catalog.get_tenant(slug).spec_fields())
        return preview(offboarding_plan(keep_database=keep_database),
                       StepInputs(spec, self.providers, self.settings))

    def get_run(self, run_id: str) -> Run:
        return self.catalog.get_run(run_id)

    def wait(self, run_id: str, *, timeout: float = 60.0, poll: float = 0.05) -> Run:
        """Block until the run is finished; `ProvisioningError` naming the step it is at
        if ``timeout`` passes first."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.catalog.get_run(run_id)
            if run.finished:
                return run
            if time.monotonic() > deadline:
                current = next((s for s in run.steps if s.status != "succeeded"), None)
                where = f"; step {current.name} is {current.status}" if current else ""
                timeout_seconds = self.settings.engine.worker_timeout_seconds
                alive = self.catalog.live_workers(dt.timedelta(seconds=timeout_seconds))
                workers = (f"workers alive: {', '.join(sorted(alive))}" if alive else
                           f"no worker has been seen in the last {timeout_seconds:g} s: start "
                           "one (tenantops worker)")
                raise ProvisioningError(
                    f"run {run_id} is still {run.status} after {timeout:.0f} s{where}; {workers}"
                )
            time.sleep(poll)

    def cancel(self, run_id: str) -> Run:
        """Cancel a pending or running run; it stops before its next step. The tenant is
        left ``failed`` until the run is retried or the tenant offboarded."""
        run = self.catalog.cancel_run(run_id)
        try:
            self._dbos().cancel_workflow(run.workflow_id)
        except Exception as exc:
            log.warning("run %s is cancelled in the catalog, but its workflow could not be "
                        "cancelled yet (%s); it will stop at its next step", run_id, exc)
        return run

    def retry(self, run_id: str) -> Run:
        """Continue a failed run from its failed step (or a cancelled one from where it
        stopped), once the cause is fixed. Steps that succeeded are not run again."""
        run = self.catalog.get_run(run_id)
        if run.status not in ("failed", "cancelled"):
            raise RunStateError(
                f"run {run_id} is {run.status}; only a failed or cancelled run can be retried"
            )
        client = self._dbos()
        # The catalog records the failure just before the workflow returns; a retry asked in
        # that instant waits (briefly) for the workflow to finish instead of refusing.
        deadline = time.monotonic() + _RETRY_SETTLE_SECONDS
        while True:
            statuses = client.list_workflows(workflow_ids=[run.workflow_id], load_input=False,
                                             load_output=False)
            status = statuses[0].status if statuses else None
            if status not in ("PENDING", "ENQUEUED", "DELAYED") or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if status in ("PENDING", "ENQUEUED", "DELAYED"):
            raise RunStateError(
                f"run {run_id} is {run.status} but its workflow is still {status}; try again "
                "in a moment"
            )
        start_step = (self._rewind_point(run.workflow_id, run.failed_step)
                      if status is not None else None)
        reopened = self.catalog.reopen_run(run_id)
        if status is None:
            self._enqueue(reopened)
        elif status == "CANCELLED":
            client.resume_workflow(run.workflow_id, queue_name=QUEUE_NAME)
        else:
            client.rewind_workflow(run.workflow_id, start_step=start_step, queue_name=QUEUE_NAME)
        log.info("run %s retried from step %s", run_id, run.failed_step or "(where it stopped)")
        return reopened

    def _rewind_point(self, workflow_id: str, failed_step: str | None) -> int | None:
        """The checkpoint to rewind to: the first attempt of the step that failed (not an
        earlier step that was pending and then succeeded), else the first step that raised."""
        steps = self._dbos().list_workflow_steps(workflow_id)
        attempts = [s for s in steps if s["function_name"] == _EXECUTE_STEP]
        succeeded = {
            s["output"]["step"] for s in attempts
            if isinstance(s["output"], dict) and s["output"].get("state") == "succeeded"
        }
        for step in attempts:
            output = step["output"]
            name = output.get("step") if isinstance(output, dict) else None
            if name is None or (name not in succeeded and failed_step in (None, name)):
                return int(step["function_id"])
        for step in steps:
            if step["error"] is not None:
                return int(step["function_id"])
        return None

    def _dbos(self) -> DBOSClient:
        with self._client_lock:
            if self._client is None:
                _prepare_sqlite(self.system_database_url)
                self._client = DBOSClient(
                    system_database_url=self.system_database_url, application_name=_APP_NAME)
            return self._client

    def _enqueue(self, run: Run) -> None:
        try:
            if self._launched:
                with SetWorkflowID(run.workflow_id):
                    DBOS.enqueue_workflow(QUEUE_NAME, run_workflow, run.id)
            else:
                self._dbos().enqueue(
                    {"queue_name": QUEUE_NAME, "workflow_name": WORKFLOW_NAME,
                     "workflow_id": run.workflow_id},
                    run.id,
                )
        except Exception as exc:
            # The run is registered; a worker's reconciliation enqueues it when it starts.
            log.warning("run %s is registered but could not be enqueued yet (%s: %s); a "
                        "worker will pick it up when it starts", run.id, type(exc).__name__, exc)

    # -- execution (inside the worker) ------------------------------------------------------

    def _run(self, run_id: str) -> str:
        """The workflow body: deterministic given the checkpointed step results."""
        # The run's spec and its steps' outputs travel in the workflow, from checkpointed
        # results, so a step does not read them back from the catalog.
        loaded = _load_run_step(run_id)
        plan = plan_for(loaded["kind"], loaded["options"])
        context = _RunContext(TenantSpec(**loaded["spec"]), plan, loaded["outputs"])
        config = self.settings.engine
        for step in plan.steps:
            failures = 0
            waited = 0.0
            while True:
                result = _execute_step(run_id, step.name, context)
                state = result["state"]
                if state == "succeeded":
                    context.outputs[step.name] = result["outputs"]
                    break
                if state == "cancelled":
                    return "cancelled"
                if state == "pending":
                    delay = max(0.0, float(result["retry_after"]))
                    if waited + delay > config.pending_timeout_seconds:
                        _finish_run_step(run_id, step.name, (
                            f"{step.name} was still pending after {waited:.0f} s "
                            f"({result['message']}); check the provider, then retry the run"))
                        return "failed"
                    waited += delay
                    DBOS.sleep(delay)
                    continue
                if state == "transient":
                    failures += 1
                    if failures >= config.max_attempts:
                        _finish_run_step(run_id, step.name, (
                            f"{step.name} failed {failures} times in a row; last error: "
                            f"{result['error']}"))
                        return "failed"
                    DBOS.sleep(self._backoff(failures))
                    continue
                _finish_run_step(run_id, step.name, f"{step.name} failed: {result['error']}")
                return "failed"
        _finish_run_step(run_id, None, None)
        return "succeeded"

    def _backoff(self, failures: int) -> float:
        config = self.settings.engine
        base = config.retry_initial_seconds * config.retry_backoff_rate ** (failures - 1)
        return min(config.retry_max_seconds, base) * random.uniform(0.8, 1.2)  # noqa: S311

    def _execute(self, run_id: str, name: str, context: _RunContext) -> dict[str, Any]:
        """One attempt of one step: record it running, call the provider, record the
        outcome. Provider failures are results, not exceptions, so DBOS checkpoints them."""
        step = context.plan.step(name)
        spec = context.spec
        inputs = StepInputs(spec, self.providers, self.settings, context.outputs)
        attempt = self.catalog.step_started(run_id, name)
        if attempt is None:  # cancelled since the previous step
            return {"step": name, "state": "cancelled"}
        provider = self.providers.of_kind(step.kind)
        token = _current_step.set(StepRef(run_id, spec.slug, name, attempt))
        try:
            resource = step.build(inputs)
            if step.verb == "ensure":
                outcome = provider.ensure(resource)
            else:
                outcome = provider.remove(resource)
        except TransientProviderError as exc:
            message = _describe(exc)
            log.info("run %s step %s attempt %d failed transiently: %s", run_id, name, attempt,
                     message)
            self.catalog.step_waiting(run_id, name, status="retrying", message=message)
            return {"step": name, "state": "transient", "error": message}
        except (ProviderError, ProvisioningError) as exc:
            message = _describe(exc)
            log.warning("run %s step %s failed: %s", run_id, name, message)
            self.catalog.step_failed(run_id, name, message)
            return {"step": name, "state": "failed", "error": message}
        finally:
            _current_step.reset(token)
        if isinstance(outcome, Pending):
            self.catalog.step_waiting(run_id, name, status="waiting", message=outcome.reason)
            return {"step": name, "state": "pending", "retry_after": outcome.retry_after,
                    "message": outcome.reason}
        outputs = dict(outcome.outputs)
        self.catalog.step_succeeded(run_id, name, outputs, step.record(inputs, outputs))
        return {"step": name, "state": "succeeded", "outputs": outputs}


def _describe(exc: TenantOpsError) -> str:
    if isinstance(exc, ProviderError) and exc.provider and exc.provider not in str(exc):
        return f"{exc.provider}: {exc}"
    return str(exc)


def _safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _sqlite_system_engine(url: str) -> sa.Engine | None:
    """The DBOS system database engine on SQLite: DBOS's own settings (IMMEDIATE
    transactions, busy timeout, foreign keys) plus ``synchronous=NORMAL``, which in WAL mode
    keeps every commit across a killed process (only a power loss may undo the last ones)
    without an fsync per checkpoint. None on PostgreSQL: DBOS builds that engine itself."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    engine = sa.create_engine(
        url, pool_size=20, max_overflow=0, pool_timeout=30,
        connect_args={"timeout": 30, "check_same_thread": False},
    )

    @sa.event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = "IMMEDIATE"
        dbapi_connection.execute("PRAGMA busy_timeout=30000")
        dbapi_connection.execute("PRAGMA foreign_keys=ON")
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")

    return engine


def _prepare_sqlite(url: str) -> None:
    """Create a SQLite system database in WAL mode (persistent in the file), which keeps
    DBOS's writers from stalling its pollers; DBOS's own default is a rollback journal."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or (
            parsed.database == ":memory:"):
        return
    path = Path(parsed.database)
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, timeout=30)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
    finally:
        connection.close()
