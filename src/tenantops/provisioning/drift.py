"""Drift: a tenant's resources as they are, compared with what the catalog records.

A tenant's recorded state is its reconcile plan (`tenantops.provisioning.plans.reconcile`):
its database and login, DNS records, hostname, certificate and SNI binding, organization and
the custom steps that run in ``reconcile``, as its fields, resource names and suspended state
say. A drift check observes each through its provider (reads only, like a preview) and
reports, resource by resource in the plan-preview format (step, provider, action, resource):

- ``in_sync``: it exists as recorded (``unchanged``);
- ``drifted``: it exists but differs (``update``), with each differing field, recorded and
  found (a login made ``NOLOGIN`` by hand, a CNAME pointing elsewhere);
- ``missing``: it is gone (``create``);
- ``unknown``: its provider could not be asked (unreachable, refused), with the error;
- ``unchecked``: nothing can be observed (a wait, a custom step that does not observe).

The tenant's state is the worst of them: ``missing`` before ``drifted`` before ``unknown``
before ``in_sync``. Only tenants whose state is settled (active or suspended) are checked:
any other status means a run is changing the tenant, it failed (its run says why), or it is
gone. A suspended tenant's recorded state is the suspended one: its disabled login is no
drift. `tenantops reconcile` (a run of kind ``reconcile``) restores what a check reports.

- `DriftChecker.check` checks one tenant (what a fleet operation calls per tenant);
  `check_and_record` also keeps the report in the catalog (`tenantops.catalog.drift`);
- `DriftWatch` is the worker's scheduled check (``drift.check_interval_seconds``): it claims
  tenants whose last check is older than the interval, a few at a time, checks them, and,
  with ``drift.auto_reconcile``, opens a reconcile run for each one found off track.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from tenantops.catalog import Catalog, DriftRecord, DriftState, Run, Tenant
from tenantops.catalog.drift import CHECKED_STATUSES
from tenantops.config import DriftSettings, Settings
from tenantops.errors import (
    ProviderError,
    ProvisioningError,
    TenantOpsError,
    TenantStateError,
)
from tenantops.log import redact
from tenantops.provisioning.plans import Plan, PlanStep, StepInputs, differences
from tenantops.provisioning.plans.base import ChangeAction
from tenantops.provisioning.providers.base import Resource
from tenantops.provisioning.providers.catalog import DomainRetirement
from tenantops.provisioning.providers.dns import CustomerDomainRecords, DnsPropagation
from tenantops.provisioning.providers.registry import Providers
from tenantops.provisioning.run_requests import prepare_reconcile

if TYPE_CHECKING:
    from tenantops.provisioning.engine import Engine

__all__ = [
    "AUTOMATIC_REQUESTER",
    "SCHEDULE_REQUESTER",
    "Difference",
    "DriftChecker",
    "DriftReport",
    "DriftWatch",
    "ResourceDrift",
    "ResourceState",
    "observe_plan",
    "tenant_state",
]

log = logging.getLogger("tenantops.provisioning.drift")

ResourceState = Literal["in_sync", "drifted", "missing", "unknown", "unchecked"]
AUTOMATIC_REQUESTER = "tenantops drift check (drift.auto_reconcile)"
"""Who the reconcile runs a scheduled check opens are requested by."""
SCHEDULE_REQUESTER = "tenantops drift check (scheduled)"

_ACTIONS: dict[ResourceState, ChangeAction] = {
    "in_sync": "unchanged", "drifted": "update", "missing": "create", "unknown": "check",
    "unchecked": "check"}
_WAITS = (DnsPropagation, CustomerDomainRecords, DomainRetirement)
_ERROR_LIMIT = 500


@dataclass(frozen=True)
class Difference:
    """One field of a resource that is not as recorded."""

    field: str
    recorded: Any
    found: Any

    def __str__(self) -> str:
        return f"{self.field}: recorded {_shown(self.recorded)}, found {_shown(self.found)}"


@dataclass(frozen=True)
class ResourceDrift:
    """What one step's resource was found to be (see the module docstring). ``action`` is
    what a reconcile would do to it, as a preview says it; ``current`` what the provider
    reported, ``desired`` what is recorded (never a secret's value: providers report names)."""

    step: str
    provider: str
    resource: str
    summary: str
    state: ResourceState
    differences: tuple[Difference, ...] = ()
    current: dict[str, Any] | None = None
    desired: dict[str, Any] | None = None
    error: str | None = None

    @property
    def action(self) -> ChangeAction:
        return _ACTIONS[self.state]

    def describe(self) -> str:
        """``login: recorded acme_app, found none``, ``gone``, or the error."""
        if self.state == "missing":
            return "gone"
        if self.state == "drifted":
            return "; ".join(str(d) for d in self.differences)
        if self.state == "unknown":
            return f"could not be observed: {self.error}"
        return ""

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "provider": self.provider, "resource": self.resource,
                "summary": self.summary, "state": self.state, "action": self.action,
                "differences": [{"field": d.field, "recorded": _json(d.recorded),
                                 "found": _json(d.found)} for d in self.differences],
                "current": _json(self.current), "desired": _json(self.desired),
                "error": self.error}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ResourceDrift:
        return cls(
            step=str(data.get("step", "")), provider=str(data.get("provider", "")),
            resource=str(data.get("resource", "")), summary=str(data.get("summary", "")),
            state=data.get("state", "unknown"),
            differences=tuple(Difference(str(d.get("field")), d.get("recorded"), d.get("found"))
                              for d in data.get("differences") or []),
            current=data.get("current"), desired=data.get("desired"),
            error=data.get("error"))


