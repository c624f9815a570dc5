"""The tenant page's History section: each event of the tenant, as a row people read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tenantops.catalog import HistoryEntry
from tenantops.dashboard._present import format_time
from tenantops.events.history import describe, describe_change

__all__ = ["HISTORY_SHOWN", "HistoryRow", "history_view"]

HISTORY_SHOWN = 50
"""Entries on the tenant page; the API and ``tenantops tenants history`` page through all."""


@dataclass(frozen=True)
class HistoryRow:
    time: str
    summary: str
    actor: str
    run_id: str | None
    changes: tuple[str, ...]


def history_view(entries: Sequence[HistoryEntry]) -> list[HistoryRow]:
    """Newest first, as the catalog gives them; status changes are in the summary."""
    return [HistoryRow(
        time=format_time(entry.event.time), summary=describe(entry.event),
        actor=entry.event.actor or "tenantops", run_id=entry.event.run_id,
        changes=tuple(describe_change(name, before, after)
                      for name, (before, after) in entry.changes.items() if name != "status"),
    ) for entry in entries]
