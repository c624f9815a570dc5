"""Fleet runs: one operation applied to a selection of tenants, each tenant's work an
ordinary run of the operation's kind, with a canary set, batches, a concurrency limit and a
brake (docs/fleet.md).

- `FleetRuns` is what the API, the CLI and the dashboard call: create (or preview: what each
  tenant would get), read, resume, cancel.
- `FleetConductor` is a thread of every started engine. Each pass, for every running fleet
  whose lease it holds (one conductor per fleet at a time, by the catalog's clock), it
  records the outcome of child runs that finished, stops the fleet when a canary failed or
  failures passed its threshold, closes it when nothing is left, and starts pending targets
  up to its concurrency (a child run that waits holds no slot). Every decision is a catalog
  write; a child run is opened with an idempotency claim ``fleet:<id>`` / ``<slug>/<attempt>``
  in the transaction that opens it, so a conductor killed between opening a run and
  recording it finds the same run the next time: no tenant's work runs twice, none is
  skipped. The same thread schedules certificate renewals (`tenantops.provisioning.upkeep`).
- Operations (`FleetOperation`): ``migrate`` (the SaaS's schema), ``rotate-credentials``,
  ``renew-certificates``; each says which tenants have nothing to do, how a tenant's run is
  prepared, and what its outcome reports.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import socket
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from tenantops.catalog import (
    FleetRun,
    FleetTarget,
    IdempotencyClaim,
    NewFleet,
    NewTarget,
    Run,
    TargetOutcome,
    TargetStatus,
    Tenant,
)
from tenantops.errors import (
    CatalogError,
    FleetStateError,
    MigrationError,
    ProviderError,
    ProvisioningError,
    RunConflictError,
    RunStateError,
    SpecError,
    SpecProblem,
    TenantOpsError,
)
from tenantops.provisioning.providers.database import DatabaseSchema
from tenantops.provisioning.run_requests import (
    PreparedRun,
    migration_source,
    prepare_migration,
    prepare_renewal,
    prepare_rotation,
    refuse_unrotatable,
)

if TYPE_CHECKING:
    from tenantops.config import Settings
    from tenantops.provisioning.engine import Engine

__all__ = [
    "OPERATIONS",
    "SCHEDULE_REQUESTER",
    "CertificateSchedule",
    "FleetConductor",
    "FleetOperation",
    "FleetPreview",
    "FleetRequest",
    "FleetRuns",
    "Selection",
    "TargetPreview",
    "wait_for_fleet",
]

log = logging.getLogger("tenantops.provisioning.fleet")

_LIVE = ("active", "suspended", "updating", "suspending", "resuming", "failed", "provisioning")


@dataclass(frozen=True)
class Selection:
    """Which tenants a fleet run covers: all, those of a plan, those with a tag
    (``key=value``), or a list of slugs (in the order given). Exactly one."""

    all: bool = False
    plan: str | None = None
    tag: str | None = None
    tenants: tuple[str, ...] = ()

    def check(self) -> None:
        chosen = [n for n, v in (("all", self.all), ("plan", self.plan), ("tag", self.tag),
                                 ("tenants", self.tenants)) if v]
        if len(chosen) != 1:
            raise SpecError([SpecProblem(
                "selection", ", ".join(chosen) or None,
                "choose exactly one of all, plan, tag (key=value) or tenants")])
        if self.tag is not None and "=" not in self.tag:
            raise SpecError([SpecProblem("tag", self.tag, "must be key=value")])

    def as_dict(self) -> dict[str, Any]:
        if self.all:
            return {"all": True}
        if self.plan:
            return {"plan": self.plan}
        if self.tag:
            return {"tag": self.tag}
        return {"tenants": list(self.tenants)}

    def matches(self, tenant: Tenant) -> bool:
        if self.all:
            return True
        if self.plan is not None:
            return tenant.plan == self.plan
        if self.tag is not None:
            key, _, value = self.tag.partition("=")
            return tenant.tags.get(key) == value
        return tenant.slug in self.tenants


@dataclass(frozen=True)
class FleetRequest:
    """A fleet run to create: the operation, its options, the selection, and how it goes
    (None: the ``[fleet]`` settings)."""

    operation: str
    selection: Selection
    options: Mapping[str, Any] = field(default_factory=dict)
    canary: int | None = None
    concurrency: int | None = None
    batch_size: int | None = None
    max_failures: int | None = None
    max_failure_percent: float | None = None
    no_failure_limit: bool = False


@dataclass(frozen=True)
class TargetPreview:
    """What a fleet run would do to one tenant: ``action`` ``run`` (with ``detail``: the
    pending revisions, say), ``nothing`` (already there) or ``skip`` (with the reason)."""

    slug: str
    action: str
    reason: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FleetPreview:
    operation: str
    options: dict[str, Any]
    targets: tuple[TargetPreview, ...]

    def count(self, action: str) -> int:
        return sum(1 for t in self.targets if t.action == action)


class FleetOperation(ABC):
    """One kind of fleet work. Constructed with the fleet's options (checked, and completed:
    a migration's revision is resolved once for the whole fleet)."""

    name: ClassVar[str]
    kind: ClassVar[str]
    description: ClassVar[str]
    accepts: ClassVar[tuple[str, ...]] = ()
    """The options a request may set (the others are what the fleet records)."""

    def __init__(self, engine: Engine, options: Mapping[str, Any]) -> None:
        self.engine = engine
        self.settings: Settings = engine.settings
        self.options = dict(options)

    def resolved_options(self) -> dict[str, Any]:
        """The options as the fleet records them (every later tenant gets the same)."""
        return dict(self.options)

    def skip_reason(self, tenant: Tenant) -> str | None:
        """Why ``tenant`` has nothing to do (None: it has work)."""
        if tenant.status == "provisioning":
            return "the tenant is being onboarded; its onboarding does this"
        return None

    @abstractmethod
    def prepare(self, tenant: Tenant, request: str) -> PreparedRun: ...

    def outcome(self, run: Run) -> dict[str, Any]:
        """What a finished child run reports for its tenant (its last step's outputs)."""
        for step in reversed(run.steps):
            if step.status == "succeeded":
                return dict(step.outputs)
        return {}

    def preview(self, tenant: Tenant) -> TargetPreview:
        """What the run would do to ``tenant`` (reads only)."""
        reason = self.skip_reason(tenant)
        if reason is not None:
            return TargetPreview(tenant.slug, "skip", reason)
        return TargetPreview(tenant.slug, "run")


