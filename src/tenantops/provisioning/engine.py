"""The provisioning engine: durable DBOS workflows, one durable step per provider action,
with every step's status recorded in the catalog as it changes.

How the guarantees are kept:

- **Idempotent requests.** `Engine.onboard` registers the tenant and its run in the catalog
  (unique indexes decide races) and enqueues the workflow under the run's workflow ID
  (``tenantops/<slug>/<kind>/<run id>``); DBOS returns the existing workflow for a known ID,
  so a repeated request returns the same run and starts nothing new.
- **One active run per tenant.** A partial unique index on runs allows one pending or
  running run per tenant, across any number of API instances.
- **Segments.** A run is carried by one workflow at a time, its *segment*: 0 is the run's
  workflow ID, n is ``<workflow ID>/<n>`` (`segment_workflow_id`); the catalog's
  ``runs.segment`` says which one is current. A new segment takes over after a long wait, a
  retry, or a workflow that died; each starts at the first step the catalog does not show
  as succeeded, and a segment that is not the current one stops at its first step.
- **Crash safety.** DBOS checkpoints each step's result; a restarted worker recovers its
  pending workflows and continues at the first step without a checkpoint. Providers are
  idempotent, so the one step that was running when the process died may run again safely;
  a step that succeeded never runs again.
- **Waiting holds no thread.** Transient faults (`TransientProviderError`) are retried with
  exponential backoff and jitter, no sooner than the provider's ``Retry-After`` (capped by
  ``engine.retry_after_max_seconds``), up to ``engine.max_attempts``; `Pending` operations
  are looked at again after the provider's ``retry_after``, until the pending window
  (``Pending.timeout_seconds`` or ``engine.pending_timeout_seconds``, counted by the
  database's clock from the step's first Pending) has passed. A wait up to
  ``engine.long_wait_seconds`` is a durable sleep inside the workflow; a longer one ends
  the segment and enqueues the next with a DBOS delay, so the run holds no thread nor queue
  slot while it waits, and the wait survives restarts.
- **A worker that never comes back.** Every started engine says it is alive in the catalog
  (``workers``, stamped with the database's clock) every quarter of
  ``engine.worker_timeout_seconds``; a live worker resumes the unfinished workflows of
  workers unheard of for that long, or signed off, on the shared queue
  (`Engine.take_over_orphaned_runs`).
- **No run stuck forever.** Every ``engine.check_runs_seconds`` a worker compares each
  active run with its workflow: a workflow of its own left pending with no thread (its
  database write failed: a full disk) is resumed, one that ended in error is continued in a
  new segment, a run with no workflow gets one; the cause is shown on the run's step.
- **Permanent faults** end the run as ``failed`` with the provider's message.
  `Engine.retry` continues it in a new segment from the failed step (steps that succeeded
  are not run again). `Engine.cancel` stops a run at its next step.

DBOS is a process-wide singleton: one `Engine` may be started per process. An engine that
is not started still accepts requests (through a DBOS client on the system database), which
a started engine, a worker, executes.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import errno
import logging
import os
import random
import re
import socket
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from dbos import DBOS, DBOSClient, DBOSConfig, SetEnqueueOptions, SetWorkflowID
from sqlalchemy.engine import make_url

from tenantops import telemetry
from tenantops.catalog import (
    BudgetState,
    Catalog,
    IdempotencyClaim,
    Run,
    RunKind,
    segment_workflow_id,
)
from tenantops.catalog.models import ACTIVE_RUN_STATUSES
from tenantops.config import BudgetSettings, Settings
from tenantops.errors import (
    CatalogError,
    IdempotencyKeyReusedError,
    ProviderError,
    ProvisioningError,
    RunStateError,
    SpecError,
    SpecProblem,
    TenantOpsError,
    TransientProviderError,
)
from tenantops.events.dispatcher import EventDispatcher
from tenantops.events.sinks import Sink
from tenantops.log import redact
from tenantops.provisioning.adoption import AdoptionResult, Importer
from tenantops.provisioning.drift import DriftWatch
from tenantops.provisioning.folder_lock import FolderLock
from tenantops.provisioning.plans import (
    Plan,
    PlanStep,
    Preview,
    ResourceNames,
    StepInputs,
    plan_for,
)
from tenantops.provisioning.providers.base import (
    EmbeddedService,
    Middleware,
    Pending,
    Resource,
)
from tenantops.provisioning.providers.registry import Providers, build_providers
from tenantops.provisioning.readiness import Readiness, ReadinessProbe
from tenantops.provisioning.run_requests import (
    PreparedRun,
    TenantChange,
    prepare_move,
    prepare_offboarding,
    prepare_onboarding,
    prepare_reconcile,
    prepare_resumption,
    prepare_suspension,
    prepare_update,
)
from tenantops.provisioning.spec import TenantSpec

if TYPE_CHECKING:
    from tenantops.provisioning.fleet import FleetConductor

__all__ = [
    "QUEUE_NAME",
    "WORKFLOW_NAME",
    "DurableWaits",
    "Engine",
    "StepRef",
    "WaitCause",
    "current_step",
    "run_workflow",
    "system_database_url",
]

log = logging.getLogger("tenantops.provisioning.engine")

QUEUE_NAME = "tenantops-runs"
WORKFLOW_NAME = "tenantops.run"
_EXECUTE_STEP = "tenantops.execute_step"
_APP_NAME = "tenantops"
_RETRY_SETTLE_SECONDS = 10.0
_ACTIVE_WORKFLOW = ("PENDING", "ENQUEUED", "DELAYED")
_LONGEST_STALL_BACKOFF = 600.0
_FORGET_WORKERS_AFTER = dt.timedelta(days=1)

_NOUNS: dict[RunKind, str] = {"onboard": "onboarding", "offboard": "offboarding",
                              "update": "update", "suspend": "suspension",
                              "resume": "resumption", "reconcile": "reconciliation",
                              "adopt": "adoption", "migrate": "migration",
                              "rotate": "credential rotation", "renew": "certificate renewal"}

_engine: Engine | None = None
_engine_lock = threading.Lock()

WaitCause = Literal["pending", "backoff", "retry-after", "budget"]


class _TakenOver(Exception):
    """This worker's workflow now belongs to another worker, or this worker has stopped:
    end the workflow's thread here (not retried)."""


