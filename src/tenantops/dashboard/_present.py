"""Catalog records as people read them: labels, durations, times, a run's one-line summary.

Pure functions over `tenantops.catalog` records; the templates only lay these out.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tenantops.catalog import Attempt, Run, Step, Tenant, attempt_seconds, run_seconds, step_seconds
from tenantops.errors import ProvisioningError
from tenantops.log import redact, redact_values
from tenantops.provisioning.domains import pending_domain
from tenantops.provisioning.plan import plan_for

__all__ = [
    "KIND_LABELS",
    "STATUS_LABELS",
    "AttemptBar",
    "AttemptView",
    "DnsRecordView",
    "PendingDomainView",
    "RunLine",
    "RunView",
    "StepView",
    "format_duration",
    "format_time",
    "pending_domain_view",
    "relative_days",
    "run_line",
    "run_view",
    "split_dns_records",
    "trace_id_of",
]

OUTCOME_LABELS = {
    "running": "Running", "waiting": "Not ready yet, polled again",
    "retrying": "Transient fault, tried again", "succeeded": "Succeeded", "failed": "Failed",
    "interrupted": "Interrupted (its worker stopped)",
}
STATUS_LABELS = {
    "pending": "Pending", "running": "Running", "waiting": "Waiting", "retrying": "Retrying",
    "succeeded": "Succeeded", "failed": "Failed", "cancelled": "Cancelled",
    "provisioning": "Provisioning", "active": "Active", "offboarding": "Offboarding",
    "offboarded": "Offboarded", "updating": "Updating", "suspending": "Suspending",
    "suspended": "Suspended", "resuming": "Resuming", "reconciling": "Reconciling",
}
KIND_LABELS = {"onboard": "Onboarding", "offboard": "Offboarding", "update": "Update",
               "suspend": "Suspension", "resume": "Resumption", "reconcile": "Reconciliation",
               "adopt": "Adoption"}


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def format_time(value: dt.datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def relative_days(value: dt.datetime, now: dt.datetime) -> str:
    """``in 89 days``, ``today``, ``3 days ago``."""
    days = (value - now).days
    if days == 0:
        return "today" if value >= now else "earlier today"
    if days > 0:
        return f"in {days} day{'s' if days != 1 else ''}"
    return f"{-days} day{'s' if days != -1 else ''} ago"


@dataclass(frozen=True)
class DnsRecordView:
    type: str
    name: str
    value: str


def split_dns_records(tenant: Tenant) -> list[DnsRecordView]:
    """The tenant's DNS records (stored as ``"<TYPE> <name>": value``), sorted by name."""
    records = []
    for key, value in tenant.dns_records.items():
        kind, _, name = key.partition(" ")
        records.append(DnsRecordView(kind, name or kind, value))
    return sorted(records, key=lambda r: (r.name, r.type))


@dataclass(frozen=True)
class AttemptView:
    number: int
    execution: int
    outcome: str
    label: str
    started: str
    finished: str
    duration: str
    error: str | None
    message: str | None


@dataclass(frozen=True)
class PendingDomainView:
    """The records the customer of a customer-managed domain must still publish."""

    records: tuple[DnsRecordView, ...]
    status: str
    label: str
    message: str | None


def pending_domain_view(tenant: Tenant, runs: list[Run]) -> PendingDomainView | None:
    """Set while the tenant's onboarding waits for its customer's DNS records (``runs``
    oldest first)."""
    pending = pending_domain(tenant.custom_domain, runs)
    if pending is None:
        return None
    return PendingDomainView(
        tuple(DnsRecordView(r["type"], r["name"], r["value"]) for r in pending.records),
        pending.status, STATUS_LABELS.get(pending.status, pending.status), pending.message)


@dataclass(frozen=True)
class AttemptBar:
    """One attempt drawn on the run's timeline: ``x`` and ``width`` in thousandths of the
    run's whole span (first start to last end, or now)."""

    x: float
    width: float
    outcome: str
    title: str


@dataclass(frozen=True)
class StepView:
    number: int
    name: str
    summary: str
    values: tuple[tuple[str, str], ...]
    outputs: tuple[tuple[str, str], ...]
    history: tuple[AttemptView, ...]
    provider: str
    action: str
    status: str
    label: str
    attempts: int
    started: str
    finished: str
    started_iso: str
    duration: str
    error: str | None
    message: str | None
    bars: tuple[AttemptBar, ...] = ()


