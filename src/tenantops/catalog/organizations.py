"""Organizations kept in the catalog, for the ``local`` organization provider.

An organization mirrors what Keycloak 26 calls one: a name, an alias, the domains its
members' addresses belong to, a redirect URL, members and invitations, and whether it is
enabled (a suspended tenant's is not).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tenantops.catalog.models import (
    OrganizationDomainRow,
    OrganizationInvitationRow,
    OrganizationMemberRow,
    OrganizationRow,
)
from tenantops.errors import CatalogError

if TYPE_CHECKING:
    from tenantops.catalog._database import CatalogDatabase

__all__ = ["DomainTakenError", "Invitation", "Member", "Organization", "OrganizationStore"]


class DomainTakenError(CatalogError):
    """A domain already belongs to another organization; ``owner`` is that one's alias."""

    def __init__(self, domain: str, owner: str) -> None:
        super().__init__(
            f"domain {domain!r} already belongs to organization {owner!r}; remove it there "
            "first or use another domain"
        )
        self.domain = domain
        self.owner = owner


@dataclass(frozen=True)
class Member:
    email: str
    role: str


@dataclass(frozen=True)
class Invitation:
    id: str
    email: str
    role: str
    status: str
    created_at: dt.datetime


@dataclass(frozen=True)
class Organization:
    id: str
    alias: str
    name: str
    redirect_url: str
    domains: tuple[str, ...]
    members: tuple[Member, ...]
    invitations: tuple[Invitation, ...]
    created_at: dt.datetime
    enabled: bool = True
    attributes: Mapping[str, str] = field(default_factory=dict)


class OrganizationStore:
    """Create, read and delete organizations; every write is idempotent."""

    def __init__(self, database: CatalogDatabase) -> None:
        self._db = database

    def get(self, alias: str) -> Organization | None:
        with self._db.session(write=False) as s:
            row = s.scalar(select(OrganizationRow).where(OrganizationRow.alias == alias))
            return self._load(s, row) if row else None

    def list(self) -> list[Organization]:
        with self._db.session(write=False) as s:
            rows = s.scalars(select(OrganizationRow).order_by(OrganizationRow.alias)).all()
            return [self._load(s, row) for row in rows]

    def ensure(
        self, *, alias: str, name: str, redirect_url: str, domains: Sequence[str],
        enabled: bool = True, attributes: Mapping[str, str] | None = None,
    ) -> tuple[Organization, bool]:
        """Create or converge the organization; return it and whether anything changed."""
        try:
            with self._db.session(write=True) as s:
                changed = False
                row = s.scalar(select(OrganizationRow).where(OrganizationRow.alias == alias))
                if row is None:
                    row = OrganizationRow(
                        id=uuid.uuid4().hex, alias=alias, name=name, redirect_url=redirect_url,
                        created_at=dt.datetime.now(dt.timezone.utc), enabled=enabled,
                        attributes=dict(attributes or {}),
                    )
                    s.add(row)
                    s.flush()
                    changed = True
                elif (row.name, row.redirect_url, row.enabled, dict(row.attributes or {})) != (
                        name, redirect_url, enabled, dict(attributes or {})):
                    row.name, row.redirect_url, row.enabled = name, redirect_url, enabled
                    row.attributes = dict(attributes or {})
                    changed = True
                current = {
                    d.domain: d for d in s.scalars(
                        select(OrganizationDomainRow)
                        .where(OrganizationDomainRow.organization_id == row.id)
                    )
                }
                for domain in set(current) - set(domains):
                    s.delete(current[domain])
                    changed = True
                for domain in sorted(set(domains) - set(current)):
                    owner = s.scalar(
                        select(OrganizationRow.alias)
                        .join(OrganizationDomainRow,
                              OrganizationDomainRow.organization_id == OrganizationRow.id)
                        .where(OrganizationDomainRow.domain == domain)
                    )
                    if owner is not None:
                        raise DomainTakenError(domain, owner)
                    s.add(OrganizationDomainRow(domain=domain, organization_id=row.id))
                    changed = True
                s.flush()
                return self._load(s, row), changed
        except IntegrityError as exc:
            raise CatalogError(
                f"organization {alias!r} could not be written: a concurrent change conflicted "
                f"({exc.orig}); try again"
            ) from exc

    def delete(self, alias: str) -> bool:
        """Delete the organization with its domains, members and invitations."""
        with self._db.session(write=True) as s:
            row = s.scalar(select(OrganizationRow).where(OrganizationRow.alias == alias))
            if row is None:
                return False
            for table in (OrganizationDomainRow, OrganizationMemberRow, OrganizationInvitationRow):
                s.execute(delete(table).where(table.organization_id == row.id))
            s.delete(row)
            return True

    def invite(self, alias: str, email: str, role: str) -> tuple[Invitation, bool]:
        """Invite ``email`` (idempotent: an existing invitation is returned as it is)."""
        with self._db.session(write=True) as s:
            org = s.scalar(select(OrganizationRow).where(OrganizationRow.alias == alias))
            if org is None:
                raise CatalogError(
                    f"organization {alias!r} does not exist; create it before inviting members"
                )
            row = s.scalar(select(OrganizationInvitationRow).where(
                OrganizationInvitationRow.organization_id == org.id,
                OrganizationInvitationRow.email == email,
            ))
            created = row is None
            if row is None:
                row = OrganizationInvitationRow(
                    id=uuid.uuid4().hex, organization_id=org.id, email=email, role=role,
                    status="pending", created_at=dt.datetime.now(dt.timezone.utc),
                )
                s.add(row)
                s.flush()
            return _invitation(row), created

    def revoke(self, alias: str, email: str) -> bool:
        """``email`` is neither invited to nor a member of the organization any more."""
        with self._db.session(write=True) as s:
            org = s.scalar(select(OrganizationRow).where(OrganizationRow.alias == alias))
            if org is None:
                return False
            removed = 0
            for table in (OrganizationInvitationRow, OrganizationMemberRow):
                result = s.execute(delete(table).where(table.organization_id == org.id,
                                                       table.email == email))
                removed += int(getattr(result, "rowcount", 0) or 0)
            return removed > 0

    @staticmethod
    def _load(s: Session, row: OrganizationRow) -> Organization:
        domains = s.scalars(
            select(OrganizationDomainRow.domain)
            .where(OrganizationDomainRow.organization_id == row.id)
            .order_by(OrganizationDomainRow.domain)
        ).all()
        members = s.scalars(
            select(OrganizationMemberRow).where(OrganizationMemberRow.organization_id == row.id)
            .order_by(OrganizationMemberRow.email)
        ).all()
        invitations = s.scalars(
            select(OrganizationInvitationRow)
            .where(OrganizationInvitationRow.organization_id == row.id)
            .order_by(OrganizationInvitationRow.email)
        ).all()
        return Organization(
            id=row.id, alias=row.alias, name=row.name, redirect_url=row.redirect_url,
            domains=tuple(domains), members=tuple(Member(m.email, m.role) for m in members),
            invitations=tuple(_invitation(i) for i in invitations), created_at=row.created_at,
            enabled=bool(row.enabled), attributes=dict(row.attributes or {}),
        )


def _invitation(row: OrganizationInvitationRow) -> Invitation:
    return Invitation(row.id, row.email, row.role, row.status, row.created_at)
