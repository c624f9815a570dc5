"""One line per event, as people read a tenant's history (API ``summary``, CLI, dashboard)."""

from __future__ import annotations

from typing import Any

from tenantops.catalog import Event
from tenantops.catalog.events import EVENT_PREFIX

__all__ = ["describe", "describe_change"]

_KIND_NOUNS = {"onboard": "onboarding", "offboard": "offboarding"}


def _kind(event: Event) -> str:
    run = event.data.get("run")
    kind = str(run.get("kind", "run")) if isinstance(run, dict) else "run"
    return _KIND_NOUNS.get(kind, kind)


def describe(event: Event) -> str:
    """``onboarding requested by ops@contoso.test``, ``step create_database failed: ...``."""
    kind = _kind(event)
    name = event.type.removeprefix(EVENT_PREFIX)
    by = f" by {event.actor}" if event.actor else ""
    if name == "run.requested":
        return f"{kind} requested{by}"
    if name == "run.started":
        return f"{kind} started"
    if name == "run.retried":
        origin = event.data.get("from_step")
        return f"{kind} retried{by}" + (f" from step {origin}" if origin else "")
    if name == "run.cancelled":
        return f"{kind} cancelled{by}"
    if name == "step.failed":
        failed: dict[str, Any] = event.data.get("step") or {}
        return f"step {failed.get('name')} failed: {failed.get('error') or 'no message'}"
    if name == "tenant.failed":
        where = event.data.get("failed_step")
        return f"{kind} failed" + (f" at step {where}" if where else "") + (
            f": {event.data['error']}" if event.data.get("error") else "")
    if name.startswith("tenant."):
        return f"tenant {name.removeprefix('tenant.')}"
    return name


def describe_change(field: str, before: Any, after: Any) -> str:
    """``plan: standard -> premium``."""
    return f"{field}: {_shown(before)} -> {_shown(after)}"


def _shown(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in sorted(value.items())) or "(none)"
    return str(value)