@dataclass(frozen=True)
class RunView:
    id: str
    tenant: str
    kind: str
    kind_label: str
    status: str
    label: str
    requested_by: str
    created: str
    started: str
    finished: str
    duration: str
    error: str | None
    failed_step: str | None
    retries: int
    keep_database: bool
    steps: tuple[StepView, ...]
    done: int
    active: bool
    summary: str

    @property
    def can_retry(self) -> bool:
        return self.status in ("failed", "cancelled")

    @property
    def can_cancel(self) -> bool:
        return self.status in ("pending", "running")


def _step_summaries(run: Run, custom_domain: str | None) -> dict[str, str]:
    """What each step will do, as the plan says it, with the tenant's domain filled in."""
    try:
        plan = plan_for(run.kind, run.options)
    except ProvisioningError:
        return {}
    return {s.name: s.summary.replace("<custom domain>", custom_domain) if custom_domain
            else s.summary for s in plan.steps}


def _pairs(values: Mapping[str, Any] | None) -> tuple[tuple[str, str], ...]:
    """``values`` (redacted) as (name, text) pairs; nested values as compact JSON."""
    cleaned = redact_values(dict(values or {}))
    if not isinstance(cleaned, dict):
        return ()
    return tuple((str(k), v if isinstance(v, str) else json.dumps(v, default=str))
                 for k, v in cleaned.items())


def _attempt_view(attempt: Attempt, now: dt.datetime) -> AttemptView:
    return AttemptView(
        number=attempt.number, execution=attempt.execution, outcome=attempt.outcome,
        label=OUTCOME_LABELS.get(attempt.outcome, attempt.outcome),
        started=format_time(attempt.started_at), finished=format_time(attempt.finished_at),
        duration=format_duration(attempt_seconds(attempt, now)),
        error=redact(attempt.error) if attempt.error else None, message=attempt.message)


def _bars(step: Step, span: tuple[dt.datetime, dt.datetime] | None, now: dt.datetime
          ) -> tuple[AttemptBar, ...]:
    if span is None:
        return ()
    first, last = span
    total = max((last - first).total_seconds(), 0.001)
    bars = []
    for attempt in step.history:
        end = attempt.finished_at or (now if attempt.outcome == "running" else attempt.started_at)
        x = (attempt.started_at - first).total_seconds() / total * 1000
        width = max(4.0, (end - attempt.started_at).total_seconds() / total * 1000)
        label = OUTCOME_LABELS.get(attempt.outcome, attempt.outcome)
        seconds = attempt_seconds(attempt, now)
        bars.append(AttemptBar(
            x=round(min(x, 996.0), 1), width=round(min(width, 1000 - min(x, 996.0)), 1),
            outcome=attempt.outcome,
            title=f"{step.name} attempt {attempt.number}: {label}"
                  + (f", {format_duration(seconds)}" if seconds is not None else "")))
    return tuple(bars)


def _span(run: Run, now: dt.datetime) -> tuple[dt.datetime, dt.datetime] | None:
    starts = [a.started_at for s in run.steps for a in s.history]
    if not starts:
        return None
    ends = [a.finished_at or (now if a.outcome == "running" else a.started_at)
            for s in run.steps for a in s.history]
    return min(starts), max(ends + starts)


def _step_view(number: int, step: Step, summary: str, now: dt.datetime,
               span: tuple[dt.datetime, dt.datetime] | None = None) -> StepView:
    seconds = step_seconds(step, now)
    return StepView(
        number=number, name=step.name, summary=summary, values=_pairs(step.resolved),
        outputs=_pairs(step.outputs),
        history=tuple(_attempt_view(a, now) for a in step.history), provider=step.provider,
        action=step.action, status=step.status, label=STATUS_LABELS.get(step.status, step.status),
        attempts=step.attempts, started=format_time(step.started_at),
        finished=format_time(step.finished_at),
        started_iso=step.started_at.isoformat() if step.started_at else "",
        duration=format_duration(seconds), error=step.error, message=step.message,
        bars=_bars(step, span, now))


