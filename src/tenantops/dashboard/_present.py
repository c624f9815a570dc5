"""Catalog records as people read them: labels, durations, times, a run's one-line summary.

Pure functions over `tenantops.catalog` records; the templates only lay these out.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tenantops.catalog import Attempt, Run, Step, Tenant, attempt_seconds, run_seconds, step_seconds
from tenantops.errors import ProvisioningError
from tenantops.log import redact, redact_values
from tenantops.provisioning.domains import pending_domain
from tenantops.provisioning.plan import plan_for

__all__ = [
    "STATUS_LABELS",
    "AttemptView",
    "DnsRecordView",
    "PendingDomainView",
    "RunView",
    "StepView",
    "format_duration",
    "format_time",
    "pending_domain_view",
    "relative_days",
    "run_view",
    "split_dns_records",
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
    "suspended": "Suspended", "resuming": "Resuming",
}
_KIND_LABELS = {"onboard": "Onboarding", "offboard": "Offboarding", "update": "Update",
                "suspend": "Suspension", "resume": "Resumption"}


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


def _step_view(number: int, step: Step, summary: str, now: dt.datetime) -> StepView:
    seconds = step_seconds(step, now)
    return StepView(
        number=number, name=step.name, summary=summary, values=_pairs(step.resolved),
        outputs=_pairs(step.outputs),
        history=tuple(_attempt_view(a, now) for a in step.history), provider=step.provider,
        action=step.action, status=step.status, label=STATUS_LABELS.get(step.status, step.status),
        attempts=step.attempts, started=format_time(step.started_at),
        finished=format_time(step.finished_at),
        started_iso=step.started_at.isoformat() if step.started_at else "",
        duration=format_duration(seconds), error=step.error, message=step.message)


def _summary(run: Run, steps: tuple[StepView, ...], done: int) -> str:
    what = f"{_KIND_LABELS.get(run.kind, run.kind)} {run.tenant_slug}"
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
    steps = tuple(_step_view(i, s, summaries.get(s.name, ""), now)
                  for i, s in enumerate(run.steps, start=1))
    done = sum(1 for s in steps if s.status == "succeeded")
    seconds = run_seconds(run, now)
    return RunView(
        id=run.id, tenant=run.tenant_slug, kind=run.kind,
        kind_label=_KIND_LABELS.get(run.kind, run.kind), status=run.status,
        label=STATUS_LABELS.get(run.status, run.status), requested_by=run.requested_by,
        created=format_time(run.created_at), started=format_time(run.started_at),
        finished=format_time(run.finished_at), duration=format_duration(seconds),
        error=run.error, failed_step=run.failed_step, retries=run.retries,
        keep_database=bool(run.options.get("keep_database", False)), steps=steps, done=done,
        active=not run.finished, summary=_summary(run, steps, done))
