"""Tenants: the configuration record of each tenant and the outputs of the resources made
for it (`TenantStore`). Runs change a tenant's status; see `tenantops.catalog.runs`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from sqlalchemy import Connection, Row, bindparam, func, select, update
from sqlalchemy.orm import Session

from tenantops.catalog._database import CatalogDatabase, now
from tenantops.catalog.models import RetiringDomainRow, TenantRow
from tenantops.catalog.search import has_fts, search_clause
from tenantops.errors import CatalogError, TenantNotFoundError

__all__ = ["TENANT_STATUSES", "Tenant", "TenantFields", "TenantStatus", "TenantStore"]

TenantStatus = Literal["provisioning", "active", "updating", "suspending", "suspended",
                       "resuming", "reconciling", "failed", "offboarding", "offboarded"]
TENANT_STATUSES: tuple[TenantStatus, ...] = (
    "provisioning", "active", "updating", "suspending", "suspended", "resuming", "reconciling",
    "failed", "offboarding", "offboarded")
"""Every status: ``provisioning`` → ``active``; ``active`` ⇄ ``updating``; ``active`` →
``suspending`` → ``suspended`` → ``resuming`` → ``active``; ``active`` or ``suspended`` →
``reconciling`` → the same; ``failed`` when a run failed or was cancelled; ``offboarding``
→ ``offboarded`` (the record stays as history)."""

# Tenant columns a step may set from its outputs; JSON dict columns merge (None deletes).
OUTPUT_COLUMNS = frozenset({
    "database_name", "database_login", "database_secret", "dns_records", "hostname",
    "certificate_thumbprint", "certificate_expires_at", "organization_id", "registered_at",
    "schema_revision",
})


class TenantFields(Protocol):
    """What the catalog needs from a tenant spec (`tenantops.provisioning.TenantSpec` fits)."""

    @property
    def slug(self) -> str: ...
    @property
    def display_name(self) -> str: ...
    @property
    def custom_domain(self) -> str: ...
    @property
    def plan(self) -> str: ...
    @property
    def admin_email(self) -> str: ...
    @property
    def tags(self) -> dict[str, str]: ...


@dataclass(frozen=True)
class Tenant:
    """A tenant as the catalog knows it, with the outputs of the resources made for it."""

    id: str
    slug: str
    display_name: str
    custom_domain: str
    plan: str
    admin_email: str
    tags: dict[str, str]
    status: TenantStatus
    created_at: dt.datetime
    updated_at: dt.datetime
    registered_at: dt.datetime | None
    database_name: str | None
    database_login: str | None
    database_secret: str | None
    dns_records: dict[str, str]
    hostname: str | None
    certificate_thumbprint: str | None
    certificate_expires_at: dt.datetime | None
    organization_id: str | None
    schema_revision: str | None = None
    """The revision of the SaaS's own schema in the tenant's database, as the last
    migration run left it (None: never migrated by tenantops)."""

    def spec_fields(self) -> dict[str, Any]:
        """The fields a `TenantSpec` is made of, as stored."""
        return {
            "slug": self.slug, "display_name": self.display_name,
            "custom_domain": self.custom_domain, "plan": self.plan,
            "admin_email": self.admin_email, "tags": dict(self.tags),
        }


def tenant_record(row: TenantRow | Row[Any]) -> Tenant:
    """The record of an ORM row or of a Core row of `TENANT_COLUMNS` (the read path)."""
    return Tenant(
        id=row.id, slug=row.slug, display_name=row.display_name,
        custom_domain=row.custom_domain, plan=row.plan, admin_email=row.admin_email,
        tags=dict(row.tags or {}), status=row.status,  # type: ignore[arg-type]
        created_at=row.created_at, updated_at=row.updated_at, registered_at=row.registered_at,
        database_name=row.database_name, database_login=row.database_login,
        database_secret=row.database_secret, dns_records=dict(row.dns_records or {}),
        hostname=row.hostname, certificate_thumbprint=row.certificate_thumbprint,
        certificate_expires_at=row.certificate_expires_at, organization_id=row.organization_id,
        schema_revision=row.schema_revision,
    )


def tenant_row(s: Session, slug: str) -> TenantRow:
    """The tenant's row, or `TenantNotFoundError`."""
    row = s.scalar(select(TenantRow).where(TenantRow.slug == slug))
    if row is None:
        raise TenantNotFoundError(slug)
    return row


def tenant_row_by_id(s: Session, tenant_id: str) -> TenantRow:
    """The row of a tenant a run refers to; its absence means the catalog is inconsistent."""
    row = s.get(TenantRow, tenant_id)
    if row is None:
        raise CatalogError(
            f"the catalog has a run of tenant id {tenant_id} but no such tenant; the database "
            "was changed by hand or is damaged"
        )
    return row


def output_values(
    dns_records: Mapping[str, str] | None, updates: Mapping[str, object]
) -> dict[str, Any]:
    """Tenant column values for ``updates``; ``dns_records`` merges (None deletes)."""
    values: dict[str, Any] = {}
    for column, value in updates.items():
        if column not in OUTPUT_COLUMNS:
            raise CatalogError(f"{column!r} is not a tenant output column")
        if column == "dns_records":
            if not isinstance(value, Mapping):
                raise CatalogError(
                    f"tenant output dns_records must be a mapping of record to value, not "
                    f"{type(value).__name__}"
                )
            merged = dict(dns_records or {})
            for key, item in value.items():
                if item is None:
                    merged.pop(str(key), None)
                else:
                    merged[str(key)] = str(item)
            values[column] = merged
        else:
            values[column] = value
    return values