class MigrateSchemas(FleetOperation):
    """Bring each tenant's schema to one revision of ``migrations.folder``."""

    name = "migrate"
    kind = "migrate"
    description = "migrate each tenant's schema"
    accepts = ("revision",)

    def __init__(self, engine: Engine, options: Mapping[str, Any]) -> None:
        super().__init__(engine, options)
        revision = options.get("revision")
        if revision is not None and not isinstance(revision, str):
            raise SpecError([SpecProblem("options.revision", revision,
                                         "must be a revision (text), or null for the head")])
        source = migration_source(self.settings)
        self.source = source
        self.options = {"revision": source.resolve(options.get("revision")),
                        "source": str(source.folder), "kind": source.kind}
        if DatabaseSchema not in engine.providers.database.resource_types:
            raise MigrationError(
                f"the database provider {engine.providers.database.label} cannot reach tenant "
                "databases over SQL; tenantops migrates schemas on the sqlite and postgres "
                "providers (on Azure, run them in the app's deployment)")

    def prepare(self, tenant: Tenant, request: str) -> PreparedRun:
        return prepare_migration(tenant, self.settings, revision=str(self.options["revision"]),
                                 request=request, source=self.source,
                                 placements=self.engine.catalog.placements_of(tenant.slug))

    def skip_reason(self, tenant: Tenant) -> str | None:
        reason = super().skip_reason(tenant)
        if reason is None and not tenant.database_name:
            return "the tenant has no database"
        return reason

    def preview(self, tenant: Tenant) -> TargetPreview:
        reason = self.skip_reason(tenant)
        if reason is not None:
            return TargetPreview(tenant.slug, "skip", reason)
        prepared = self.prepare(tenant, "preview")
        step = prepared.plan.steps[0]
        from tenantops.provisioning.plans import StepInputs

        resource = step.build(StepInputs(prepared.spec, self.engine.providers, self.settings))
        try:
            seen = self.engine.providers.database.observe(resource)
        except ProviderError as exc:
            return TargetPreview(tenant.slug, "skip", str(exc))
        if seen is None:
            return TargetPreview(tenant.slug, "skip", "the tenant's database does not exist")
        pending = list(seen.get("pending") or [])
        detail = {"revision": seen.get("revision"), "pending": pending,
                  "to": self.options["revision"]}
        return TargetPreview(tenant.slug, "run" if pending else "nothing", None, detail)


