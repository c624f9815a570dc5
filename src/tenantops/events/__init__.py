"""Lifecycle events on their way out: CloudEvents (`to_cloudevent`), the sinks (Standard
Webhooks, Azure Event Grid) and the dispatcher that delivers the catalog's outbox to them.

The events themselves are written by the catalog (`tenantops.catalog.events`) in the
transaction of each change; docs/events.md lists their types and data.
"""

from __future__ import annotations

from tenantops.events.cloudevent import as_dict, structured_body, to_cloudevent
from tenantops.events.dispatcher import EventDispatcher, build_sinks
from tenantops.events.sinks import EventGridSink, Sink, WebhookSink

__all__ = [
    "EventDispatcher",
    "EventGridSink",
    "Sink",
    "WebhookSink",
    "as_dict",
    "build_sinks",
    "structured_body",
    "to_cloudevent",
]