# Built once: the step hot path only binds values.
TENANT_UPDATE = update(TenantRow).where(TenantRow.id == bindparam("p_tenant"))
# The read path selects table rows with Core: no ORM identity map or instance state.
TENANT_BY_SLUG = select(TenantRow.__table__).where(
    TenantRow.__table__.c.slug == bindparam("p_slug"))


class TenantStore:
    """Read tenants, and record what the catalog provider's steps and the runs' steps made."""

    def __init__(self, database: CatalogDatabase) -> None:
        self._db = database
        self._fts: bool | None = None

    def find(self, slug: str) -> Tenant | None:
        with self._db.read() as connection:
            row = connection.execute(TENANT_BY_SLUG, {"p_slug": slug}).first()
            return tenant_record(row) if row else None

    def get(self, slug: str) -> Tenant:
        tenant = self.find(slug)
        if tenant is None:
            raise TenantNotFoundError(slug)
        return tenant

    def for_hostname(self, hostname: str) -> Tenant | None:
        """The live tenant served at ``hostname``: its custom domain, or a domain it still
        serves after a domain change (what a web host serves)."""
        name = hostname.lower().rstrip(".")
        with self._db.session(write=False) as s:
            row = s.scalar(
                select(TenantRow).where(
                    TenantRow.custom_domain == name,
                    TenantRow.status != "offboarded",
                )
            )
            if row is None:
                row = s.scalar(
                    select(TenantRow)
                    .join(RetiringDomainRow, RetiringDomainRow.tenant_id == TenantRow.id)
                    .where(RetiringDomainRow.domain == name, TenantRow.status != "offboarded"))
            return tenant_record(row) if row else None

    def all(self, status: TenantStatus | None = None) -> list[Tenant]:
        with self._db.session(write=False) as s:
            query = select(TenantRow).order_by(TenantRow.slug)
            if status is not None:
                query = query.where(TenantRow.status == status)
            return [tenant_record(r) for r in s.scalars(query)]

    def page(
        self, *, status: TenantStatus | None = None, search: str | None = None,
        limit: int = 50, offset: int = 0,
    ) -> tuple[list[Tenant], int]:
        """One page of tenants, newest first, and how many match in all. ``search`` matches
        part of the slug, display name or custom domain, case-insensitively, through the
        search index where there is one (`tenantops.catalog.search`)."""
        table = TenantRow.__table__
        with self._db.read() as connection:
            where: list[Any] = []
            if status is not None:
                where.append(table.c.status == status)
            if search:
                where.append(search_clause(search, fts=self._has_fts(connection)))
            total = connection.execute(
                select(func.count()).select_from(table).where(*where)).scalar() or 0
            rows = connection.execute(
                select(table).where(*where)
                .order_by(table.c.created_at.desc(), table.c.id.desc())
                .limit(limit).offset(offset))
            return [tenant_record(r) for r in rows], int(total)

    def _has_fts(self, connection: Connection) -> bool:
        if self._fts is None:
            self._fts = has_fts(connection)
        return self._fts

    def count_by_status(self) -> dict[str, int]:
        """How many tenants are in each status (statuses with none are left out)."""
        table = TenantRow.__table__
        with self._db.read() as connection:
            return {str(status): int(count) for status, count in connection.execute(
                select(table.c.status, func.count()).group_by(table.c.status))}

    def certificates_expiring(self, before: dt.datetime, *, limit: int = 20
                              ) -> tuple[list[Tenant], int]:
        """Live tenants whose certificate expires before ``before``, soonest first (at most
        ``limit``), and how many there are in all."""
        table = TenantRow.__table__
        where = [table.c.certificate_expires_at.is_not(None),
                 table.c.certificate_expires_at < before, table.c.status != "offboarded"]
        with self._db.read() as connection:
            total = connection.execute(
                select(func.count()).select_from(table).where(*where)).scalar() or 0
            rows = connection.execute(select(table).where(*where).order_by(
                table.c.certificate_expires_at, table.c.slug).limit(limit))
            return [tenant_record(r) for r in rows], int(total)

    def register(self, slug: str) -> Tenant:
        """Mark the tenant's configuration record as registered (idempotent)."""
        with self._db.session(write=True) as s:
            row = tenant_row(s, slug)
            if row.registered_at is None:
                row.registered_at = row.updated_at = now()
            return tenant_record(row)

    def set_status(self, slug: str, status: TenantStatus) -> Tenant:
        with self._db.session(write=True) as s:
            row = tenant_row(s, slug)
            if row.status != status:
                row.status = status
                row.updated_at = now()
            return tenant_record(row)

    def update_outputs(self, slug: str, updates: Mapping[str, object]) -> Tenant:
        """Record resource outputs on the tenant (see `OUTPUT_COLUMNS`)."""
        with self._db.session(write=True) as s:
            row = tenant_row(s, slug)
            for column, value in output_values(row.dns_records, updates).items():
                setattr(row, column, value)
            if updates:
                row.updated_at = now()
            return tenant_record(row)