def _unrotatable(engine: Engine, tenant: Tenant) -> str | None:
    """Why a rotation skips ``tenant``: its placement's mode is not one the database provider
    rotates (`DatabaseProvider.rotation_modes`)."""
    database = engine.providers.database
    try:
        refuse_unrotatable(tenant, engine.catalog.placements_of(tenant.slug), database.label,
                           database.rotation_modes)
    except SpecError as exc:
        return str(exc)
    return None


class RotateDatabaseCredentials(FleetOperation):
    """Rotate each tenant's database credentials: a new password on the login not in use,
    the switch, the previous login disabled once unused (`tenantops.provisioning.plans.upkeep`)."""

    name = "rotate-database-credentials"
    kind = "rotate"
    description = "rotate each tenant's database credentials"

    def __init__(self, engine: Engine, options: Mapping[str, Any]) -> None:
        super().__init__(engine, options)
        if not engine.providers.database.rotation_modes:
            raise SpecError([SpecProblem(
                "operation", self.name,
                f"the database provider {engine.providers.database.label} cannot rotate "
                "credentials (tenantops rotates them on the postgres provider: two logins "
                "used in turn); on Azure, use the server's Entra ID authentication instead")])

    def skip_reason(self, tenant: Tenant) -> str | None:
        reason = super().skip_reason(tenant)
        if reason is None and not tenant.database_login:
            return "the tenant has no database login"
        if reason is None and tenant.status == "suspended":
            return "the tenant is suspended (its login is disabled); rotate after resuming"
        return reason or _unrotatable(self.engine, tenant)

    def prepare(self, tenant: Tenant, request: str) -> PreparedRun:
        return prepare_rotation(tenant, self.settings, request=request,
                                placements=self.engine.catalog.placements_of(tenant.slug))

    def preview(self, tenant: Tenant) -> TargetPreview:
        reason = self.skip_reason(tenant)
        if reason is not None:
            return TargetPreview(tenant.slug, "skip", reason)
        rotation = self.prepare(tenant, "preview").options["rotation"]
        detail = {"from_login": rotation["from_login"], "to_login": rotation["to_login"],
                  "to_secret": rotation["to_secret"]}
        if rotation.get("schema"):
            detail["schema"] = rotation["schema"]  # schema mode: where the logins switch
        return TargetPreview(tenant.slug, "run", None, detail)


class RenewCertificates(FleetOperation):
    """Renew the certificates that expire within ``within_days`` of ``as_of`` (both resolved
    when the fleet is created: the settings' window, now)."""

    name = "renew-certificates"
    kind = "renew"
    description = "renew the certificates that expire soon"
    accepts = ("within_days", "as_of")

    def __init__(self, engine: Engine, options: Mapping[str, Any]) -> None:
        super().__init__(engine, options)
        within = options.get("within_days")
        if within is None:
            within = self.settings.certificates.renew_before_days
        if isinstance(within, bool) or not isinstance(within, int | float) or not (
                0 < within <= 3650):
            raise SpecError([SpecProblem("options.within_days", within,
                                         "must be a number of days, more than 0, at most 3650")])
        as_of = options.get("as_of")
        try:
            moment = (dt.datetime.fromisoformat(as_of) if isinstance(as_of, str)
                      else dt.datetime.now(dt.timezone.utc))
        except ValueError:
            moment = None
        if moment is None or (as_of is not None and not isinstance(as_of, str)):
            raise SpecError([SpecProblem("options.as_of", as_of,
                                         "must be an ISO 8601 date and time, or null for now")])
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.timezone.utc)
        self.due_before = moment + dt.timedelta(days=float(within))
        self.options = {"within_days": float(within), "as_of": moment.isoformat()}

    def skip_reason(self, tenant: Tenant) -> str | None:
        reason = super().skip_reason(tenant)
        if reason is not None:
            return reason
        if not tenant.certificate_thumbprint or tenant.certificate_expires_at is None:
            return "the tenant has no certificate"
        if tenant.certificate_expires_at > self.due_before:
            return (f"its certificate expires on {tenant.certificate_expires_at:%Y-%m-%d}, "
                    f"after {self.due_before:%Y-%m-%d} ({self.options['within_days']:g} days "
                    "from as_of)")
        return None

    def prepare(self, tenant: Tenant, request: str) -> PreparedRun:
        return prepare_renewal(tenant, request=request)

    def preview(self, tenant: Tenant) -> TargetPreview:
        reason = self.skip_reason(tenant)
        detail = {"hostname": tenant.custom_domain, "expires_at": (
            tenant.certificate_expires_at.isoformat() if tenant.certificate_expires_at
            else None), "thumbprint": tenant.certificate_thumbprint}
        if reason is not None:
            return TargetPreview(tenant.slug, "skip", reason, detail)
        return TargetPreview(tenant.slug, "run", None, detail)