@dataclass(frozen=True)
class DriftReport:
    """One check of tenant ``slug``: its ``state`` and each resource's finding."""

    slug: str
    status: str
    state: DriftState
    resources: tuple[ResourceDrift, ...]
    checked_at: dt.datetime | None = None
    checked_by: str | None = None
    reconcile_run_id: str | None = None

    @property
    def off_track(self) -> tuple[ResourceDrift, ...]:
        """The resources that are not in sync (unchecked ones excluded)."""
        return tuple(r for r in self.resources if r.state not in ("in_sync", "unchecked"))

    def count(self, state: ResourceState) -> int:
        return sum(1 for r in self.resources if r.state == state)

    def render(self) -> str:
        """As previews render: one line per resource, with what differs."""
        signs = {"create": "+", "update": "~", "check": "?"}
        lines = [f"drift {self.slug} ({self.status}): {self.state.replace('_', ' ')}"]
        for r in self.resources:
            detail = r.describe()
            lines.append(f"  {signs.get(r.action, ' ')} {r.state:<9} {r.provider:<22} "
                         f"{r.resource}" + (f"  ({detail})" if detail else ""))
        lines.append(f"  {self.count('missing')} missing, {self.count('drifted')} drifted, "
                     f"{self.count('unknown')} unknown, {self.count('in_sync')} in sync")
        return "\n".join(lines)

    @classmethod
    def of(cls, record: DriftRecord, status: str) -> DriftReport:
        """The report a catalog record keeps."""
        return cls(record.slug, status, record.state,
                   tuple(ResourceDrift.from_json(r) for r in record.resources),
                   record.checked_at, record.checked_by, record.reconcile_run_id)


def tenant_state(resources: Iterable[ResourceDrift]) -> DriftState:
    """The worst of the resources' states: missing, drifted, unknown, in sync."""
    found = {r.state for r in resources}
    for state in ("missing", "drifted", "unknown"):
        if state in found:
            return state
    return "in_sync"


def _shown(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) or "none"
    return repr(value) if isinstance(value, str) else str(value)