class DurableWaits:
    """How long a durable wait the engine decided on really lasts: ``seconds`` itself.

    The seam for tests (`Engine(waits=...)`): a subclass records each wait the engine asks
    for (run, step, why, how long) and may shorten it, without patching a clock. It is called
    in the workflow, so a workflow replayed after a crash asks again for the waits it had
    already decided on."""

    def actual(self, seconds: float, *, run_id: str, step: str, cause: WaitCause) -> float:
        return seconds


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
    the checkpointed result of ``tenantops.load_run``; ``outputs`` grows as steps succeed.

    ``started`` holds the attempt number of a step the previous step's success already
    marked running (None: the run had stopped being active) and the resource it asks for,
    for that step's execution to use instead of writing its start again. It lives only in
    this execution: a replayed step (its result from its checkpoint) marks nothing, so the
    next one writes its start."""

    spec: TenantSpec
    plan: Plan
    outputs: dict[str, dict[str, Any]]
    started: dict[str, tuple[int | None, Resource]] = field(default_factory=dict)
    names: ResourceNames = field(default_factory=ResourceNames)

    def next_step(self, name: str) -> str | None:
        """The step this segment runs after ``name``: the next in the plan that has not
        succeeded."""
        names = [step.name for step in self.plan.steps]
        return next((later for later in names[names.index(name) + 1:]
                     if later not in self.outputs), None)


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
def run_workflow(run_id: str, segment: int = 0, resume: dict[str, Any] | None = None) -> str:
    """Carry segment ``segment`` of one run; returns how it ended: ``succeeded``, ``failed``,
    ``cancelled``, ``waiting`` (a later segment continues after a long wait) or
    ``superseded`` (another segment carries the run). ``resume`` holds what a continuation
    needs of the wait that ended its predecessor (the step, its transient failures)."""
    return _active()._run(run_id, segment, resume or {})


@DBOS.step(name="tenantops.load_run", retries_allowed=True, max_attempts=5,
           interval_seconds=0.5, should_retry=_is_catalog_error)
def _load_run_step(run_id: str, segment: int = 0) -> dict[str, Any]:
    run = _active().catalog.run_progress(run_id)
    if run.status not in ACTIVE_RUN_STATUSES:
        return {"state": "cancelled" if run.status == "cancelled" else "superseded"}
    if run.segment != segment:
        return {"state": "superseded"}
    return {"state": "current", "workflow_id": run.workflow_id, "tenant": run.spec["slug"],
            "trace_context": run.trace_context, "kind": run.kind, "options": run.options,
            "spec": run.spec, "outputs": run.outputs,
            # Where the tenant's resources are when not where its slug says (an adopted one's).
            "names": run.names}


@DBOS.step(name=_EXECUTE_STEP, retries_allowed=True, max_attempts=5, interval_seconds=0.5,
           should_retry=_is_catalog_error)
def _execute_step(run_id: str, step: str, context: _RunContext) -> dict[str, Any]:
    # DBOS checkpoints a step's result, not its arguments: the context may hold objects.
    engine = _active()
    planned = context.plan.step(step)
    try:
        provider = engine.providers.for_step(planned).label
    except ProvisioningError:  # a custom step no longer declared: _execute records why
        provider = f"{planned.kind}:{planned.provider or 'unknown'}"
    with telemetry.step_span(run_id, step, provider=provider) as span:
        result = engine._execute(run_id, step, context)
        span.finish(str(result["state"]), result.get("error"))
        return result


@DBOS.step(name="tenantops.reserve_call", retries_allowed=True, max_attempts=5,
           interval_seconds=0.5, should_retry=_is_catalog_error)
def _reserve_call_step(budget: str) -> float:
    """Reserve the step's next call against its rate budget; the seconds to wait first."""
    return _active()._reserve(budget)


@DBOS.step(name="tenantops.hand_over", retries_allowed=True, max_attempts=5,
           interval_seconds=0.5, should_retry=_is_catalog_error)
def _hand_over_step(run_id: str, to_segment: int) -> bool:
    return _active().catalog.advance_run(run_id, to_segment=to_segment)


@DBOS.step(name="tenantops.undo", retries_allowed=True, max_attempts=5, interval_seconds=0.5,
           backoff_rate=2.0)
def _undo_step(run_id: str, step: str, context: _RunContext) -> str:
    return _active()._undo(run_id, step, context)


@DBOS.step(name="tenantops.finish_run", retries_allowed=True, max_attempts=5,
           interval_seconds=0.5, should_retry=_is_catalog_error)
def _finish_run_step(run_id: str, failed_step: str | None, error: str | None) -> str:
    if failed_step is None:
        return _active().catalog.close_run(run_id, "succeeded")
    return _active().catalog.close_run(run_id, "failed", error=error, failed_step=failed_step)


