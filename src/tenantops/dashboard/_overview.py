"""The overview, the landing page: what needs someone now (failed runs, runs waiting and on
what, since when), what is in progress, the fleet by status, certificates about to expire,
drifted tenants once drift is recorded, the rate budgets' queues when budgets are configured;
then the trends (runs per day, failure rate by step,
p50/p95 duration by step and provider), computed off the request (`TrendCache`).
"""

from __future__ import annotations

import datetime as dt
import math
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tenantops.catalog import ActiveRun, BudgetState, Catalog, Run, Tenant
from tenantops.config import BudgetSettings
from tenantops.dashboard._live import ChangeWatcher
from tenantops.dashboard._present import (
    KIND_LABELS,
    STATUS_LABELS,
    format_duration,
)
from tenantops.provisioning.domains import WAIT_STEP

__all__ = [
    "TREND_DAYS",
    "WAITING_ON",
    "ActiveRow",
    "BudgetRow",
    "DayBar",
    "DriftedTenant",
    "StepDuration",
    "StepFailure",
    "TrendCache",
    "Trends",
    "active_rows",
    "budget_rows",
    "compute_trends",
    "day_label",
    "describe_trends",
    "drifted_tenants",
    "expiring",
    "failed_recently",
    "percentile",
    "waiting_on",
]

TREND_DAYS = 30
CERTIFICATE_DAYS = 30
FAILED_HOURS = 24
SHOWN = 15

WAITING_ON = {
    "customer-dns": "the customer's DNS records",
    "certificate": "a certificate",
    "retry": "a retry after a transient fault (Retry-After or backoff)",
    "budget": "a rate budget's next free slot",
    "provider": "a provider's operation",
}


BUDGET_WAIT = " for rate budget "
"""What the engine's message says of a step waiting for its budget (`Engine._show_budget_wait`)."""


def waiting_on(run: ActiveRun) -> str | None:
    """What an active run waits for (a key of `WAITING_ON`), or None when it is not
    waiting (running a step, or not started)."""
    step = run.step
    if step is None:
        return None
    if step.status == "retrying":
        return "retry"
    if step.status != "waiting":
        return None
    if step.name == WAIT_STEP:
        return "customer-dns"
    if step.message and BUDGET_WAIT in step.message:
        return "budget"
    if "certificate" in step.name:
        return "certificate"
    return "provider"


@dataclass(frozen=True)
class BudgetRow:
    """A rate budget as the overview shows it: its limit and its queue now."""

    name: str
    limit: str
    queued: int
    backlog_seconds: float


def budget_rows(budgets: Sequence[tuple[str, BudgetSettings, BudgetState]]) -> list[BudgetRow]:
    """The configured budgets (`Engine.budgets`), with the calls queued behind each: the
    schedule's lead over the database's clock divided by the budget's interval."""
    return [BudgetRow(
        name=name,
        limit=f"{config.calls} calls per {config.per_seconds:g} s",
        queued=int(state.backlog_seconds * config.calls / config.per_seconds),
        backlog_seconds=state.backlog_seconds,
    ) for name, config, state in budgets]


@dataclass(frozen=True)
class ActiveRow:
    """An active run as the overview and the runs page show it: where it is, since when."""

    id: str
    tenant: str
    kind_label: str
    status: str
    label: str
    step: str | None
    step_status: str | None
    step_label: str | None
    attempts: int
    message: str | None
    since: dt.datetime | None
    since_text: str
    waiting_on: str | None


def active_rows(runs: Sequence[ActiveRun], now: dt.datetime) -> list[ActiveRow]:
    rows = []
    for run in runs:
        step = run.step
        since = step.since if step is not None and step.since else (run.started_at
                                                                     or run.created_at)
        rows.append(ActiveRow(
            id=run.id, tenant=run.tenant_slug, kind_label=KIND_LABELS.get(run.kind, run.kind),
            status=run.status, label=STATUS_LABELS.get(run.status, run.status),
            step=step.name if step else None, step_status=step.status if step else None,
            step_label=STATUS_LABELS.get(step.status, step.status) if step else None,
            attempts=step.attempts if step else 0,
            message=(step.message or step.error) if step else None, since=since,
            since_text=format_duration((now - since).total_seconds()) if since else "",
            waiting_on=waiting_on(run)))
    return rows


@dataclass(frozen=True)
class DayBar:
    day: dt.date
    onboarded: int
    offboarded: int
    failed: int


@dataclass(frozen=True)
class StepFailure:
    step: str
    ended: int
    failed: int
    transient: int

    @property
    def rate(self) -> float:
        return self.failed / self.ended if self.ended else 0.0


@dataclass(frozen=True)
class StepDuration:
    step: str
    provider: str
    count: int
    p50: float
    p95: float


@dataclass(frozen=True)
class Trends:
    computed_at: dt.datetime
    days: tuple[DayBar, ...]
    failures: tuple[StepFailure, ...]
    durations: tuple[StepDuration, ...]
    compute_seconds: float

    @property
    def peak(self) -> int:
        return max([1] + [max(d.onboarded, d.offboarded) for d in self.days])


@dataclass(frozen=True)
class DriftedTenant:
    """A tenant whose resources differ from what its runs made (the drift workstream's
    store provides these; the overview shows the section once it exists)."""

    slug: str
    summary: str
    detected_at: dt.datetime | None


