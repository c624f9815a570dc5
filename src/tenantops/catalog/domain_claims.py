"""Custom domain claims: the names a live tenant holds, and the check that keeps them apart.

A live tenant holds its custom domain and, after a domain change, each name it is retiring:
the old hostname keeps serving until its grace period ends and the update run removes it
(`RetiringDomainStore`). A name equal to, above or below any name another live tenant holds
is refused (`check_domain_free`, `DomainConflictError`): the other tenant's records would be
shadowed or taken over (its ``asuid.`` and ``_tenantops-challenge.`` names are below its
domain).

The check runs in the transaction that opens an onboarding or an update. A unique index can
only refuse equal values, so on PostgreSQL that transaction first takes an advisory lock that
serialises claims (`DOMAIN_CLAIMS_LOCK`, released at commit); on SQLite every write
transaction is already serialised (``BEGIN IMMEDIATE``). The check then reads only committed
claims, by index whatever the number of tenants: equal or above by the live custom domains,
below by the parent domains each tenant's custom domain has (``domain_ancestors``, kept by
`record_ancestors`); the retiring names, a handful at a time, by their own table.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, insert, or_, select, text, update
from sqlalchemy.orm import Session

from tenantops.catalog._database import CatalogDatabase, now
from tenantops.catalog.models import DomainAncestorRow, RetiringDomainRow, TenantRow
from tenantops.catalog.tenants import tenant_row
from tenantops.errors import DomainConflictError

__all__ = [
    "DOMAIN_CLAIMS_LOCK",
    "RetiringDomain",
    "RetiringDomainStore",
    "check_domain_free",
    "domain_ancestors",
    "lock_domain_claims",
    "record_ancestors",
    "retiring_rows",
]

# pg_advisory_xact_lock key serialising domain claims (74120004 serialises migrations).
DOMAIN_CLAIMS_LOCK = 74120012


@dataclass(frozen=True)
class RetiringDomain:
    """A name a tenant still serves after a domain change: made by ``run_id``, removed once
    ``retire_at`` has passed (None: the grace period has not started yet)."""

    domain: str
    run_id: str
    created_at: dt.datetime
    retire_at: dt.datetime | None


def lock_domain_claims(s: Session) -> None:
    """Serialise domain claims until the transaction ends (PostgreSQL; SQLite's write
    transactions are serialised already)."""
    bind = s.get_bind()
    if bind.dialect.name == "postgresql":
        s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": DOMAIN_CLAIMS_LOCK})


def domain_ancestors(domain: str) -> list[str]:
    """The parent domains of ``domain``, nearest first: ``contoso.com``, ``com``."""
    domain = domain.lower().rstrip(".")
    return [domain.split(".", i)[-1] for i in range(1, domain.count(".") + 1)]


def record_ancestors(s: Session, tenant_id: str, domain: str) -> None:
    """The parent domains of the tenant's custom domain ``domain``, replacing those of the
    one it had."""
    s.execute(delete(DomainAncestorRow).where(DomainAncestorRow.tenant_id == tenant_id))
    s.execute(insert(DomainAncestorRow), [{"tenant_id": tenant_id, "ancestor": ancestor}
                                          for ancestor in domain_ancestors(domain)])


# Written out, not bound: the planner then uses the partial index on live custom domains.
_LIVE = text("tenants.status <> 'offboarded'")


def check_domain_free(s: Session, domain: str, slug: str) -> None:
    """Refuse ``domain`` when it is equal to, above or below a name another live tenant
    holds: its custom domain or a domain it is retiring."""
    domain = domain.lower().rstrip(".")
    ancestors = domain_ancestors(domain)
    others = select(TenantRow.slug, TenantRow.custom_domain).where(TenantRow.slug != slug, _LIVE)
    held = [*s.execute(others.where(TenantRow.custom_domain.in_([domain, *ancestors]))),
            *s.execute(others.join(DomainAncestorRow,
                                   DomainAncestorRow.tenant_id == TenantRow.id)
                       .where(DomainAncestorRow.ancestor == domain))]
    # Custom domains are LDH hostnames: no LIKE wildcard can occur in them.
    below = f"%.{domain}"
    retiring = s.execute(
        select(TenantRow.slug, RetiringDomainRow.domain)
        .join(TenantRow, TenantRow.id == RetiringDomainRow.tenant_id)
        .where(
            TenantRow.slug != slug,
            TenantRow.status != "offboarded",
            or_(RetiringDomainRow.domain == domain,
                RetiringDomainRow.domain.in_(ancestors),
                RetiringDomainRow.domain.like(below)),
        )
    ).all()
    order = {"equal": 0, "below": 1, "above": 2}
    found = sorted(((_relation(domain, name), holder, name) for holder, name in
                    [*held, *retiring]), key=lambda item: (order[item[0]], item[1], item[2]))
    if found:
        how, holder, name = found[0]
        raise DomainConflictError(domain, how, holder=holder, holder_domain=name)


def _relation(domain: str, other: str) -> str:
    if domain == other:
        return "equal"
    return "below" if domain.endswith(f".{other}") else "above"


def retiring_rows(s: Session, tenant_id: str) -> list[RetiringDomainRow]:
    return list(s.scalars(select(RetiringDomainRow)
                          .where(RetiringDomainRow.tenant_id == tenant_id)
                          .order_by(RetiringDomainRow.domain)))


def _record(row: RetiringDomainRow) -> RetiringDomain:
    return RetiringDomain(row.domain, row.run_id, row.created_at, row.retire_at)


class RetiringDomainStore:
    """The names tenants retire after a domain change: read them, start their grace
    period, release them."""

    def __init__(self, database: CatalogDatabase) -> None:
        self._db = database

    def of(self, slug: str) -> list[RetiringDomain]:
        """The names ``slug`` still serves besides its custom domain, by name."""
        with self._db.session(write=False) as s:
            return [_record(r) for r in retiring_rows(s, tenant_row(s, slug).id)]

    def start_grace(self, slug: str, domains: Sequence[str], seconds: float) -> dt.datetime:
        """Start the grace period of ``domains`` (those not started already: idempotent)
        and return when the last of them may be removed. Names ``slug`` no longer retires
        are ignored."""
        with self._db.session(write=True) as s:
            tenant = tenant_row(s, slug)
            stamp = now()
            s.execute(
                update(RetiringDomainRow)
                .where(RetiringDomainRow.tenant_id == tenant.id,
                       RetiringDomainRow.domain.in_(list(domains)),
                       RetiringDomainRow.retire_at.is_(None))
                .values(retire_at=stamp + dt.timedelta(seconds=seconds))
            )
            ends = [r.retire_at for r in retiring_rows(s, tenant.id)
                    if r.domain in domains and r.retire_at is not None]
            return max(ends, default=stamp)

    def release(self, slug: str, domains: Sequence[str]) -> bool:
        """``slug`` no longer holds ``domains`` (idempotent); True if any was held."""
        with self._db.session(write=True) as s:
            tenant = tenant_row(s, slug)
            result = s.execute(
                delete(RetiringDomainRow).where(
                    RetiringDomainRow.tenant_id == tenant.id,
                    RetiringDomainRow.domain.in_(list(domains))))
            return bool(getattr(result, "rowcount", 0))


def retire(s: Session, tenant_id: str, domains: Sequence[str], run_id: str) -> None:
    """Record that the tenant retires ``domains`` (those it does not retire already)."""
    held = {r.domain for r in retiring_rows(s, tenant_id)}
    for domain in domains:
        if domain not in held:
            s.add(RetiringDomainRow(domain=domain, tenant_id=tenant_id, run_id=run_id,
                                    created_at=now(), retire_at=None))
    s.flush()


def keep(s: Session, tenant_id: str, domain: str) -> None:
    """``domain`` is the tenant's custom domain again: it no longer retires it."""
    s.execute(delete(RetiringDomainRow).where(RetiringDomainRow.tenant_id == tenant_id,
                                              RetiringDomainRow.domain == domain))