OPERATIONS: dict[str, type[FleetOperation]] = {
    MigrateSchemas.name: MigrateSchemas,
    RotateDatabaseCredentials.name: RotateDatabaseCredentials,
    RenewCertificates.name: RenewCertificates,
}
"""Fleet operations by name (``tenantops fleet <operation>``)."""


def operation(engine: Engine, name: str, options: Mapping[str, Any], *,
              requested: bool = False) -> FleetOperation:
    """The operation ``name`` with ``options``; ``requested``: the options come from a
    request, which may set only the operation's `FleetOperation.accepts`."""
    factory = OPERATIONS.get(name)
    if factory is None:
        raise SpecError([SpecProblem("operation", name,
                                     f"must be one of {', '.join(sorted(OPERATIONS))}")])
    unknown = sorted(set(options) - set(factory.accepts)) if requested else []
    if unknown:
        raise SpecError([SpecProblem(
            f"options.{key}", options[key],
            f"is not an option of {name} ({', '.join(factory.accepts) or 'it has none'})")
            for key in unknown])
    return factory(engine, options)


class FleetRuns:
    """Create, preview, read, resume and cancel fleet runs (any process: a started engine
    conducts them)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.catalog = engine.catalog

    def _selected(self, selection: Selection) -> list[Tenant]:
        selection.check()
        tenants = {t.slug: t for t in self.catalog.list_tenants() if t.status in _LIVE}
        if selection.tenants:
            unknown = [s for s in selection.tenants if s not in tenants]
            if unknown:
                raise SpecError([SpecProblem(
                    "tenants", unknown, "names no live tenant (check the slugs: offboarded "
                    "tenants are not selected)")])
            return [tenants[s] for s in dict.fromkeys(selection.tenants)]
        return [t for slug, t in sorted(tenants.items()) if selection.matches(t)]

    def preview(self, request: FleetRequest) -> FleetPreview:
        """What the fleet run would do to each selected tenant (reads only)."""
        work = operation(self.engine, request.operation, request.options, requested=True)
        tenants = self._selected(request.selection)
        with ThreadPoolExecutor(max_workers=8, thread_name_prefix="tenantops-preview") as pool:
            targets = tuple(pool.map(work.preview, tenants))
        return FleetPreview(work.name, work.resolved_options(), targets)

    def create(self, request: FleetRequest, *, requested_by: str) -> FleetRun:
        """Register a fleet run; a started engine's conductor starts it at once."""
        fleet = self._register(request, requested_by=requested_by, sole=False)
        if fleet is None:  # only a sole registration declines
            raise FleetStateError("the fleet run was not registered", fleet_id="",
                                  status="none")
        return fleet

    def create_sole(self, request: FleetRequest, *, requested_by: str) -> FleetRun | None:
        """`create`, unless a fleet run of the same operation is running or stopped (then
        None): the check and the registration are one catalog transaction, so two workers
        asking at once register one (`FleetStore.create_sole`)."""
        return self._register(request, requested_by=requested_by, sole=True)

    def _register(self, request: FleetRequest, *, requested_by: str, sole: bool
                  ) -> FleetRun | None:
        work = operation(self.engine, request.operation, request.options, requested=True)
        tenants = self._selected(request.selection)
        config = self.engine.settings.fleet
        _check_limits(request)
        targets = [NewTarget(t.slug, work.skip_reason(t)) for t in tenants]
        store = self.catalog.fleets
        register = store.create_sole if sole else store.create
        fleet = register(NewFleet(
            operation=work.name, selection=request.selection.as_dict(),
            options=work.resolved_options(),
            canary=config.canary if request.canary is None else request.canary,
            concurrency=config.concurrency if request.concurrency is None
            else request.concurrency,
            batch_size=request.batch_size or None,
            max_failures=None if request.no_failure_limit else (
                config.max_failures if request.max_failures is None else request.max_failures),
            max_failure_percent=config.max_failure_percent if request.max_failure_percent is None
            else request.max_failure_percent,
            requested_by=requested_by), targets)
        if fleet is None:
            return None
        log.info("fleet run %s (%s) of %d tenants requested by %s", fleet.id, work.name,
                 fleet.counts.total, requested_by)
        if self.engine.conductor is not None:
            self.engine.conductor.wake(always=True)
        return fleet

    def get(self, fleet_id: str) -> FleetRun:
        return self.catalog.fleets.get(fleet_id)

    def targets(self, fleet_id: str, *, status: TargetStatus | None = None,
                limit: int | None = None, offset: int = 0) -> list[FleetTarget]:
        return self.catalog.fleets.targets(fleet_id, status=status, limit=limit, offset=offset)

    def pause(self, fleet_id: str, *, requested_by: str | None = None) -> FleetRun:
        """The brake by hand: no new tenant starts; runs in flight finish (resume goes on)."""
        paused = self.catalog.fleets.stop(fleet_id, f"paused by {requested_by or 'request'}")
        if paused is None:
            fleet = self.catalog.fleets.get(fleet_id)
            raise FleetStateError(
                f"fleet run {fleet_id} is {fleet.status}; only a running fleet run can be "
                "paused", fleet_id=fleet_id, status=fleet.status)
        return paused

    def resume(self, fleet_id: str, *, requested_by: str | None = None) -> FleetRun:
        return self.catalog.fleets.resume(fleet_id, by=requested_by)

    def cancel(self, fleet_id: str, *, requested_by: str | None = None) -> FleetRun:
        """Cancel the fleet and every child run in flight."""
        fleet, in_flight = self.catalog.fleets.cancel(fleet_id, by=requested_by)
        for run_id in in_flight:
            with contextlib.suppress(RunStateError):  # it finished meanwhile
                self.engine.cancel(run_id, requested_by=requested_by)
        return fleet