def _summary(run: Run, steps: tuple[StepView, ...], done: int) -> str:
    what = f"{KIND_LABELS.get(run.kind, run.kind)} {run.tenant_slug}"
    total = len(steps)
    if run.status == "succeeded":
        return f"{what} succeeded: {done} of {total} steps done."
    if run.status == "failed":
        where = f" at step {run.failed_step}" if run.failed_step else ""
        return f"{what} failed{where}: {run.error or 'no error recorded'}"
    if run.status == "cancelled":
        return f"{what} was cancelled after {done} of {total} steps."
    current = next((s for s in steps if s.status not in ("succeeded", "pending")), None)
    now = ""
    if current is not None:
        now = f"; now {current.name}, {current.label.lower()}"
        if current.attempts > 1:
            now += f" (attempt {current.attempts})"
    return f"{what} is {run.status}: {done} of {total} steps done{now}."


def run_view(run: Run, now: dt.datetime | None = None, *,
             custom_domain: str | None = None) -> RunView:
    """``run`` as the run page shows it; durations as `tenantops.catalog.durations` defines
    them, running ones up to ``now``; ``custom_domain`` fills in the plan's descriptions of
    steps that have not run yet."""
    now = now or dt.datetime.now(dt.timezone.utc)
    summaries = _step_summaries(run, custom_domain)
    span = _span(run, now)
    steps = tuple(_step_view(i, s, summaries.get(s.name, ""), now, span)
                  for i, s in enumerate(run.steps, start=1))
    done = sum(1 for s in steps if s.status == "succeeded")
    seconds = run_seconds(run, now)
    return RunView(
        id=run.id, tenant=run.tenant_slug, kind=run.kind,
        kind_label=KIND_LABELS.get(run.kind, run.kind), status=run.status,
        label=STATUS_LABELS.get(run.status, run.status), requested_by=run.requested_by,
        created=format_time(run.created_at), started=format_time(run.started_at),
        finished=format_time(run.finished_at), duration=format_duration(seconds),
        error=run.error, failed_step=run.failed_step, retries=run.retries,
        keep_database=bool(run.options.get("keep_database", False)), steps=steps, done=done,
        active=not run.finished, summary=_summary(run, steps, done))


@dataclass(frozen=True)
class RunLine:
    """A run as one row of a list: where it is and for how long."""

    id: str
    tenant: str
    kind_label: str
    status: str
    label: str
    where: str
    since: dt.datetime | None
    how_long: str
    created: str
    created_at: dt.datetime
    requested_by: str
    error: str | None
    active: bool


def _current(run: Run) -> Step | None:
    return next((s for s in run.steps if s.status not in ("succeeded", "pending")), None)


def run_line(run: Run, now: dt.datetime | None = None) -> RunLine:
    """Where ``run`` is (its current step and that step's state, or how it ended) and for
    how long (an active run: since its current step began in this execution; a finished
    one: its duration)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    step = _current(run)
    since: dt.datetime | None = None
    if run.status == "pending" and step is None:
        where, since = ("queued, waiting for a worker" if not run.retries
                        else "retried, waiting for a worker"), run.created_at
    elif not run.finished:
        if step is None:
            where, since = "between steps", run.started_at or run.created_at
        else:
            label = STATUS_LABELS.get(step.status, step.status).lower()
            where = f"{step.name}: {label}"
            if step.attempts > 1:
                where += f" (attempt {step.attempts})"
            current = [a for a in step.history if a.execution == run.retries]
            since = min((a.started_at for a in current), default=step.started_at)
    elif run.status == "failed":
        where = f"failed at {run.failed_step}" if run.failed_step else "failed"
    elif run.status == "cancelled":
        where = "cancelled"
    else:
        where = "done"
    if since is not None:
        how_long = format_duration(max(0.0, (now - since).total_seconds()))
    else:
        how_long = format_duration(run_seconds(run, now))
    return RunLine(
        id=run.id, tenant=run.tenant_slug, kind_label=KIND_LABELS.get(run.kind, run.kind),
        status=run.status, label=STATUS_LABELS.get(run.status, run.status), where=where,
        since=since, how_long=how_long, created=format_time(run.created_at),
        created_at=run.created_at, requested_by=run.requested_by,
        error=redact(run.error) if run.error else None, active=not run.finished)


_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace ID of a W3C ``traceparent`` (Trace Context, section 3.2), or None."""
    match = _TRACEPARENT.match(traceparent or "")
    if match is None or match.group(1) == "0" * 32:
        return None
    return match.group(1)
