"""Idempotency keys: the ``Idempotency-Key`` a client sent, the request it came with, and
the run it made (`IdempotencyStore`)."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from tenantops.catalog._database import CatalogDatabase, now
from tenantops.catalog.models import IdempotencyKeyRow
from tenantops.errors import CatalogError

__all__ = ["IdempotencyStore"]


class IdempotencyStore:
    def __init__(self, database: CatalogDatabase) -> None:
        self._db = database

    def find(self, key: str) -> tuple[str, str] | None:
        """The (request fingerprint, run ID) an ``Idempotency-Key`` was first used with."""
        with self._db.session(write=False) as s:
            row = s.get(IdempotencyKeyRow, key)
            return (row.fingerprint, row.run_id) if row else None

    def remember(self, key: str, fingerprint: str, run_id: str) -> tuple[str, str]:
        """Record that ``key`` made ``run_id``; if a concurrent request recorded it first,
        return what that one recorded (the caller compares fingerprints)."""
        try:
            with self._db.session(write=True) as s:
                s.add(IdempotencyKeyRow(key=key, fingerprint=fingerprint, run_id=run_id,
                                        created_at=now()))
            return fingerprint, run_id
        except IntegrityError as exc:
            found = self.find(key)
            if found is None:
                raise CatalogError(
                    f"Idempotency-Key {key!r} could not be recorded ({exc.orig}) and is not "
                    "there either; try the request again"
                ) from exc
            return found