def _check_limits(request: FleetRequest) -> None:
    problems = []
    for name in ("canary", "concurrency", "batch_size", "max_failures"):
        value = getattr(request, name)
        low = 1 if name == "concurrency" else 0
        if value is not None and not low <= value <= 100_000:
            problems.append(SpecProblem(name, value, f"must be between {low} and 100000"))
    percent = request.max_failure_percent
    if percent is not None and not 0 < percent <= 100:
        problems.append(SpecProblem("max_failure_percent", percent,
                                    "must be more than 0 and at most 100"))
    if problems:
        raise SpecError(problems)


class FleetConductor:
    """The thread of a started engine that conducts fleet runs (module docstring)."""

    def __init__(self, engine: Engine, *,
                 duties: Sequence[Callable[[], None]] = ()) -> None:
        self.engine = engine
        self.catalog = engine.catalog
        self.holder = (f"{engine.executor_id}:{socket.gethostname()[:60]}:{os.getpid()}:"
                       f"{uuid.uuid4().hex[:8]}")
        self._duties = list(duties)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._conducting = False
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._operations: dict[str, FleetOperation] = {}

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="tenantops-fleets",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _starter(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=8,
                                            thread_name_prefix="tenantops-fleet-start")
        return self._pool

    def _loop(self) -> None:
        poll = self.engine.settings.fleet.poll_seconds
        while not self._stop.is_set():
            self._wake.clear()  # a wake during the pass makes the next pass at once
            busy = False
            try:
                busy = self.pass_once() > 0
            except Exception as exc:  # the catalog unreachable, say: next pass tries again
                log.warning("fleet conductor pass failed: %s: %s", type(exc).__name__, exc)
            for duty in self._duties:
                try:
                    duty()
                except Exception as exc:
                    log.warning("fleet upkeep %s failed: %s: %s", getattr(duty, "__name__", ""),
                                type(exc).__name__, exc)
            self._wake.wait(poll if busy else max(poll, 1.0))

    def wake(self, *, always: bool = False) -> None:
        """Make the next pass now instead of after ``fleet.poll_seconds``: a run of this
        worker finished (``always`` False: only while this conductor has fleets to conduct,
        so a worker with none makes no extra catalog reads), or a fleet was created here.
        A slot a child run frees is refilled at once; runs that finish on other workers
        are seen at the next poll."""
        if always or self._conducting:
            self._wake.set()

    def pass_once(self) -> int:
        """Advance every running fleet this conductor can hold; returns how many ran."""
        ids = self.catalog.fleets.running_ids()
        self._conducting = bool(ids)
        for fleet_id in ids:
            if self._stop.is_set():
                break
            try:
                self.advance(fleet_id)
            except TenantOpsError as exc:
                log.warning("fleet run %s: %s", fleet_id, exc)
        return len(ids)

    def _operation(self, fleet: FleetRun) -> FleetOperation:
        key = f"{fleet.id}:{fleet.resumes}"
        found = self._operations.get(key)
        if found is None:
            found = operation(self.engine, fleet.operation, fleet.options)
            self._operations = {k: v for k, v in self._operations.items()
                                if not k.startswith(f"{fleet.id}:")}
            self._operations[key] = found
        return found

    def advance(self, fleet_id: str) -> None:
        fleets = self.catalog.fleets
        if not fleets.take_lease(fleet_id, self.holder,
                                 seconds=self.engine.settings.fleet.lease_seconds):
            return
        fleet = fleets.get(fleet_id)
        if fleet.status != "running":
            return
        try:
            work = self._operation(fleet)
        except TenantOpsError as exc:
            fleets.stop(fleet_id, f"the operation cannot run: {exc}")
            return
        outcomes: list[TargetOutcome] = []
        busy = 0
        for flight in fleets.in_flight(fleet_id):
            target = flight.target
            if flight.run_status in ("succeeded", "failed", "cancelled"):
                run = self.catalog.get_run(str(target.run_id))
                outcomes.append(TargetOutcome(
                    target.tenant_slug, str(target.run_id),
                    "succeeded" if run.status == "succeeded" else "failed",
                    error=None if run.status == "succeeded" else (
                        run.error or f"its run was {run.status}"),
                    detail=work.outcome(run)))
            elif flight.run_status is None:
                outcomes.append(TargetOutcome(target.tenant_slug, str(target.run_id), "failed",
                                              error="its run is missing from the catalog"))
            elif not flight.waiting:
                busy += 1
        if outcomes:
            fleet = fleets.record(fleet_id, outcomes)
        reason = self._brake(fleet)
        if reason is not None:
            fleets.stop(fleet_id, reason)
            log.warning("fleet run %s stopped: %s", fleet_id, reason)
            return
        if fleets.finish_if_done(fleet_id) is not None:
            log.info("fleet run %s finished", fleet_id)
            return
        startable = fleets.startable(fleet_id, limit=fleet.concurrency - busy)
        if len(startable) == 1:
            skipped = [self._start(fleet, work, startable[0])]
        else:
            # Opening a run is several catalog and DBOS writes, mostly waiting on the
            # database: opened one after the other they capped a fleet at about 30
            # tenants/s whatever its concurrency (bench/bench_fleet.py). Each target's
            # idempotency claim keeps them apart; skips are recorded together after.
            pool = self._starter()
            futures = [pool.submit(self._start, fleet, work, target) for target in startable]
            skipped = [future.result() for future in futures]
        outcomes = [outcome for outcome in skipped if outcome is not None]
        if outcomes:
            fleets.record(fleet_id, outcomes)

    def _brake(self, fleet: FleetRun) -> str | None:
        if fleet.canary and fleet.counts.failed:
            failed = self.catalog.fleets.canary_failures(fleet.id)
            if failed:
                first = failed[0]
                return (f"canary tenant {first.tenant_slug} failed ({first.error}); fix the "
                        "cause, then resume the fleet run")
        reason = fleet.threshold_passed(fleet.counts.failed)
        return None if reason is None else f"{reason}; fix the cause, then resume the fleet run"

    def _start(self, fleet: FleetRun, work: FleetOperation, target: FleetTarget
               ) -> TargetOutcome | None:
        """Open the target's child run (or continue its previous one); the outcome to
        record when the target is skipped instead (the caller records them together)."""
        fleets = self.catalog.fleets
        slug = target.tenant_slug
        tenant = self.catalog.find_tenant(slug)
        skip = ("the tenant was offboarded" if tenant is None or tenant.status == "offboarded"
                else work.skip_reason(tenant))
        if skip is not None or tenant is None:
            return TargetOutcome(slug, "", "skipped", error=skip)
        if target.run_id is not None and target.attempt > 0 and self._continue(fleet, target):
            return None
        attempt = target.attempt + 1
        request = f"fleet:{fleet.id}/{attempt}"
        claim = IdempotencyClaim(f"fleet:{fleet.id}", f"{slug}/{attempt}", request)
        try:
            run = self.engine.open_prepared(work.prepare(tenant, request),
                                            requested_by=fleet.requested_by, idempotency=claim)
        except RunConflictError as exc:
            fleets.target_note(fleet.id, slug, str(exc))  # tried again next pass
            return None
        except CatalogError:
            raise
        except (ProvisioningError, SpecError) as exc:
            return TargetOutcome(slug, "", "skipped", error=str(exc))
        fleets.target_started(fleet.id, slug, attempt=attempt, run_id=run.id)
        return None

    def _continue(self, fleet: FleetRun, target: FleetTarget) -> bool:
        """A resumed target: retry its failed run, or adopt it if it is active again;
        False when a new run must be opened."""
        run = self.catalog.get_run(str(target.run_id))
        if run.status in ("pending", "running"):
            self.catalog.fleets.target_started(fleet.id, target.tenant_slug,
                                               attempt=target.attempt, run_id=run.id)
            return True
        if run.status == "succeeded":
            return False
        try:
            retried = self.engine.retry(run.id, requested_by=fleet.requested_by)
        except (RunStateError, RunConflictError):
            return False  # not the tenant's latest run any more: open a new one
        self.catalog.fleets.target_started(fleet.id, target.tenant_slug,
                                           attempt=target.attempt, run_id=retried.id)
        return True