def _json(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _error_text(exc: TenantOpsError) -> str:
    text = redact(str(exc))
    if isinstance(exc, ProviderError) and exc.provider and exc.provider not in text:
        text = f"{exc.provider}: {text}"
    return text[:_ERROR_LIMIT]


def _observe_step(step: PlanStep, inputs: StepInputs) -> ResourceDrift:
    providers = inputs.providers
    try:
        provider = providers.for_step(step)
        label = provider.label
    except ProviderError as exc:
        label = f"{step.kind}:{step.provider or 'unknown'}"
        return ResourceDrift(step.name, label, step.name, step.summary, "unknown",
                             error=_error_text(exc))
    try:
        resource: Resource = step.build(inputs)
    except TenantOpsError as exc:
        return ResourceDrift(step.name, label, step.name, step.summary, "unknown",
                             error=_error_text(exc))
    desired = resource.desired()
    if isinstance(resource, _WAITS) or not provider.observes(resource):
        return ResourceDrift(step.name, label, resource.key, step.summary, "unchecked",
                             desired=desired)
    try:
        current = provider.observe(resource)
    except TenantOpsError as exc:
        return ResourceDrift(step.name, label, resource.key, step.summary, "unknown",
                             desired=desired, error=_error_text(exc))
    if current is None:
        return ResourceDrift(step.name, label, resource.key, step.summary, "missing",
                             desired=desired)
    differing = differences(desired, current)
    found = tuple(Difference(name, desired[name], current.get(name)) for name in differing)
    return ResourceDrift(step.name, label, resource.key, step.summary,
                         "drifted" if found else "in_sync", found, dict(current), desired)


def observe_plan(plan: Plan, inputs: StepInputs) -> tuple[ResourceDrift, ...]:
    """Observe every resource of ``plan`` (reads only) and compare it with what the plan
    would converge it to. A provider that fails makes its resource ``unknown``, not the
    check: every other resource is still reported."""
    inputs = StepInputs(inputs.spec, inputs.providers, inputs.settings, inputs.outputs,
                        previewing=True, names=inputs.names)
    return tuple(_observe_step(step, inputs) for step in plan.steps)


def _recorded_outputs(tenant: Tenant) -> dict[str, dict[str, Any]]:
    """The outputs the recorded state reads from earlier steps: the certificate the
    hostname is to be served with."""
    if tenant.certificate_thumbprint:
        return {"issue_certificate": {"thumbprint": tenant.certificate_thumbprint}}
    return {}


class DriftChecker:
    """Checks tenants' drift with ``providers`` (reads only) and keeps the reports in
    ``catalog``. Thread-safe: checks of several tenants run side by side."""

    def __init__(self, catalog: Catalog, providers: Providers, settings: Settings) -> None:
        self.catalog = catalog
        self.providers = providers
        self.settings = settings

    @classmethod
    def of(cls, engine: Engine) -> DriftChecker:
        return cls(engine.catalog, engine.providers, engine.settings)

    def check(self, slug: str) -> DriftReport:
        """Observe every resource of tenant ``slug``'s recorded state and compare; records
        nothing. `TenantNotFoundError` for an unknown slug; `TenantStateError` when the
        tenant's state is not settled (a run in progress, failed, offboarded)."""
        tenant, runs = self.catalog.tenant_and_runs(slug)
        self._check_settled(tenant, runs)
        prepared = prepare_reconcile(tenant, runs, self.catalog.retiring_domains_of(slug),
                                     self.settings,
                                     placements=self.catalog.placements_of(slug))
        inputs = StepInputs(prepared.spec, self.providers, self.settings,
                            _recorded_outputs(tenant), names=prepared.names)
        resources = observe_plan(prepared.plan, inputs)
        return DriftReport(slug, tenant.status, tenant_state(resources), resources)

    def check_and_record(self, slug: str, *, checked_by: str) -> DriftReport:
        """`check`, then keep the report as the tenant's last (and write the drift event
        when the finding changed)."""
        report = self.check(slug)
        record = self.catalog.drift.record(
            slug, state=report.state, resources=[r.to_json() for r in report.resources],
            checked_by=checked_by)
        return DriftReport.of(record, report.status)

    def check_many(self, slugs: Sequence[str], *, checked_by: str,
                   on_report: Callable[[DriftReport], None] | None = None
                   ) -> list[DriftReport | TenantOpsError]:
        """`check_and_record` each of ``slugs``, ``drift.concurrency`` at a time, in order;
        a tenant that cannot be checked gives its error instead of a report."""
        def one(slug: str) -> DriftReport | TenantOpsError:
            try:
                report = self.check_and_record(slug, checked_by=checked_by)
            except TenantOpsError as exc:
                return exc
            if on_report is not None:
                on_report(report)
            return report

        if len(slugs) <= 1:
            return [one(slug) for slug in slugs]
        with ThreadPoolExecutor(max_workers=min(self.settings.drift.concurrency, len(slugs)),
                                thread_name_prefix="tenantops-drift") as pool:
            return list(pool.map(one, slugs))

    def _check_settled(self, tenant: Tenant, runs: Sequence[Run]) -> None:
        if tenant.status in CHECKED_STATUSES:
            return
        latest = runs[-1] if runs else None
        if latest is not None and not latest.finished:
            raise TenantStateError(
                f"tenant {tenant.slug!r} is {tenant.status}: its {latest.kind} run {latest.id} "
                "is in progress, so its resources are changing; check its drift once the run "
                "has finished", slug=tenant.slug, status=tenant.status)
        if tenant.status == "failed" and latest is not None:
            raise TenantStateError(
                f"tenant {tenant.slug!r} is failed: its {latest.kind} run {latest.id} ended "
                f"{latest.status}, so what it should be is not settled; retry that run "
                f"(tenantops runs retry {latest.id}) or offboard the tenant",
                slug=tenant.slug, status=tenant.status)
        raise TenantStateError(
            f"tenant {tenant.slug!r} is {tenant.status}; only active and suspended tenants "
            "have a recorded state to compare with", slug=tenant.slug, status=tenant.status)


@dataclass
class DriftWatch:
    """The worker's scheduled drift checks (``drift.check_interval_seconds``; see the module
    docstring), on a daemon thread of their own so that slow providers never hold up the
    worker's heartbeat."""

    engine: Engine
    settings: Settings | None = None
    """The settings to schedule by; the engine's when None."""
    checker: DriftChecker = field(init=False)
    _thread: threading.Thread | None = field(init=False, default=None)
    _stop: threading.Event = field(init=False, default_factory=threading.Event)

    def __post_init__(self) -> None:
        if self.settings is None:
            self.settings = self.engine.settings
        self.checker = DriftChecker(self.engine.catalog, self.engine.providers, self.settings)

    @property
    def config(self) -> DriftSettings:
        return (self.settings or self.engine.settings).drift

    @property
    def interval(self) -> float:
        interval = self.config.check_interval_seconds
        if interval is None:
            raise ProvisioningError("drift checks are not scheduled "
                                    "(drift.check_interval_seconds is unset)")
        return interval

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="tenantops-drift-watch",
                                        daemon=True)
        self._thread.start()
        log.info("drift checks scheduled: every tenant every %g s%s", self.interval,
                 ", reconciled when off track" if self.config.auto_reconcile
                 else "")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _loop(self) -> None:
        pause = min(max(self.interval / 4, 1.0), 60.0)
        while not self._stop.is_set():
            try:
                checked = self.run_once()
            except Exception as exc:  # the catalog unreachable, say: try again later
                self.engine.problems["drift checks"] = f"failed ({type(exc).__name__})"
                log.warning("scheduled drift checks failed, will try again in %.0f s: %s",
                            pause, redact(str(exc)))
                checked = 0
            else:
                self.engine.problems.pop("drift checks", None)
            if not checked and self._stop.wait(pause):
                return

    def run_once(self) -> int:
        """Claim the tenants that are due (a batch), check them, and reconcile those off
        track when configured; returns how many were checked."""
        config = self.config
        slugs = self.engine.catalog.drift.claim_due(
            every=dt.timedelta(seconds=self.interval), by=self.engine.executor_id,
            limit=config.batch_size,
            claim_for=dt.timedelta(seconds=max(300.0, self.interval)))
        if not slugs:
            return 0
        results = self.checker.check_many(slugs, checked_by=SCHEDULE_REQUESTER,
                                          on_report=self._reconcile_if_asked)
        for slug, result in zip(slugs, results, strict=True):
            if isinstance(result, TenantOpsError):
                # Its state changed since it was claimed: it keeps its last report, and the
                # claim expires by itself.
                log.info("scheduled drift check of %s skipped: %s", slug, result)
            elif result.state != "in_sync":
                log.warning("drift: tenant %s is %s (%s)", slug, result.state.replace("_", " "),
                            "; ".join(f"{r.resource} {r.describe()}" for r in result.off_track))
        return len(slugs)

    def _reconcile_if_asked(self, report: DriftReport) -> None:
        if not self.config.auto_reconcile or report.state not in (
                "drifted", "missing"):
            return
        try:
            run = self.engine.reconcile_tenant(
                report.slug, requested_by=AUTOMATIC_REQUESTER,
                reason=f"a scheduled drift check found it {report.state}")
        except TenantOpsError as exc:
            log.warning("drift: could not reconcile %s: %s", report.slug, exc)
            return
        self.engine.catalog.drift.opened_reconcile(report.slug, run.id)
        log.info("drift: tenant %s is %s; reconcile run %s opened", report.slug, report.state,
                 run.id)

