"""An outbox event as a CloudEvent 1.0 (the CNCF ``cloudevents`` library), and its JSON.

Attributes: ``specversion`` 1.0, ``id`` (the event's ID, also the webhook's ``webhook-id``),
``source`` (``events.source``), ``type``, ``subject`` (``tenants/<slug>``), ``time``,
``datacontenttype`` ``application/json``, and the extensions ``tenant``, ``runid`` and
``sequence`` (the CloudEvents sequence extension: the outbox's order, as a string).
"""

from __future__ import annotations

import json
from typing import Any

from cloudevents.core.bindings.http import to_structured
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from tenantops.catalog import Event

__all__ = ["CONTENT_TYPE", "as_dict", "structured_body", "to_cloudevent"]

CONTENT_TYPE = JSONFormat.CONTENT_TYPE
_FORMAT = JSONFormat()


def to_cloudevent(event: Event, *, source: str) -> CloudEvent:
    """The CloudEvent for ``event``; the library validates every attribute."""
    attributes: dict[str, Any] = {
        "specversion": "1.0", "id": event.id, "source": source, "type": event.type,
        "subject": event.subject, "time": event.time, "datacontenttype": "application/json",
        "sequence": str(event.seq),
    }
    if event.tenant_slug:
        attributes["tenant"] = event.tenant_slug
    if event.run_id:
        attributes["runid"] = event.run_id
    return CloudEvent(attributes, dict(event.data))


def structured_body(event: Event, *, source: str) -> bytes:
    """The event in the structured JSON format (``application/cloudevents+json``)."""
    return to_structured(to_cloudevent(event, source=source), _FORMAT).body


def as_dict(event: Event, *, source: str) -> dict[str, Any]:
    """The structured JSON as a dict (one item of a batch, an API answer)."""
    parsed: dict[str, Any] = json.loads(structured_body(event, source=source))
    return parsed