class Engine:
    """Requests, executes, retries and cancels runs. See the module docstring."""

    def __init__(
        self,
        settings: Settings,
        *,
        catalog: Catalog | None = None,
        providers: Providers | None = None,
        middleware: Sequence[Middleware] = (),
        waits: DurableWaits | None = None,
        event_sinks: Sequence[Sink] | None = None,
    ) -> None:
        self.settings = settings
        self._event_sinks = event_sinks
        self.dispatcher: EventDispatcher | None = None
        self.conductor: FleetConductor | None = None
        self.catalog = catalog or Catalog.from_settings(settings)
        self.providers = providers or build_providers(
            settings, self.catalog, serve=settings.engine.serve_embedded
        )
        # Provider-call spans first (a no-op while telemetry is off), then the caller's.
        self.providers.use([telemetry.trace_provider_calls, *middleware])
        self.waits = waits or DurableWaits()
        # Which budget counts a provider's calls: by kind:name label first, then by kind.
        self._budget_by_provider = {provider: name for name, budget in
                                    settings.engine.budgets.items()
                                    for provider in budget.providers}
        self.system_database_url = system_database_url(settings)
        self.executor_id = _executor_id(settings, self.system_database_url)
        self.clock_offset_seconds: float | None = None
        self._client: DBOSClient | None = None
        self._client_lock = threading.Lock()
        self._launched = False
        self._services: list[EmbeddedService] = []
        self._stop = threading.Event()
        self._reconciler: threading.Thread | None = None
        self._system_engine: sa.Engine | None = None
        self._registered = False
        self._halted = False
        self._folder_lock = _folder_lock(self.system_database_url)
        # Several workers may share the system database: check ownership before each call.
        self._shared = self._folder_lock is None
        # Workflows whose body runs on a thread of this process, and why others died.
        self._state_lock = threading.Lock()
        self._executing: set[str] = set()
        self._stall_causes: dict[str, str] = {}
        self._died_at: dict[str, float] = {}
        self._suspects: set[str] = set()
        self._restarts: dict[str, tuple[int, float]] = {}
        self.problems: dict[str, str] = {}
        self._probe: ReadinessProbe | None = None
        self.drift_watch: DriftWatch | None = None

    # -- lifecycle (the worker role) ------------------------------------------------------

    @property
    def started(self) -> bool:
        return self._launched

    def start(self, *, serve_embedded: bool | None = None) -> None:
        """Migrate the catalog, start embedded servers, launch DBOS (recovering this
        executor's unfinished workflows) and make sure every active run has a workflow.

        On the embedded SQLite system database, refuses (`ProvisioningError`) to start
        beside another worker on the same data folder."""
        global _engine
        with _engine_lock:
            if _engine is not None:
                raise ProvisioningError(
                    "an engine is already started in this process and DBOS allows one per "
                    "process; stop it first"
                )
            _engine = self
        try:
            if self._folder_lock is not None:
                self._folder_lock.acquire()
            self.catalog.migrate()
            telemetry.configure(self.settings.telemetry)
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
            self._halted = False
            self.take_over_orphaned_runs()
            self.check_runs()
            self._reconciler = threading.Thread(
                target=self._keep_up, name="tenantops-reconciler", daemon=True)
            self._reconciler.start()
            # Lifecycle events: the worker delivers the catalog's outbox (docs/events.md).
            self.dispatcher = EventDispatcher(
                self.settings, self.catalog, executor_id=self.settings.engine.executor_id,
                sinks=self._event_sinks)
            self.dispatcher.start()
            # Scheduled drift checks (docs/engine.md), when drift.check_interval_seconds.
            if self.settings.drift.check_interval_seconds is not None:
                self.drift_watch = DriftWatch(self)
                self.drift_watch.start()
            # Fleet runs and scheduled upkeep: the catalog's loop (docs/fleet.md).
            from tenantops.provisioning.fleet import CertificateSchedule, FleetConductor

            self.conductor = FleetConductor(self, duties=[CertificateSchedule(self)])
            self.conductor.start()
        except TenantOpsError:
            self.stop()
            raise
        except Exception as exc:
            self.stop()
            raise ProvisioningError(
                f"the engine could not start on {_safe_url(self.system_database_url)}: "
                f"{type(exc).__name__}: {exc}; check engine.system_database_url"
            ) from exc
        log.info("engine started as executor %s: catalog %s, workflows %s, %d runs at once",
                 self.executor_id, self.catalog.url, _safe_url(self.system_database_url),
                 self.settings.engine.worker_concurrency)

    def stop(self) -> None:
        """Stop executing (unfinished runs resume when an engine starts again)."""
        global _engine
        self._stop.set()
        if self._reconciler is not None:
            self._reconciler.join(timeout=5)
            self._reconciler = None
        if self.dispatcher is not None:
            self.dispatcher.stop()
            self.dispatcher = None
        if self.drift_watch is not None:
            self.drift_watch.stop()
            self.drift_watch = None
        if self.conductor is not None:
            self.conductor.stop()
            self.conductor = None
        if _engine is self:
            DBOS.destroy()
        # Workflow threads still running stop at their next step; DBOS, destroyed, records
        # nothing for them, so they stay PENDING and resume wherever a worker starts next.
        self._halted = True
        self._launched = False
        if self._registered:
            # Gone, not dead: other workers take over its unfinished runs at their next beat.
            self._registered = False
            try:
                self.catalog.worker_left(self.executor_id, pid=os.getpid())
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
        if self._folder_lock is not None:
            self._folder_lock.release()
        if self._probe is not None:
            self._probe.close()
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
            "executor_id": self.executor_id,
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
        workers that stopped saying so, and every ``engine.check_runs_seconds`` make sure
        every active run has a live workflow (`check_runs`)."""
        config = self.settings.engine
        beat = min(config.worker_timeout_seconds / 4, 30.0, config.check_runs_seconds)
        next_check = time.monotonic() + config.check_runs_seconds
        while not self._stop.wait(beat):
            for duty in (self._worker_seen, self.take_over_orphaned_runs):
                self._do(duty, beat)
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + config.check_runs_seconds
                self._do(self.check_runs, beat)

    def _do(self, duty: Any, beat: float) -> None:
        name = duty.__name__.strip("_").replace("_", " ")
        try:
            duty()
        except Exception as exc:  # the catalog or the system database unreachable, say
            cause = _stall_cause(exc)
            # Shown to anonymous callers by the readiness route: known causes only.
            self.problems[name] = (cause if cause.startswith("the worker ")
                                   else f"failed ({type(exc).__name__})")
            log.warning("worker upkeep (%s) failed, will try again in %.0f s: %s", name, beat,
                        cause)
        else:
            self.problems.pop(name, None)

    def _worker_seen(self) -> None:
        offset = self.catalog.worker_seen(self.executor_id, host=socket.gethostname(),
                                          pid=os.getpid())
        self._registered = True
        tolerance = self.settings.engine.clock_skew_tolerance_seconds
        skewed_before = self.clock_offset_seconds is not None and (
            abs(self.clock_offset_seconds) > tolerance)
        self.clock_offset_seconds = offset
        if abs(offset) > tolerance:
            self.problems["clock"] = (
                f"this worker's clock is {abs(offset):.1f} s "
                f"{'ahead of' if offset > 0 else 'behind'} the database's")
            if not skewed_before:
                log.warning(
                    "this worker's clock is %.1f s %s the database's (tolerance %g s, "
                    "engine.clock_skew_tolerance_seconds): liveness and takeover use the "
                    "database's clock, but durable sleeps and delayed continuations are timed "
                    "by this one; fix the host's time (NTP)", abs(offset),
                    "ahead of" if offset > 0 else "behind", tolerance)
        elif skewed_before:
            self.problems.pop("clock", None)
            log.info("this worker's clock agrees with the database's again (%.2f s)", offset)

    def take_over_orphaned_runs(self) -> list[str]:
        """Resume, on the queue, the workflows held by workers that are gone: not seen for
        ``engine.worker_timeout_seconds`` by the database's clock, or stopped; with the
        embedded folder lock held, every other executor's. Any worker (this one included)
        then continues them from their first unfinished step. Returns their workflow IDs.

        DBOS recovers a worker's workflows only when a worker with the same executor ID
        starts again, which a scaled-in instance never does. Resuming clears the workflow's
        owner, so a worker wrongly taken for dead stops at its next step instead of running
        beside the new owner (providers are idempotent for the step it was in)."""
        timeout = self.settings.engine.worker_timeout_seconds
        alive = self.catalog.live_workers(dt.timedelta(seconds=timeout))
        alive.add(self.executor_id)
        client = self._dbos()
        held = client.list_workflows(status="PENDING", queue_name=QUEUE_NAME,
                                     load_input=False, load_output=False)
        sole = self._folder_lock is not None and self._folder_lock.held
        orphans = [w for w in held if w.executor_id and w.executor_id != self.executor_id
                   and (sole or w.executor_id not in alive)]
        for workflow in orphans:
            client.resume_workflow(workflow.workflow_id, queue_name=QUEUE_NAME)
            log.warning("taking over %s from worker %s, unheard of for %.0f s, stopped or "
                        "gone", workflow.workflow_id, workflow.executor_id, timeout)
        # Killed workers never sign off; their rows stay listed a day for diagnosis.
        self.catalog.forget_silent_workers(max(_FORGET_WORKERS_AFTER,
                                               dt.timedelta(seconds=10 * timeout)))
        return [w.workflow_id for w in orphans]

    def check_runs(self) -> int:
        """Make sure every pending or running run progresses or shows why not; returns the
        number of active runs looked at.

        - A run with no workflow (a requester died between registering and enqueueing it)
          gets one.
        - A workflow of this worker left pending with no thread executing it (its thread
          died: the database write failed) is resumed once seen so twice in a row.
        - A run whose workflow ended (in error, say) while the catalog still shows it
          active is continued in a new segment, with growing pauses if it keeps dying.

        The cause goes on the run's step, so the run shows why it stopped until it moves."""
        self._resume_dead_workflows()
        runs = self.catalog.active_runs()
        if not runs:
            return 0
        wanted: list[str] = []
        for run in runs:
            wanted.append(run.current_workflow_id)
            if run.segment > 0:
                wanted.append(segment_workflow_id(run.workflow_id, run.segment - 1))
        statuses = {w.workflow_id: w for w in self._dbos().list_workflows(
            workflow_ids=wanted, load_input=False, load_output=False)}
        active = {run.id for run in runs}
        self._restarts = {k: v for k, v in self._restarts.items() if k in active}
        for run in runs:
            current = statuses.get(run.current_workflow_id)
            if current is None:
                before = statuses.get(segment_workflow_id(run.workflow_id, run.segment - 1))
                if run.segment > 0 and before is not None and before.status in _ACTIVE_WORKFLOW:
                    continue  # the previous segment is handing the run over
                self._enqueue(run)
            elif current.status not in _ACTIVE_WORKFLOW:
                # Read again: the runs were read before the workflows, and a segment that
                # handed the run over (then ended) looks stalled in the older read.
                fresh = self.catalog.get_run(run.id)
                if not fresh.finished and fresh.segment == run.segment:
                    self._continue_stalled(fresh, current.status)
        return len(runs)

    def reconcile(self) -> int:
        """Enqueue the workflow of every pending or running run (a no-op for those that
        have one), and resume those that stalled: `check_runs`."""
        return self.check_runs()

    def _resume_dead_workflows(self) -> None:
        if not self._launched:
            return
        client = self._dbos()
        mine = client.list_workflows(status="PENDING", queue_name=QUEUE_NAME,
                                     executor_id=self.executor_id, load_input=False,
                                     load_output=False)
        # A workflow whose body just raised is given time to be recorded as ERROR by DBOS
        # (then check_runs continues it); only one still PENDING after that is resumed.
        grace = max(5.0, 2 * self.settings.engine.check_runs_seconds)
        now = time.monotonic()
        with self._state_lock:
            dead = {w.workflow_id for w in mine} - self._executing - {
                wid for wid, died in self._died_at.items() if now - died < grace}
            confirmed, self._suspects = dead & self._suspects, dead - self._suspects
        for workflow_id in sorted(confirmed):
            with self._state_lock:
                cause = self._stall_causes.get(workflow_id) or (
                    "its thread stopped before the workflow ended")
            client.resume_workflow(workflow_id, queue_name=QUEUE_NAME)  # raises while it cannot
            with self._state_lock:
                self._stall_causes.pop(workflow_id, None)
                self._died_at.pop(workflow_id, None)
            log.warning("workflow %s stopped on this worker (%s); resumed it", workflow_id,
                        cause)
            self._show_stall(_run_id_of(workflow_id), f"the run's workflow stopped ({cause}); "
                             "it was resumed and continues from this step")

    def _continue_stalled(self, run: Run, status: str) -> None:
        count, not_before = self._restarts.get(run.id, (0, 0.0))
        if time.monotonic() < not_before:
            return
        with self._state_lock:
            cause = self._stall_causes.pop(run.current_workflow_id, None)
            self._died_at.pop(run.current_workflow_id, None)
        if cause is None:
            ended = self._dbos().list_workflows(workflow_ids=[run.current_workflow_id],
                                                load_input=False)
            error = ended[0].error if ended else None
            cause = (_stall_cause(error) if isinstance(error, BaseException)
                     else f"its workflow ended as {status}")
        to_segment = run.segment + 1
        if not self.catalog.advance_run(run.id, to_segment=to_segment):
            return  # finished, cancelled or retried meanwhile
        pause = min(_LONGEST_STALL_BACKOFF, self.settings.engine.check_runs_seconds * 2 ** count)
        self._restarts[run.id] = (count + 1, time.monotonic() + pause)
        log.warning("run %s: workflow %s ended as %s while the run is %s (%s); continuing it "
                    "as segment %d", run.id, run.current_workflow_id, status, run.status,
                    cause, to_segment)
        self._show_stall(run.id, f"the run's workflow stopped ({cause}); it continues from "
                         "this step")
        self._enqueue(run, segment=to_segment)

    def _show_stall(self, run_id: str | None, message: str) -> None:
        if run_id is None:
            return
        try:
            self.catalog.step_stalled(run_id, message)
        except TenantOpsError as exc:
            log.warning("could not show on run %s why it stopped (%s): %s", run_id, message,
                        exc)

    # -- requests (any process) -----------------------------------------------------------

    def onboard(self, spec: TenantSpec | Mapping[str, object], *, requested_by: str,
                idempotency: IdempotencyClaim | None = None) -> Run:
        """Onboard a tenant, or return the run already onboarding (or onboarded) it."""
        if not isinstance(spec, TenantSpec):
            spec = TenantSpec.parse(spec, plans=self.settings.plans)
        prepared = prepare_onboarding(spec, self.settings, self.providers)
        return self._open(prepared, requested_by, idempotency)

    def offboard(self, slug: str, *, requested_by: str, keep_database: bool = False) -> Run:
        """Offboard a tenant (reverse order), or return the offboarding already requested."""
        return self._open(self._prepare_offboarding(slug, keep_database), requested_by, None)

    def update(self, slug: str, change: TenantChange, *, requested_by: str,
               idempotency: IdempotencyClaim | None = None) -> Run | None:
        """Change a tenant (see `tenantops.provisioning.plans.changes`), or return the update
        already making this change; None when the tenant already is as asked (nothing to
        change, no run)."""
        earlier = self._claimed(idempotency)
        if earlier is not None:
            return earlier
        latest = self.catalog.latest_run(slug)
        prepared = self._prepare_update(slug, change, latest)
        if not prepared.diff:
            return latest if _repeats(latest, change) else None
        return self._open(prepared, requested_by, idempotency)

    def suspend(self, slug: str, *, reason: str, requested_by: str,
                idempotency: IdempotencyClaim | None = None) -> Run:
        """Suspend a tenant: its hostname answers a suspended page, its organization is
        disabled, its database login cannot sign in; nothing is deleted. A tenant already
        suspended (or being suspended) returns that run."""
        earlier = self._claimed(idempotency)
        if earlier is not None:
            return earlier
        tenant = self.catalog.get_tenant(slug)
        prepared = prepare_suspension(tenant, self.catalog.retiring_domains_of(slug),
                                      self.settings, reason=reason,
                                      placements=self.catalog.placements_of(slug))
        return self._open(prepared, requested_by, idempotency)

    def resume(self, slug: str, *, requested_by: str, reason: str | None = None,
               idempotency: IdempotencyClaim | None = None) -> Run:
        """Undo a suspension, or return the resumption already requested."""
        earlier = self._claimed(idempotency)
        if earlier is not None:
            return earlier
        tenant = self.catalog.get_tenant(slug)
        prepared = prepare_resumption(tenant, self.catalog.retiring_domains_of(slug),
                                      self.settings, reason=reason,
                                      placements=self.catalog.placements_of(slug))
        return self._open(prepared, requested_by, idempotency)

    def reconcile_tenant(self, slug: str, *, requested_by: str, reason: str | None = None,
                         idempotency: IdempotencyClaim | None = None) -> Run:
        """Restore the tenant's recorded state: every resource converged back (what a drift
        check reports missing is made again, what differs is converged), or return the
        reconciliation already in progress."""
        earlier = self._claimed(idempotency)
        if earlier is not None:
            return earlier
        return self._open(self._prepare_reconcile(slug, reason), requested_by, idempotency)

    def preview_reconcile(self, slug: str) -> Preview:
        """What reconciling ``slug`` would create or converge (reads only): its drift."""
        return self._prepare_reconcile(slug, None).preview(self.providers, self.settings)

    def _prepare_reconcile(self, slug: str, reason: str | None) -> PreparedRun:
        tenant, runs = self.catalog.tenant_and_runs(slug)
        return prepare_reconcile(tenant, runs, self.catalog.retiring_domains_of(slug),
                                 self.settings, reason=reason,
                                 placements=self.catalog.placements_of(slug))

    def import_tenants(self, entries: Sequence[object], *, dry_run: bool,
                       requested_by: str) -> list[AdoptionResult]:
        """Adopt tenants made before tenantops (`tenantops.provisioning.adoption`): each
        entry observed through the providers (reads only), and recorded unless ``dry_run``
        when it is adopted or partial. `SpecError` when there are more than
        ``drift.import_max_tenants`` entries."""
        limit = self.settings.drift.import_max_tenants
        if len(entries) > limit:
            raise SpecError([SpecProblem(
                "tenants", f"{len(entries)} entries",
                f"at most {limit} per request (drift.import_max_tenants); send the rest in "
                "another request (tenantops import does)")])
        return Importer(self).run(entries, dry_run=dry_run, requested_by=requested_by)

    def move(self, slug: str, *, requested_by: str, server: str | None = None,
             abandon: bool = False, grace_seconds: float | None = None,
             reason: str | None = None, idempotency: IdempotencyClaim | None = None) -> Run:
        """Move a tenant's data to ``server`` (None: the least-loaded server of its plan's
        pool with room), or with ``abandon`` undo a move that did not switch
        (`tenantops.provisioning.plans.moves`); or return the move already doing it."""
        earlier = self._claimed(idempotency)
        if earlier is not None:
            return earlier
        return self._open(self._prepare_move(slug, server, abandon, grace_seconds, reason),
                          requested_by, idempotency)

    def preview_move(self, slug: str, *, server: str | None = None, abandon: bool = False,
                     grace_seconds: float | None = None) -> Preview:
        """What moving ``slug`` would do (reads only)."""
        return self._prepare_move(slug, server, abandon, grace_seconds, None).preview(
            self.providers, self.settings)

    def _prepare_move(self, slug: str, server: str | None, abandon: bool,
                      grace_seconds: float | None, reason: str | None) -> PreparedRun:
        return prepare_move(self.catalog.get_tenant(slug), self.catalog.latest_run(slug),
                            self.catalog.retiring_domains_of(slug),
                            self.catalog.placements_of(slug), self.settings, server=server,
                            abandon=abandon, grace_seconds=grace_seconds, reason=reason)

    def preview_onboarding(self, spec: TenantSpec | Mapping[str, object]) -> Preview:
        """What onboarding ``spec`` would create or change, provider by provider."""
        if not isinstance(spec, TenantSpec):
            spec = TenantSpec.parse(spec, plans=self.settings.plans)
        return prepare_onboarding(spec, self.settings, self.providers,
                                  previewing=True).preview(self.providers, self.settings)

    def preview_offboarding(self, slug: str, *, keep_database: bool = False) -> Preview:
        """What offboarding ``slug`` would delete, provider by provider."""
        return self._prepare_offboarding(slug, keep_database).preview(self.providers,
                                                                       self.settings)

    def preview_update(self, slug: str, change: TenantChange) -> Preview:
        """What changing ``slug`` as ``change`` asks would do: the diff, and each step's
        effect (reads only)."""
        return self._prepare_update(slug, change, self.catalog.latest_run(slug),
                                    previewing=True).preview(self.providers, self.settings)

    def preview_suspension(self, slug: str, *, reason: str | None = None) -> Preview:
        """What suspending ``slug`` would change (reads only; the reason is not checked)."""
        tenant = self.catalog.get_tenant(slug)
        prepared = prepare_suspension(tenant, self.catalog.retiring_domains_of(slug),
                                      self.settings, reason=reason or "preview",
                                      placements=self.catalog.placements_of(slug))
        return prepared.preview(self.providers, self.settings)

    def preview_resumption(self, slug: str) -> Preview:
        """What resuming ``slug`` would change (reads only)."""
        tenant = self.catalog.get_tenant(slug)
        return prepare_resumption(tenant, self.catalog.retiring_domains_of(slug),
                                  self.settings, placements=self.catalog.placements_of(slug)
                                  ).preview(self.providers, self.settings)

    def _prepare_offboarding(self, slug: str, keep_database: bool) -> PreparedRun:
        tenant = self.catalog.get_tenant(slug)
        return prepare_offboarding(tenant, self.catalog.retiring_domains_of(slug),
                                   self.settings, keep_database=keep_database,
                                   placements=self.catalog.placements_of(slug))

    def _prepare_update(self, slug: str, change: TenantChange, latest: Run | None, *,
                        previewing: bool = False) -> PreparedRun:
        tenant = self.catalog.get_tenant(slug)
        return prepare_update(tenant, latest, self.catalog.retiring_domains_of(slug), change,
                              self.settings, self.providers, previewing=previewing,
                              placements=self.catalog.placements_of(slug))

    def _claimed(self, idempotency: IdempotencyClaim | None) -> Run | None:
        """The run an ``Idempotency-Key`` already made, for the same request."""
        if idempotency is None:
            return None
        found = self.catalog.find_idempotency_key(idempotency.scope, idempotency.key)
        if found is None:
            return None
        fingerprint, run_id = found
        if fingerprint != idempotency.fingerprint:
            raise IdempotencyKeyReusedError(idempotency.key, run_id)
        return self.catalog.get_run(run_id)

    def _open(self, prepared: PreparedRun, requested_by: str,
              idempotency: IdempotencyClaim | None) -> Run:
        """Open the prepared run in the catalog (or find the one a repeat resolves to) and
        enqueue its workflow."""
        opened = self.catalog.open_run(prepared.request(
            self.providers, requested_by=requested_by, idempotency=idempotency))
        if not opened.run.finished:
            self._enqueue(opened.run)
        if opened.created:
            log.info("%s of %s requested by %s: run %s", _NOUNS[prepared.kind],
                     prepared.spec.slug, requested_by, opened.run.id)
        return opened.run

    def open_prepared(self, prepared: PreparedRun, *, requested_by: str,
                      idempotency: IdempotencyClaim | None = None) -> Run:
        """Open a run prepared elsewhere (`tenantops.provisioning.run_requests`: a fleet's
        child run, an upkeep run, an adoption) and enqueue it; a repeat returns the run it
        resolves to."""
        return self._open(prepared, requested_by, idempotency)

    def get_run(self, run_id: str) -> Run:
        return self.catalog.get_run(run_id)

    def readiness(self) -> Readiness:
        """Whether this process can serve: the catalog and the system database answer
        within ``engine.readiness_timeout_seconds``, and what is degraded (`ReadinessProbe`)."""
        with self._client_lock:
            if self._probe is None:
                self._probe = ReadinessProbe(self)
            probe = self._probe
        return probe.check()

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

    def cancel(self, run_id: str, *, requested_by: str | None = None) -> Run:
        """Cancel a pending or running run; it stops before its next step. The tenant is
        left ``failed`` until the run is retried or the tenant offboarded."""
        run = self.catalog.cancel_run(run_id, by=requested_by)
        if self._undo_cancelled(run.id):
            # Its workflow is left to stop at its next step, which puts things back again
            # (a step in flight, a write freeze say, may finish after the undo here).
            return run
        try:
            client = self._dbos()
            for workflow_id in self._live_workflows(run):
                client.cancel_workflow(workflow_id)
        except Exception as exc:
            log.warning("run %s is cancelled in the catalog, but its workflow could not be "
                        "cancelled yet (%s); it will stop at its next step", run_id, exc)
        return run

    def retry(self, run_id: str, *, requested_by: str | None = None) -> Run:
        """Continue a failed run from its failed step (or a cancelled one from where it
        stopped), once the cause is fixed, in a new segment. Steps that succeeded are not
        run again; the failed step gets a fresh attempt budget and pending window.

        A pending or running run is refused while one of its workflows is queued, delayed or
        executing; one with no such workflow (it stopped, and no worker has noticed yet) is
        continued in a new segment."""
        run = self.catalog.get_run(run_id)
        if run.status in ("pending", "running"):
            return self._continue_on_request(run)
        if run.status not in ("failed", "cancelled"):
            raise RunStateError(
                f"run {run_id} is {run.status}; only a failed or cancelled run can be retried"
            )
        # The catalog records the failure just before the workflow returns; a retry asked in
        # that instant waits (briefly) for the workflow to finish instead of refusing.
        deadline = time.monotonic() + _RETRY_SETTLE_SECONDS
        while True:
            live = self._live_workflows(run)
            if not live or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if live:
            raise RunStateError(
                f"run {run_id} is {run.status} but its workflow {live[0]} is still running; "
                "try again in a moment"
            )
        reopened = self.catalog.reopen_run(run_id, by=requested_by)
        self._enqueue(reopened)
        log.info("run %s retried from step %s (segment %d)", run_id,
                 run.failed_step or "(where it stopped)", reopened.segment)
        return reopened

    def _continue_on_request(self, run: Run) -> Run:
        refused = (f"run {run.id} is {run.status}; only a failed or cancelled run can be "
                   "retried")
        try:
            live = self._dbos().list_workflows(
                workflow_id_prefix=run.workflow_id, status=list(_ACTIVE_WORKFLOW),
                load_input=False, load_output=False)
        except Exception as exc:  # no system database yet, or unreachable: cannot tell
            raise RunStateError(refused) from exc
        if live:
            where = f" on worker {live[0].executor_id}" if live[0].executor_id else ""
            raise RunStateError(
                f"{refused} (its workflow {live[0].workflow_id} is {live[0].status}{where}): "
                "cancel it first, or wait; a run whose workflow stops is continued by a "
                "worker within "
                f"{self.settings.engine.check_runs_seconds:g} s"
            )
        to_segment = run.segment + 1
        if self.catalog.advance_run(run.id, to_segment=to_segment):
            self._show_stall(run.id, "the run's workflow had stopped; it continues from this "
                             "step (runs retry)")
            self._enqueue(run, segment=to_segment)
            log.info("run %s had no live workflow; continued on request as segment %d",
                     run.id, to_segment)
        return self.catalog.get_run(run.id)

    def _live_workflows(self, run: Run) -> list[str]:
        """The run's workflows (of any segment) that are queued, delayed or executing."""
        return [w.workflow_id for w in self._dbos().list_workflows(
            workflow_id_prefix=run.workflow_id, status=list(_ACTIVE_WORKFLOW),
            load_input=False, load_output=False)]

    def _dbos(self) -> DBOSClient:
        with self._client_lock:
            if self._client is None:
                _prepare_sqlite(self.system_database_url)
                self._client = DBOSClient(
                    system_database_url=self.system_database_url, application_name=_APP_NAME)
            return self._client

    def _enqueue(self, run: Run, *, segment: int | None = None) -> None:
        segment = run.segment if segment is None else segment
        workflow_id = segment_workflow_id(run.workflow_id, segment)
        try:
            if self._launched:
                with SetWorkflowID(workflow_id):
                    DBOS.enqueue_workflow(QUEUE_NAME, run_workflow, run.id, segment)
            else:
                self._dbos().enqueue(
                    {"queue_name": QUEUE_NAME, "workflow_name": WORKFLOW_NAME,
                     "workflow_id": workflow_id},
                    run.id, segment,
                )
        except Exception as exc:
            # The run is registered; a worker's check of active runs enqueues it.
            log.warning("run %s is registered but could not be enqueued yet (%s: %s); a "
                        "worker will pick it up when it starts", run.id, type(exc).__name__, exc)

    # -- execution (inside the worker) ------------------------------------------------------

    def _run(self, run_id: str, segment: int, resume: Mapping[str, Any]) -> str:
        workflow_id = DBOS.workflow_id or segment_workflow_id(run_id, segment)
        with self._state_lock:
            self._executing.add(workflow_id)
        try:
            return self._run_segment(run_id, segment, resume)
        except Exception as exc:
            cause = _stall_cause(exc)
            with self._state_lock:
                self._stall_causes[workflow_id] = cause
                self._died_at[workflow_id] = time.monotonic()
            log.warning("workflow %s stopped: %s (%s)", workflow_id, cause, type(exc).__name__)
            raise
        finally:
            with self._state_lock:
                self._executing.discard(workflow_id)
            if self.conductor is not None:  # a fleet's child run frees its slot now
                self.conductor.wake()

    def _run_segment(self, run_id: str, segment: int, resume: Mapping[str, Any]) -> str:
        """The workflow body: deterministic given the checkpointed step results."""
        # The run's spec and its steps' outputs travel in the workflow, from checkpointed
        # results, so a step does not read them back from the catalog.
        loaded = _load_run_step(run_id, segment)
        if loaded["state"] != "current":
            return str(loaded["state"])
        with telemetry.run_span(run_id, tenant=str(loaded.get("tenant", "")),
                                kind=str(loaded["kind"]),
                                trace_context=loaded.get("trace_context")) as span:
            status = self._run_steps(run_id, segment, resume, loaded)
            span.finish(status)
            return status

    def _run_steps(self, run_id: str, segment: int, resume: Mapping[str, Any],
                   loaded: Mapping[str, Any]) -> str:
        plan = plan_for(loaded["kind"], loaded["options"])
        context = _RunContext(TenantSpec.stored(loaded["spec"]), plan, loaded["outputs"],
                              names=ResourceNames.from_json(loaded.get("names")))
        config = self.settings.engine
        closed = False
        for step in plan.steps:
            if step.name in context.outputs:
                continue  # succeeded in an earlier segment
            continued = resume.get("step") == step.name
            failures = int(resume.get("failures", 0)) if continued else 0
            budget = self.budget_of(step)
            # A continuation after a wait for the budget already holds its reserved slot.
            reserved = continued and bool(resume.get("reserved"))
            while True:
                if budget is not None and not reserved:
                    delay = _reserve_call_step(budget)
                    if delay > 0:
                        wait = self.waits.actual(delay, run_id=run_id, step=step.name,
                                                 cause="budget")
                        if delay > config.long_wait_seconds:
                            self._show_budget_wait(run_id, step.name, budget, delay)
                            if not _hand_over_step(run_id, segment + 1):
                                return "superseded"
                            with SetWorkflowID(segment_workflow_id(loaded["workflow_id"],
                                                                   segment + 1)), \
                                    SetEnqueueOptions(delay_seconds=max(0.0, wait)):
                                DBOS.enqueue_workflow(
                                    QUEUE_NAME, run_workflow, run_id, segment + 1,
                                    {"step": step.name, "failures": failures, "reserved": True})
                            return "waiting"
                        DBOS.sleep(max(0.0, wait))
                reserved = False
                result = _execute_step(run_id, step.name, context)
                state = result["state"]
                if state == "succeeded":
                    context.outputs[step.name] = result["outputs"]
                    # The last step closes the run in its own transaction (no step of its own).
                    closed = bool(result.get("closed_run"))
                    break
                if state == "cancelled":
                    if step.undo is not None:
                        _undo_step(run_id, step.name, context)
                    return "cancelled"
                if state == "failed":
                    error = f"{step.name} failed: {result['error']}"
                    if step.undo is not None:
                        error = f"{error}; {_undo_step(run_id, step.name, context)}"
                    _finish_run_step(run_id, step.name, error)
                    return "failed"
                cause: WaitCause
                if state == "pending":
                    delay, cause = max(0.0, float(result["retry_after"])), "pending"
                else:
                    failures += 1
                    if failures >= config.max_attempts:
                        error = (f"{step.name} failed {failures} times in a row, the most "
                                 f"engine.max_attempts allows; last error: "
                                 f"{_without_retry_promise(result['error'])}; once the cause "
                                 "is fixed, retry the run")
                        if step.undo is not None:
                            error = f"{error}; {_undo_step(run_id, step.name, context)}"
                        _finish_run_step(run_id, step.name, error)
                        return "failed"
                    delay, cause = self._transient_delay(run_id, step.name, failures,
                                                         result.get("retry_after"))
                wait = self.waits.actual(delay, run_id=run_id, step=step.name, cause=cause)
                if delay > config.long_wait_seconds:
                    # Free the thread and the queue slot: the next segment continues later.
                    if not _hand_over_step(run_id, segment + 1):
                        return "superseded"
                    with SetWorkflowID(segment_workflow_id(loaded["workflow_id"], segment + 1)), \
                            SetEnqueueOptions(delay_seconds=max(0.0, wait)):
                        DBOS.enqueue_workflow(QUEUE_NAME, run_workflow, run_id, segment + 1,
                                              {"step": step.name, "failures": failures})
                    return "waiting"
                DBOS.sleep(max(0.0, wait))
        if not closed:  # the last step succeeded in an earlier segment, or an older version
            _finish_run_step(run_id, None, None)
        return "succeeded"

    def budget_of(self, step: PlanStep) -> str | None:
        """The rate budget that counts calls to the provider of ``step``, if any."""
        if not self._budget_by_provider:
            return None
        try:
            label = self.providers.for_step(step).label
        except TenantOpsError:  # a custom step no longer declared: its attempt says so
            return self._budget_by_provider.get(step.kind)
        return self._budget_by_provider.get(label) or self._budget_by_provider.get(step.kind)

    def _reserve(self, budget: str) -> float:
        config = self.settings.engine.budgets[budget]
        return self.catalog.reserve_call(budget, interval=config.per_seconds / config.calls,
                                         burst=config.burst)

    def _show_budget_wait(self, run_id: str, step: str, budget: str, delay: float) -> None:
        config = self.settings.engine.budgets[budget]
        try:
            self.catalog.step_waiting_for_budget(
                run_id, step,
                message=f"waiting {_duration(delay)} for rate budget {budget!r} "
                        f"({config.calls} calls per {config.per_seconds:g} s, engine.budgets)")
        except TenantOpsError as exc:  # only a message; the wait itself is durable
            log.warning("could not show on run %s that step %s waits for budget %s: %s",
                        run_id, step, budget, exc)

    def budgets(self) -> list[tuple[str, BudgetSettings, BudgetState]]:
        """Each configured rate budget, its settings and its schedule now (how many calls it
        has reserved, how far ahead of the clock its next free slot is)."""
        configured = self.settings.engine.budgets
        return [(state.name, configured[state.name], state)
                for state in self.catalog.budget_states(list(configured))]

    def _transient_delay(self, run_id: str, step: str, failures: int,
                         retry_after: float | None) -> tuple[float, WaitCause]:
        """Exponential backoff with jitter (the same on a replay: seeded by run, step and
        failure), but no sooner than the provider's Retry-After, capped by
        ``engine.retry_after_max_seconds``."""
        config = self.settings.engine
        base = config.retry_initial_seconds * config.retry_backoff_rate ** (failures - 1)
        jitter = random.Random(f"{run_id}/{step}/{failures}").uniform(0.8, 1.2)  # noqa: S311
        backoff = min(config.retry_max_seconds, base) * jitter
        if retry_after is not None:
            asked = min(float(retry_after), config.retry_after_max_seconds)
            if asked > backoff:
                return asked, "retry-after"
        return backoff, "backoff"

    def _execute(self, run_id: str, name: str, context: _RunContext) -> dict[str, Any]:
        """One attempt of one step: record it running, call the provider, record the
        outcome. Provider failures are results, not exceptions, so DBOS checkpoints them."""
        step = context.plan.step(name)
        spec = context.spec
        inputs = StepInputs(spec, self.providers, self.settings, context.outputs,
                            names=context.names, run_id=run_id)
        resource: Resource | TenantOpsError
        if name in context.started:  # marked running by the previous step's success
            attempt, resource = context.started.pop(name)
        else:
            try:  # the attempt records the resource it asks for; a build error is its outcome
                resource = step.build(inputs)
            except TenantOpsError as exc:
                resource = exc
            attempt = self.catalog.step_started(run_id, name, resolved=None if isinstance(
                resource, TenantOpsError) else resource.desired())
        if attempt is None:  # cancelled since the previous step, or closed by this one
            return self._ended(run_id, name, context)
        if self._halted:
            raise _TakenOver(f"run {run_id}: this worker has stopped; the run resumes where "
                             "a worker starts next")
        if self._shared and not self._still_holds(DBOS.workflow_id):
            raise _TakenOver(
                f"run {run_id}: workflow {DBOS.workflow_id} was taken over by another worker "
                f"while this one ({self.executor_id}) was silent; stopping here")
        token = _current_step.set(StepRef(run_id, spec.slug, name, attempt))
        try:
            if isinstance(resource, TenantOpsError):
                raise resource
            provider = self.providers.for_step(step)
            if step.verb == "ensure":
                outcome = provider.ensure(resource)
            else:
                outcome = provider.remove(resource)
        except TransientProviderError as exc:
            message = _describe(exc)
            log.info("run %s step %s attempt %d failed transiently: %s", run_id, name, attempt,
                     message)
            self.catalog.step_waiting(run_id, name, status="retrying", message=message)
            return {"step": name, "state": "transient", "error": message,
                    "retry_after": exc.retry_after}
        except (ProviderError, ProvisioningError) as exc:
            message = _describe(exc)
            log.warning("run %s step %s failed: %s", run_id, name, message)
            self.catalog.step_failed(run_id, name, message)
            return {"step": name, "state": "failed", "error": message}
        finally:
            _current_step.reset(token)
        if isinstance(outcome, Pending):
            return self._pending(run_id, name, outcome)
        outputs = dict(outcome.outputs)
        last = name == context.plan.steps[-1].name
        following, ahead = self._next_to_start(run_id, name, context, outputs)
        attempt_after = self.catalog.step_succeeded(
            run_id, name, outputs, step.record(inputs, outputs), message=outcome.message,
            closes_run=last, then_start=following,
            then_resolved=None if ahead is None else ahead.desired())
        if following is not None and ahead is not None:
            context.started[following] = (attempt_after, ahead)
        return {"step": name, "state": "succeeded", "outputs": outputs, "closed_run": last}

    def _undo_cancelled(self, run_id: str) -> bool:
        """A run cancelled where its plan says stopping must put something back (`StepUndo`:
        a move in its write freeze): put it back now, whatever its workflow is doing; True
        when that was the case."""
        progress = self.catalog.run_progress(run_id)
        try:
            plan = plan_for(progress.kind, progress.options)
        except TenantOpsError:  # its workflow would fail on it too; nothing was frozen
            return False
        stopped = next((s for s in plan.steps if s.name not in progress.outputs), None)
        if stopped is None or stopped.undo is None:
            return False
        context = _RunContext(TenantSpec.stored(progress.spec), plan, progress.outputs,
                              names=ResourceNames.from_json(progress.names))
        log.info("run %s cancelled at %s: %s", run_id, stopped.name,
                 self._undo(run_id, stopped.name, context))
        return True

    def _undo(self, run_id: str, name: str, context: _RunContext) -> str:
        """Put back what a run stopped at step ``name`` must not leave as it is (the step's
        `StepUndo`: a move's write freeze), then mark the steps from its ``again_from`` to
        be done again on retry. Returns what happened, for the run's error."""
        undo = context.plan.step(name).undo
        if undo is None:
            return ""
        inputs = StepInputs(context.spec, self.providers, self.settings, context.outputs,
                            names=context.names, run_id=run_id)
        try:
            outcome = self.providers.of_kind(undo.kind).ensure(undo.build(inputs))
        except TenantOpsError as exc:
            log.warning("run %s: undoing %s failed: %s", run_id, name, _describe(exc))
            return (f"putting things back failed ({_describe(exc)}), so this did not happen: "
                    f"{undo.summary}; retry the run, or do it by hand")
        if isinstance(outcome, Pending):
            return (f"putting things back is still pending ({outcome.reason}), so this may "
                    f"not have happened yet: {undo.summary}; retry the run")
        order = context.plan.names
        again = list(order[order.index(undo.again_from):order.index(name)])
        self.catalog.rewind_steps(run_id, again, message=(
            f"undone when the run stopped at {name}; a retry does it again"))
        log.info("run %s stopped at %s: %s; steps %s are to be done again", run_id, name,
                 undo.summary, ", ".join(again) or "(none)")
        return f"{undo.summary}; a retry starts again from {undo.again_from}"

    def _next_to_start(self, run_id: str, name: str, context: _RunContext,
                       outputs: Mapping[str, Any]) -> tuple[str | None, Resource | None]:
        """The step the success of ``name`` starts in its own transaction, and the resource
        it will ask for; none for the last step, a step that waits for a rate budget first
        (its wait may end the segment, and the continuation writes its own start), or one
        whose resource cannot be built (its own start records that as its outcome)."""
        if name == context.plan.steps[-1].name:
            return None, None
        following = context.next_step(name)
        if following is None:
            return None, None
        planned = context.plan.step(following)
        if self.budget_of(planned) is not None:
            return None, None
        try:
            ahead = planned.build(StepInputs(context.spec, self.providers, self.settings,
                                             {**context.outputs, name: dict(outputs)},
                                             names=context.names,
                                             run_id=run_id))
        except TenantOpsError:
            return None, None
        return following, ahead

    def _ended(self, run_id: str, name: str, context: _RunContext) -> dict[str, Any]:
        """The result of a step whose run is no longer active: ``cancelled``, unless this is
        the plan's last step and it already closed the run as succeeded (the worker stopped
        after that transaction, before its checkpoint), in which case its recorded outcome."""
        if name == context.plan.steps[-1].name:
            run = self.catalog.get_run(run_id)
            step = run.step(name)
            if run.status == "succeeded" and step.status == "succeeded":
                return {"step": name, "state": "succeeded", "outputs": dict(step.outputs),
                        "closed_run": True}
        return {"step": name, "state": "cancelled"}

    def _still_holds(self, workflow_id: str | None) -> bool:
        """Whether this worker still executes ``workflow_id`` (a worker that was frozen or
        cut off may have been taken for dead, its workflows resumed by another)."""
        if workflow_id is None:
            return True
        found = self._dbos().list_workflows(workflow_ids=[workflow_id], load_input=False,
                                            load_output=False)
        return bool(found) and found[0].status == "PENDING" and (
            found[0].executor_id == self.executor_id)

    def _pending(self, run_id: str, name: str, outcome: Pending) -> dict[str, Any]:
        """Record a `Pending` and decide, by the database's clock, whether the pending
        window is over (the step fails with what is still missing) or when to look again
        (no later than the end of the window)."""
        elapsed = self.catalog.step_pending(run_id, name, message=outcome.reason)
        limit = (outcome.timeout_seconds if outcome.timeout_seconds is not None
                 else self.settings.engine.pending_timeout_seconds)
        if elapsed >= limit:
            error = (f"still pending after {_duration(elapsed)}, the longest allowed "
                     f"({_duration(limit)}): {outcome.reason}; once that is done, retry the "
                     "run (a retry waits again)")
            log.warning("run %s step %s: %s", run_id, name, error)
            self.catalog.step_failed(run_id, name, error)
            return {"step": name, "state": "failed", "error": error}
        # A wait that has lasted long is looked at less often (every tenth of the time
        # waited so far, up to engine.pending_poll_max_seconds): a week of 60-second polls
        # would be ten thousand workflow segments. Never sooner than the provider asks, and
        # never past the end of the window.
        stretched = min(elapsed / 10, self.settings.engine.pending_poll_max_seconds)
        delay = max(0.0, min(max(float(outcome.retry_after), stretched), limit - elapsed))
        return {"step": name, "state": "pending", "retry_after": delay,
                "message": outcome.reason}