SCHEDULE_REQUESTER = "tenantops (certificate schedule)"


class CertificateSchedule:
    """A duty of the conductor: every ``certificates.check_seconds``, when no renewal fleet
    is running or stopped, start one over the tenants whose certificates expire within
    ``certificates.renew_before_days``. ``clock`` is the seam tests turn forward."""

    def __init__(self, engine: Engine, *,
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        self.engine = engine
        self.clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))
        self._next = 0.0

    def __call__(self) -> None:
        config = self.engine.settings.certificates
        if not config.schedule or time.monotonic() < self._next:
            return
        self._next = time.monotonic() + config.check_seconds
        self.check()

    def check(self) -> FleetRun | None:
        """Start a renewal fleet if certificates are due and none runs (checked again as it
        is registered: another worker's schedule may have started one meanwhile); the
        fleet, or None."""
        if self.engine.catalog.fleets.active_for(RenewCertificates.name):
            return None
        runs = FleetRuns(self.engine)
        request = FleetRequest(RenewCertificates.name, Selection(all=True),
                               options={"as_of": self.clock().isoformat()})
        work = operation(self.engine, request.operation, request.options, requested=True)
        due = tuple(t.slug for t in runs._selected(request.selection)
                    if work.skip_reason(t) is None)
        if not due:
            return None
        fleet = runs.create_sole(FleetRequest(RenewCertificates.name, Selection(tenants=due),
                                              options=work.resolved_options()),
                                 requested_by=SCHEDULE_REQUESTER)
        if fleet is None:
            return None
        log.info("certificate schedule: fleet run %s renews %d certificates", fleet.id,
                 len(due))
        return fleet


def wait_for_fleet(runs: FleetRuns, fleet_id: str, *, timeout: float = 120.0,
                   poll: float = 0.1) -> FleetRun:
    """Block until the fleet is no longer running (for tests and scripts)."""
    deadline = time.monotonic() + timeout
    while True:
        fleet = runs.get(fleet_id)
        if fleet.status != "running":
            return fleet
        if time.monotonic() > deadline:
            raise ProvisioningError(
                f"fleet run {fleet_id} is still running after {timeout:.0f} s: "
                f"{fleet.counts.as_dict()}")
        time.sleep(poll)
