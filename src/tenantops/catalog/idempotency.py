"""Idempotency keys: the ``Idempotency-Key`` a caller sent, the request it came with, and the
run it made (`IdempotencyStore`).

A key belongs to the caller who sent it (``scope``: the caller's tenant and object ID), so the
same key from another caller is another key, and a key never leads one caller to another's
run. A key is claimed in the transaction that opens the run (`RunStore.open_onboarding` with an
`IdempotencyClaim`), under the primary key ``(scope, key)``: of any number of concurrent
requests with one key, one opens its run and the others find the key taken.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from tenantops.catalog._database import CatalogDatabase, now
from tenantops.catalog.models import IdempotencyKeyRow

__all__ = ["IdempotencyClaim", "IdempotencyStore"]


@dataclass(frozen=True)
class IdempotencyClaim:
    """``key`` as sent by the caller ``scope``, with the fingerprint of its request."""

    scope: str
    key: str
    fingerprint: str


def claimed(s: Session, claim: IdempotencyClaim) -> tuple[str, str] | None:
    """The (fingerprint, run ID) the claim's key was first used with by its caller."""
    row = s.get(IdempotencyKeyRow, (claim.scope, claim.key))
    return (row.fingerprint, row.run_id) if row else None


def record_claim(s: Session, claim: IdempotencyClaim, run_id: str) -> None:
    """Record that the key made (or was answered with) ``run_id``; a concurrent claim of the
    same key fails on the primary key when the transaction flushes."""
    s.add(IdempotencyKeyRow(scope=claim.scope, key=claim.key, fingerprint=claim.fingerprint,
                            run_id=run_id, created_at=now()))
    s.flush()


class IdempotencyStore:
    def __init__(self, database: CatalogDatabase) -> None:
        self._db = database

    def find(self, scope: str, key: str) -> tuple[str, str] | None:
        """The (request fingerprint, run ID) ``key`` of caller ``scope`` was first used with."""
        with self._db.session(write=False) as s:
            return claimed(s, IdempotencyClaim(scope, key, ""))