def percentile(ordered: Sequence[float], share: float) -> float:
    """The nearest-rank percentile of ``ordered`` (sorted ascending, not empty)."""
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


def compute_trends(catalog: Catalog, now: dt.datetime) -> Trends:
    """The trends over the last `TREND_DAYS` days (a few queries over the runs requested
    since then, answered by ``ix_runs_created``)."""
    started = dt.datetime.now(dt.timezone.utc)
    first_day = (now - dt.timedelta(days=TREND_DAYS - 1)).date()
    since = dt.datetime.combine(first_day, dt.time(), tzinfo=dt.timezone.utc)
    reports = catalog.run_reports
    per_day: dict[dt.date, list[int]] = {first_day + dt.timedelta(days=i): [0, 0, 0]
                                         for i in range(TREND_DAYS)}
    for created, kind, status in reports.requested_since(since):
        counts = per_day.get(created.astimezone(dt.timezone.utc).date())
        if counts is None:
            continue
        if kind == "onboard":
            counts[0] += 1
        elif kind == "offboard":
            counts[1] += 1
        if status == "failed":
            counts[2] += 1
    outcomes: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for item in reports.step_outcomes(since):
        outcomes[item.step][item.outcome] += item.count
    failures = sorted(
        (StepFailure(step, by["succeeded"] + by["failed"], by["failed"], by["retrying"])
         for step, by in outcomes.items() if by["succeeded"] + by["failed"]),
        key=lambda f: (-f.rate, -f.transient, f.step))
    spans: dict[tuple[str, str], list[float]] = defaultdict(list)
    for span in reports.step_spans(since):
        spans[(span.step, span.provider)].append(span.seconds)
    durations = []
    for (step, provider), values in spans.items():
        values.sort()
        durations.append(StepDuration(step, provider, len(values), percentile(values, 0.5),
                                      percentile(values, 0.95)))
    durations.sort(key=lambda d: (-d.p95, d.step, d.provider))
    return Trends(
        computed_at=now,
        days=tuple(DayBar(day, *counts) for day, counts in sorted(per_day.items())),
        failures=tuple(failures), durations=tuple(durations),
        compute_seconds=(dt.datetime.now(dt.timezone.utc) - started).total_seconds())


class TrendCache:
    """The latest `Trends`, computed on a thread of the change watcher's when older than
    ``max_age`` seconds (a page never waits for them: it shows what there is, and the
    overview's stream sends the new ones). ``clock`` is injectable for tests."""

    def __init__(self, catalog: Catalog, watcher: ChangeWatcher, *, max_age: float,
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        self._catalog = catalog
        self._watcher = watcher
        self._max_age = max_age
        self._clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))
        self._lock = threading.Lock()
        self._trends: Trends | None = None

    def get(self) -> Trends | None:
        """The trends there are (None before the first computation), asking for new ones
        when they are old."""
        with self._lock:
            trends = self._trends
        if trends is None or (self._clock() - trends.computed_at).total_seconds() > self._max_age:
            self._watcher.submit("trends", self._refresh)
        return trends

    def refresh(self) -> Trends:
        """Compute them now, in this thread (tests, and the watcher's job)."""
        trends = compute_trends(self._catalog, self._clock())
        with self._lock:
            self._trends = trends
        return trends

    def _refresh(self) -> frozenset[str]:
        self.refresh()
        return frozenset({"stats"})


def drifted_tenants(catalog: Catalog, limit: int = SHOWN) -> list[DriftedTenant] | None:
    """Drifted tenants, or None while the catalog records no drift (the section is then
    left out). The drift store (``catalog.drift``) is expected to offer
    ``drifted(limit=...)`` returning records with ``slug``, ``summary`` and
    ``detected_at``."""
    store = getattr(catalog, "drift", None)
    reader = getattr(store, "drifted", None)
    if reader is None:
        return None
    found: Any = reader(limit=limit)
    return [DriftedTenant(str(r.slug), str(getattr(r, "summary", "") or ""),
                          getattr(r, "detected_at", None)) for r in found]


def expiring(catalog: Catalog, now: dt.datetime) -> tuple[list[Tenant], int]:
    return catalog.tenants.certificates_expiring(now + dt.timedelta(days=CERTIFICATE_DAYS),
                                                 limit=SHOWN)


def failed_recently(catalog: Catalog, now: dt.datetime) -> tuple[list[Run], int]:
    return catalog.run_reports.failed_since(now - dt.timedelta(hours=FAILED_HOURS),
                                            limit=SHOWN)


def day_label(day: dt.date) -> str:
    return day.strftime("%d %b")


def describe_trends(trends: Trends) -> str:
    """One sentence for screen readers that sums up the chart."""
    onboarded = sum(d.onboarded for d in trends.days)
    offboarded = sum(d.offboarded for d in trends.days)
    busiest = max(trends.days, key=lambda d: d.onboarded + d.offboarded, default=None)
    text = (f"{onboarded} onboardings and {offboarded} offboardings requested in the last "
            f"{len(trends.days)} days")
    if busiest is not None and busiest.onboarded + busiest.offboarded:
        text += (f"; the busiest day was {day_label(busiest.day)} with {busiest.onboarded} "
                 f"onboardings and {busiest.offboarded} offboardings")
    return text + "."