def _repeats(latest: Run | None, change: TenantChange) -> bool:
    """Whether ``change`` asks again what the tenant's latest run, an update that did not
    fail, changed (a repeated request answered with that run)."""
    if latest is None or latest.kind != "update" or latest.status in ("failed", "cancelled"):
        return False
    made = latest.options.get("changes") or {}
    for name, value in change.asks_for().items():
        if name not in made:
            return False
        after = made[name].get("to")
        if name == "tags":
            if not isinstance(after, dict) or any(after.get(k) != v for k, v in value.items()):
                return False
        elif after != value:
            return False
    return True


def _describe(exc: TenantOpsError) -> str:
    if isinstance(exc, ProviderError) and exc.provider and exc.provider not in str(exc):
        return f"{exc.provider}: {exc}"
    return str(exc)


def _safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _executor_id(settings: Settings, system_url: str) -> str:
    """The configured executor ID if one was set on purpose; else ``local`` on the embedded
    SQLite system database (the folder lock makes it one process's), ``<host>-<pid>`` on a
    shared one, so two processes never pose as the same DBOS executor by accident."""
    configured = settings.engine.executor_id
    if "executor_id" in settings.engine.model_fields_set or _is_sqlite(system_url):
        return configured
    return f"{socket.gethostname()[:180]}-{os.getpid()}"


