"""``/api/events``: the lifecycle events (CloudEvents), page by page and filtered; their
deliveries to the sinks, and redelivery of a parked one. ``/api/tenants/{slug}/history``:
one tenant's history, with what each event changed."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field

from tenantops.api.deps import EngineDep, require_role
from tenantops.api.schemas import Problem
from tenantops.auth import Principal
from tenantops.catalog import Delivery, Event, HistoryEntry
from tenantops.events import as_dict
from tenantops.events.history import describe
from tenantops.provisioning.engine import Engine

__all__ = ["router"]

router = APIRouter(tags=["events"])

Reader = Annotated[Principal, Depends(require_role("Tenants.Read"))]
Writer = Annotated[Principal, Depends(require_role("Tenants.Write"))]

_REFUSALS: dict[int | str, dict[str, object]] = {
    401: {"model": Problem, "description": "no valid token"},
    403: {"model": Problem, "description": "valid token without the needed app role"},
    422: {"model": Problem, "description": "a filter is invalid: field, value, rule"},
}
MAX_ID = 2**31 - 1  # seq and delivery IDs are 32-bit integers on PostgreSQL
TYPE_PATTERN = re.compile(r"^(\*|com\.tenantops\.[a-z0-9_.*-]+)$")


class DeliveryOut(BaseModel):
    """One event on its way to one sink."""

    id: int
    event_id: str
    event_type: str
    sink: str = Field(description="webhook:<name> or event-grid")
    status: Literal["pending", "delivered", "parked"]
    attempts: int
    next_attempt_at: dt.datetime | None = Field(description="when pending")
    first_attempt_at: dt.datetime | None
    last_attempt_at: dt.datetime | None
    delivered_at: dt.datetime | None
    last_status: int | None = Field(description="the sink's last HTTP status")
    last_error: str | None

    @classmethod
    def of(cls, delivery: Delivery) -> DeliveryOut:
        return cls(
            id=delivery.id, event_id=delivery.event_id, event_type=delivery.event_type,
            sink=delivery.sink, status=delivery.status, attempts=delivery.attempts,
            next_attempt_at=delivery.next_attempt_at if delivery.status == "pending" else None,
            first_attempt_at=delivery.first_attempt_at,
            last_attempt_at=delivery.last_attempt_at, delivered_at=delivery.delivered_at,
            last_status=delivery.last_status, last_error=delivery.last_error)


class EventOut(BaseModel):
    """An event: the CloudEvent as sinks receive it, and what tenantops knows beside it."""

    seq: int = Field(description="order of the outbox; a cursor for after/before")
    actor: str | None = Field(description="who caused it: the requester, or who retried or "
                              "cancelled")
    request_id: str | None
    summary: str
    event: dict[str, Any] = Field(description="the CloudEvent 1.0, structured JSON format")
    deliveries: list[DeliveryOut]


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    counts: dict[str, int] = Field(description="deliveries by status, and events not routed "
                                   "to the sinks yet (unrouted)")


class EventPage(BaseModel):
    items: list[EventOut]
    next_after: int | None = Field(description="pass as after for the next page (order=asc)")
    next_before: int | None = Field(description="pass as before for the next page "
                                    "(order=desc)")


class ChangeOut(BaseModel):
    before: Any = Field(alias="from")
    after: Any = Field(alias="to")

    model_config = {"populate_by_name": True}


class HistoryEntryOut(BaseModel):
    """One change, run or event in a tenant's life."""

    seq: int
    time: dt.datetime
    type: str
    summary: str
    actor: str | None
    run_id: str | None
    run_kind: str | None
    changes: dict[str, ChangeOut] = Field(description="tenant fields this event changed")
    data: dict[str, Any]

    @classmethod
    def of(cls, entry: HistoryEntry) -> HistoryEntryOut:
        event = entry.event
        return cls(
            seq=event.seq, time=event.time, type=event.type, summary=describe(event),
            actor=event.actor, run_id=event.run_id, run_kind=entry.run_kind,
            changes={name: ChangeOut(before=b, after=a)
                     for name, (b, a) in entry.changes.items()},
            data=event.data)


class HistoryOut(BaseModel):
    tenant: str
    entries: list[HistoryEntryOut] = Field(description="newest first")
    next_before: int | None = Field(description="pass as before for older entries")


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.timezone.utc)


