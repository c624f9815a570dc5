"""Drift reports: the last drift check of each tenant (`DriftStore`).

A drift check (`tenantops.provisioning.drift`) observes every resource the catalog records
for a tenant and compares it with the recorded state; this store keeps the last report per
tenant, so the dashboard and ``GET /api/drift`` list drifted tenants without asking every
provider again. Scheduled checks claim one tenant at a time (`DriftStore.claim_due`): a
conditional write, so two workers never check the same tenant at once, and a claim left by a
worker that died expires.

Times are the database's (`database_now`), as for workers: due-ness is judged by one clock
whatever the workers' clocks say.

When a check finds a tenant drifted or missing where the previous report did not (or finds
other resources drifted), the change is an event, ``com.tenantops.drift.detected``, written
in the same transaction (docs/events.md); a report back in sync is
``com.tenantops.drift.resolved``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tenantops.catalog import events
from tenantops.catalog._database import CatalogDatabase, database_now
from tenantops.catalog.models import DriftReportRow, TenantRow
from tenantops.catalog.tenants import tenant_row
from tenantops.errors import CatalogError

__all__ = ["CHECKED_STATUSES", "DRIFT_STATES", "DriftRecord", "DriftState", "DriftStore"]

DriftState = Literal["in_sync", "drifted", "missing", "unknown"]
DRIFT_STATES: tuple[DriftState, ...] = ("in_sync", "drifted", "missing", "unknown")
"""``in_sync``: every resource is as recorded; ``drifted``: some exist but differ;
``missing``: some are gone (reported before ``drifted``); ``unknown``: some could not be
observed (a provider unreachable), the report says which."""

CHECKED_STATUSES = ("active", "suspended")
"""Tenants whose recorded state is settled: the ones drift checks look at. Any other status
means a run is changing the tenant, it failed (its run shows why), or it is gone."""

_OFF_TRACK = ("drifted", "missing")


@dataclass(frozen=True)
class DriftRecord:
    """The last drift check of tenant ``slug``: its ``state``, when and by whom it was
    checked, each resource's finding (``resources``: JSON objects, see
    `tenantops.provisioning.drift.ResourceDrift`), the reconcile run a check opened (when
    configured to), and ``error`` when the tenant could not be checked at all."""

    slug: str
    state: DriftState
    checked_at: dt.datetime
    checked_by: str
    resources: tuple[dict[str, Any], ...]
    error: str | None
    reconcile_run_id: str | None
    status: str = ""
    """The tenant's status when read."""

    @property
    def off_track(self) -> tuple[dict[str, Any], ...]:
        """The resources that are not in sync (nor left unchecked)."""
        return tuple(r for r in self.resources
                     if r.get("state") not in ("in_sync", "unchecked"))

    @property
    def summary(self) -> str:
        """``missing: organization:acme; drifted: database:tenant_acme``: what the
        dashboard's overview lists."""
        by_state: dict[str, list[str]] = {}
        for r in self.off_track:
            by_state.setdefault(str(r.get("state")), []).append(str(r.get("resource")))
        return "; ".join(f"{state}: {', '.join(names)}" for state, names in by_state.items())

    @property
    def detected_at(self) -> dt.datetime:
        """When the check that found it was made."""
        return self.checked_at


def _record(row: DriftReportRow | Any, slug: str, status: str = "") -> DriftRecord:
    state: DriftState = row.state if row.state in DRIFT_STATES else "unknown"
    return DriftRecord(
        slug=slug, state=state,
        checked_at=row.checked_at or dt.datetime.min.replace(tzinfo=dt.timezone.utc),
        checked_by=row.checked_by or "", resources=tuple(dict(r) for r in row.resources or []),
        error=row.error, reconcile_run_id=row.reconcile_run_id, status=status)


def _keys(resources: Sequence[Mapping[str, Any]]) -> list[str]:
    return sorted(f"{r.get('state')} {r.get('resource')}" for r in resources
                  if r.get("state") in _OFF_TRACK)


