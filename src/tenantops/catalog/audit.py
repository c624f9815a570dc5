"""The audit trail: every state-changing API call and dashboard action, refusals included
(`AuditStore`).

Append-only, three times over: the store has no method that changes or removes a record;
the ORM refuses to flush a change to one (`CatalogError`); and the database refuses
``UPDATE`` and ``DELETE`` on the table by trigger (``TRUNCATE`` too, on PostgreSQL), so
neither a bug nor a stray SQL statement of the application rewrites history. Someone who owns
the database can still drop the trigger; for evidence that survives that, export the trail
(``GET /api/audit``) to storage with a retention lock.

Records hold who (principal name, object ID, application ID), what (the action and its
route), on which tenant or run, from where (the peer address and ``X-Forwarded-For``), the
request and trace IDs, and the outcome (status code and error code). Never a request body,
query string, header value or token: `tenantops.api.middleware` extracts only those fields.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any, Literal

from sqlalchemy import event, func, or_, select
from sqlalchemy.orm import Mapper

from tenantops.catalog._database import CatalogDatabase, now
from tenantops.catalog.models import AuditRow
from tenantops.errors import CatalogError

__all__ = ["AuditEntry", "AuditOutcome", "AuditRecord", "AuditStore", "Channel"]

Channel = Literal["api", "dashboard"]
AuditOutcome = Literal["succeeded", "refused", "failed"]

_LIMITS: dict[str, int] = {c.name: int(getattr(c.type, "length", 0) or 0)
                           for c in AuditRow.__table__.columns}


@dataclass(frozen=True, kw_only=True)
class AuditEntry:
    """What one request did, as the caller appends it."""

    request_id: str
    channel: Channel
    action: str
    method: str
    route: str
    outcome: AuditOutcome
    status_code: int
    trace_id: str | None = None
    tenant: str | None = None
    run_id: str | None = None
    principal_name: str | None = None
    principal_oid: str | None = None
    principal_appid: str | None = None
    client_ip: str | None = None
    forwarded_for: str | None = None
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class AuditRecord(AuditEntry):
    """An audit entry as stored: its sequence number and when it was recorded."""

    id: int
    recorded_at: dt.datetime


def _record(row: AuditRow) -> AuditRecord:
    return AuditRecord(
        id=row.id, recorded_at=row.recorded_at, request_id=row.request_id,
        channel=row.channel, action=row.action, method=row.method,  # type: ignore[arg-type]
        route=row.route, outcome=row.outcome, status_code=row.status_code,  # type: ignore[arg-type]
        trace_id=row.trace_id, tenant=row.tenant, run_id=row.run_id,
        principal_name=row.principal_name, principal_oid=row.principal_oid,
        principal_appid=row.principal_appid, client_ip=row.client_ip,
        forwarded_for=row.forwarded_for, reason=row.reason)


def _fitted(entry: AuditEntry) -> dict[str, Any]:
    """The entry's fields, each cut to its column's length (an over-long value is kept,
    shortened, rather than losing the record)."""
    values = asdict(entry)
    for name, limit in _LIMITS.items():
        value = values.get(name)
        if isinstance(value, str) and limit and len(value) > limit:
            values[name] = value[: limit - 1] + "…"
    return values


class AuditStore:
    """Append audit entries and read them back, newest first. Nothing else: no update, no
    delete (module docstring)."""

    def __init__(self, database: CatalogDatabase) -> None:
        self._db = database

    def append(self, entry: AuditEntry) -> AuditRecord:
        """Record ``entry`` now; returns it with its sequence number."""
        with self._db.session(write=True) as s:
            row = AuditRow(recorded_at=now(), **_fitted(entry))
            s.add(row)
            s.flush()
            return _record(row)

    def last_id(self) -> int:
        """The newest record's sequence number (0 when there is none)."""
        with self._db.read() as connection:
            return int(connection.execute(select(func.max(AuditRow.id))).scalar() or 0)

    def page(
        self, *, tenant: str | None = None, principal: str | None = None,
        action: str | None = None, outcome: AuditOutcome | None = None,
        since: dt.datetime | None = None, until: dt.datetime | None = None,
        limit: int = 50, offset: int = 0,
    ) -> tuple[list[AuditRecord], int]:
        """Records matching every filter given, newest first, and how many match in all.
        ``principal`` matches a name, an object ID or an application ID exactly; ``since``
        is inclusive, ``until`` exclusive."""
        conditions: list[Any] = []
        if tenant:
            conditions.append(AuditRow.tenant == tenant)
        if principal:
            conditions.append(or_(AuditRow.principal_name == principal,
                                  AuditRow.principal_oid == principal,
                                  AuditRow.principal_appid == principal))
        if action:
            conditions.append(AuditRow.action == action)
        if outcome:
            conditions.append(AuditRow.outcome == outcome)
        if since is not None:
            conditions.append(AuditRow.recorded_at >= since)
        if until is not None:
            conditions.append(AuditRow.recorded_at < until)
        with self._db.session(write=False) as s:
            total = s.scalar(select(func.count()).select_from(AuditRow).where(*conditions))
            rows = s.scalars(select(AuditRow).where(*conditions).order_by(AuditRow.id.desc())
                             .limit(limit).offset(offset))
            return [_record(r) for r in rows], int(total or 0)


def _refuse_change(mapper: Mapper[AuditRow], connection: Any, target: AuditRow) -> None:
    raise CatalogError(
        f"audit record {target.id} cannot be changed or deleted: the audit trail is "
        "append-only; record a new entry instead")


event.listen(AuditRow, "before_update", _refuse_change)
event.listen(AuditRow, "before_delete", _refuse_change)