def _events_out(engine: Engine, events: list[Event]) -> list[EventOut]:
    deliveries: dict[int, list[DeliveryOut]] = {e.seq: [] for e in events}
    for delivery in engine.catalog.events.deliveries(event_seqs=[e.seq for e in events],
                                                     limit=len(events) * 8 + 8):
        deliveries[delivery.event_seq].append(DeliveryOut.of(delivery))
    source = engine.settings.events.source
    return [EventOut(seq=e.seq, actor=e.actor, request_id=e.request_id, summary=describe(e),
                     event=as_dict(e, source=source), deliveries=deliveries[e.seq])
            for e in events]


@router.get("/events", response_model=EventPage, responses=_REFUSALS)
def list_events(
    principal: Reader, engine: EngineDep,
    tenant: Annotated[str | None, Query(max_length=32, description="one tenant's events")
                      ] = None,
    type: Annotated[list[str] | None, Query(
        description="event types or globs (com.tenantops.tenant.*); repeat for several",
        max_length=20)] = None,
    run: Annotated[str | None, Query(max_length=32, description="one run's events")] = None,
    since: Annotated[dt.datetime | None, Query(description="time >= since (ISO 8601)")
                     ] = None,
    until: Annotated[dt.datetime | None, Query(description="time < until (ISO 8601)")
                     ] = None,
    after: Annotated[int | None, Query(ge=0, le=MAX_ID, description="seq > after")] = None,
    before: Annotated[int | None, Query(ge=0, le=MAX_ID, description="seq < before")] = None,
    order: Annotated[Literal["asc", "desc"], Query(description="asc: oldest first")
                     ] = "asc",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> EventPage:
    """Events matching every filter, a page at a time: oldest first (follow with
    ``after=next_after``, which is how ``tenantops events --follow`` tails them) or newest
    first (``order=desc``, ``before=next_before``)."""
    types = type or []
    for pattern in types:
        if not TYPE_PATTERN.match(pattern):
            raise RequestValidationError([{
                "loc": ("query", "type"), "input": pattern,
                "msg": "must be an event type (com.tenantops.tenant.onboarded), a glob "
                       "(com.tenantops.tenant.*) or *"}])
    events = engine.catalog.events.page(
        tenant=tenant, types=types, run_id=run, since=_utc(since), until=_utc(until),
        after=after, before=before, limit=limit, newest_first=order == "desc")
    last = events[-1].seq if events else None
    full = len(events) == limit
    return EventPage(
        items=_events_out(engine, events),
        next_after=(last if order == "asc" else None) if events else after,
        next_before=last if order == "desc" and full else None)


@router.get("/events/deliveries", response_model=DeliveryPage, responses=_REFUSALS)
def list_deliveries(
    principal: Reader, engine: EngineDep,
    status: Annotated[Literal["pending", "delivered", "parked"] | None,
                      Query(description="parked: given up after a day of failures")] = None,
    sink: Annotated[str | None, Query(max_length=100, description="webhook:<name> or "
                                      "event-grid")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> DeliveryPage:
    """Deliveries of events to the sinks, newest event first, and how many there are in
    each status."""
    store = engine.catalog.events
    return DeliveryPage(items=[DeliveryOut.of(d) for d in store.deliveries(
        status=status, sink=sink, limit=limit)], counts=store.counts())


@router.post("/events/deliveries/{delivery_id}/redeliver", response_model=DeliveryOut,
             status_code=202, responses={**_REFUSALS, 404: {
                 "model": Problem, "description": "unknown delivery"}})
def redeliver(delivery_id: Annotated[int, Path(ge=1, le=MAX_ID)], principal: Writer,
              engine: EngineDep) -> DeliveryOut:
    """Send a parked delivery again now, with a fresh day of retries (the receiver gets the
    same ``webhook-id``)."""
    return DeliveryOut.of(engine.catalog.events.redeliver(delivery_id))


@router.get("/tenants/{slug}/history", response_model=HistoryOut, responses={
    **_REFUSALS, 404: {"model": Problem, "description": "unknown slug"}})
def tenant_history(
    slug: str, principal: Reader, engine: EngineDep,
    before: Annotated[int | None, Query(ge=0, le=MAX_ID, description="older than this seq")
                      ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> HistoryOut:
    """Who changed what, when, by which run: every event of the tenant, newest first, with
    the fields each changed."""
    engine.catalog.get_tenant(slug)
    entries = engine.catalog.events.history(slug, limit=limit, before=before)
    return HistoryOut(tenant=slug, entries=[HistoryEntryOut.of(e) for e in entries],
                      next_before=entries[-1].event.seq if len(entries) == limit else None)