class DriftStore:
    """Record, read and schedule drift checks."""

    def __init__(self, database: CatalogDatabase) -> None:
        self._db = database

    def record(self, slug: str, *, state: DriftState, resources: Sequence[Mapping[str, Any]],
               checked_by: str, error: str | None = None,
               reconcile_run_id: str | None = None) -> DriftRecord:
        """Keep ``state`` and ``resources`` as tenant ``slug``'s last check (releasing any
        claim on it), and write ``com.tenantops.drift.detected`` or ``.resolved`` when the
        finding changed. `TenantNotFoundError` for an unknown slug."""
        if state not in DRIFT_STATES:
            raise CatalogError(f"drift state {state!r} is not one of {', '.join(DRIFT_STATES)}")
        with self._db.session(write=True) as s:
            tenant = tenant_row(s, slug)
            stamp = database_now(s.connection())
            row = s.get(DriftReportRow, tenant.id)
            before = (row.state, _keys(row.resources or [])) if row is not None else (None, [])
            if row is None:
                row = DriftReportRow(tenant_id=tenant.id, resources=[])
                s.add(row)
            row.state = state
            row.checked_at = stamp
            row.checked_by = checked_by
            row.resources = [dict(r) for r in resources]
            row.error = error
            row.claimed_by = None
            row.claimed_at = None
            if reconcile_run_id is not None:
                row.reconcile_run_id = reconcile_run_id
            s.flush()
            after = (state, _keys(row.resources))
            if state in _OFF_TRACK and after != before:
                _drift_event(s, tenant, "detected", row, checked_by)
            elif state == "in_sync" and before[0] in _OFF_TRACK:
                _drift_event(s, tenant, "resolved", row, checked_by)
            return _record(row, slug, tenant.status)

    def opened_reconcile(self, slug: str, run_id: str) -> None:
        """Note on the tenant's last report the reconcile run that check opened."""
        with self._db.session(write=True) as s:
            tenant = tenant_row(s, slug)
            s.execute(update(DriftReportRow).where(DriftReportRow.tenant_id == tenant.id)
                      .values(reconcile_run_id=run_id))

    def get(self, slug: str) -> DriftRecord | None:
        """Tenant ``slug``'s last check, or None when it was never checked.
        `TenantNotFoundError` for an unknown slug."""
        with self._db.session(write=False) as s:
            tenant = tenant_row(s, slug)
            row = s.get(DriftReportRow, tenant.id)
            if row is None or row.state is None:
                return None
            return _record(row, slug, tenant.status)

    def page(self, *, states: Sequence[DriftState] | None = None, limit: int = 50,
             offset: int = 0) -> tuple[list[DriftRecord], int]:
        """The last reports of live tenants, most recently checked first, and how many match
        in all; ``states`` keeps only those (``("drifted", "missing")``: what to look at)."""
        with self._db.session(write=False) as s:
            where = [DriftReportRow.state.is_not(None), TenantRow.status != "offboarded"]
            if states is not None:
                where.append(DriftReportRow.state.in_(list(states)))
            joined = select(DriftReportRow, TenantRow.slug, TenantRow.status).join(
                TenantRow, TenantRow.id == DriftReportRow.tenant_id).where(*where)
            total = s.scalar(select(func.count()).select_from(DriftReportRow).join(
                TenantRow, TenantRow.id == DriftReportRow.tenant_id).where(*where)) or 0
            rows = s.execute(joined.order_by(DriftReportRow.checked_at.desc(),
                                             TenantRow.slug).limit(limit).offset(offset)).all()
            return [_record(row, slug, status) for row, slug, status in rows], int(total)

    def settled_slugs(self) -> list[str]:
        """The slugs of the tenants drift checks look at (`CHECKED_STATUSES`), in order."""
        with self._db.session(write=False) as s:
            return list(s.scalars(select(TenantRow.slug).where(
                TenantRow.status.in_(CHECKED_STATUSES)).order_by(TenantRow.slug)))

    def drifted(self, *, limit: int = 50) -> list[DriftRecord]:
        """The live tenants whose last check found them drifted or missing, most recently
        checked first (the dashboard's overview)."""
        records, _ = self.page(states=["drifted", "missing"], limit=limit)
        return records

    def counts(self) -> dict[str, int]:
        """How many tenants whose state drift checks look at are in each drift state, and
        ``unchecked``: never checked."""
        with self._db.session(write=False) as s:
            found = dict(s.execute(
                select(DriftReportRow.state, func.count())
                .select_from(TenantRow)
                .outerjoin(DriftReportRow, DriftReportRow.tenant_id == TenantRow.id)
                .where(TenantRow.status.in_(CHECKED_STATUSES))
                .group_by(DriftReportRow.state)).all())
        counts: dict[str, int] = {state: int(found.get(state, 0)) for state in DRIFT_STATES}
        counts["unchecked"] = int(found.get(None, 0))
        return counts

    def claim_due(self, *, every: dt.timedelta, by: str, limit: int,
                  claim_for: dt.timedelta) -> list[str]:
        """Claim up to ``limit`` tenants whose state is settled (`CHECKED_STATUSES`) and
        whose last check is older than ``every`` (or who were never checked), the longest
        unchecked first; returns their slugs. A tenant another worker claimed less than
        ``claim_for`` ago is left to it; `record` releases the claim."""
        with self._db.session(write=True) as s:
            stamp = database_now(s.connection())
            due_before = stamp - every
            claim_expired = stamp - claim_for
            candidates = s.execute(
                select(TenantRow.id, TenantRow.slug)
                .outerjoin(DriftReportRow, DriftReportRow.tenant_id == TenantRow.id)
                .where(TenantRow.status.in_(CHECKED_STATUSES),
                       or_(DriftReportRow.checked_at.is_(None),
                           DriftReportRow.checked_at < due_before),
                       or_(DriftReportRow.claimed_at.is_(None),
                           DriftReportRow.claimed_at < claim_expired))
                .order_by(DriftReportRow.checked_at.is_not(None), DriftReportRow.checked_at,
                          TenantRow.slug)
                .limit(limit)).all()
        claimed: list[str] = []
        for tenant_id, slug in candidates:
            if self._claim(tenant_id, by=by, due_before=due_before, claim_expired=claim_expired,
                           stamp=stamp):
                claimed.append(slug)
        return claimed

    def _claim(self, tenant_id: str, *, by: str, due_before: dt.datetime,
               claim_expired: dt.datetime, stamp: dt.datetime) -> bool:
        """One conditional write: the first worker to make it holds the tenant."""
        try:
            with self._db.session(write=True) as s:
                if s.get(DriftReportRow, tenant_id) is None:
                    s.add(DriftReportRow(tenant_id=tenant_id, resources=[], claimed_by=by,
                                         claimed_at=stamp))
                    s.flush()
                    return True
                result = s.execute(
                    update(DriftReportRow)
                    .where(DriftReportRow.tenant_id == tenant_id,
                           or_(DriftReportRow.checked_at.is_(None),
                               DriftReportRow.checked_at < due_before),
                           or_(DriftReportRow.claimed_at.is_(None),
                               and_(DriftReportRow.claimed_at < claim_expired)))
                    .values(claimed_by=by, claimed_at=stamp))
                return bool(getattr(result, "rowcount", 0))
        except IntegrityError:  # another worker inserted the tenant's row first
            return False


def _drift_event(s: Session, tenant: TenantRow, what: Literal["detected", "resolved"],
                 row: DriftReportRow, checked_by: str) -> None:
    off_track = [{"resource": r.get("resource"), "state": r.get("state"),
                  "differences": [d.get("field") for d in r.get("differences") or []]}
                 for r in row.resources or [] if r.get("state") in _OFF_TRACK]
    s.flush()
    s.execute(select(TenantRow.id).where(TenantRow.id == tenant.id).with_for_update())
    events.record(
        s, type=f"{events.EVENT_PREFIX}drift.{what}", subject=events.tenant_subject(tenant.slug),
        data={"tenant": events.tenant_fields(tenant),
              "drift": {"state": row.state, "resources": off_track}},
        tenant_slug=tenant.slug, actor=checked_by, stamp=row.checked_at)