def _is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _folder_lock(system_url: str) -> FolderLock | None:
    parsed = make_url(system_url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or (
            parsed.database == ":memory:"):
        return None
    return FolderLock(Path(parsed.database).resolve())


def _run_id_of(workflow_id: str) -> str | None:
    """The run ID in ``tenantops/<slug>/<kind>/<run id>[/<segment>]``."""
    parts = workflow_id.split("/")
    return parts[3] if len(parts) >= 4 and parts[0] == "tenantops" else None


_RETRY_PROMISE = re.compile(r"[;,]?\s*(?:will retry|retrying)(?: and [^;]*)?\.?\s*$", re.IGNORECASE)


def _without_retry_promise(message: str) -> str:
    """A provider's transient message without its closing "will retry": once the engine
    has given up, the message must not promise another attempt."""
    return _RETRY_PROMISE.sub("", message).rstrip()


def _stall_cause(error: object) -> str:
    """What stopped a workflow or a worker's upkeep, in words an operator acts on, without
    URLs, hosts or secrets."""
    text = str(error)
    lowered = text.lower()
    errnos = set()
    current: object = error
    while isinstance(current, BaseException):
        if isinstance(current, OSError) and current.errno is not None:
            errnos.add(current.errno)
        current = current.__cause__ or current.__context__
    if "disk is full" in lowered or "no space left" in lowered or errno.ENOSPC in errnos:
        return "the worker could not write to its database: disk full"
    if "disk i/o error" in lowered or "file too large" in lowered or errno.EFBIG in errnos:
        return "the worker could not write to its database: disk I/O error"
    if "readonly database" in lowered or "read-only" in lowered:
        return "the worker could not write to its database: read-only"
    if ("connection" in lowered or "could not connect" in lowered
            or "server closed" in lowered or "terminating" in lowered):
        return "the worker lost its connection to the database"
    name = type(error).__name__ if isinstance(error, BaseException) else "error"
    first = text.splitlines()[0] if text else ""
    first = re.sub(r"\w+://\S+", "<url>", first)
    return redact(f"{name}: {first[:200]}" if first else name)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


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
