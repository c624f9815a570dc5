"""A fake of an Azure Event Grid topic's publish API (CloudEvents schema), as an httpx
transport: the dispatcher's real `EventGridSink` sends through it, and only the network is
replaced.

What it checks and answers, and the source of each behaviour:

- ``POST <topic>/api/events?api-version=2018-01-01``; the ``api-version`` query parameter is
  required (``ApiVersionParameter``, ``required: true``) — azure-rest-api-specs
  ``specification/eventgrid/data-plane/EventGrid/stable/2018-01-01/EventGrid.json``
  (``?overload=cloudEvent``, operation ``PublishCloudEventEvents``). Another version: 400
  (the status follows the operation's listed 400; the message is **unconfirmed**).
- Content type ``application/cloudevents-batch+json; charset=utf-8`` (the operation's
  ``consumes``); the body is an array of ``CloudEventEvent`` whose required properties are
  ``id``, ``source``, ``specversion`` and ``type`` (same file, ``definitions``). This fake also
  holds each event to the CloudEvents 1.0 rules the service enforces for its CloudEvents
  schema: ``specversion`` ``"1.0"``, string attributes, ``time`` in RFC 3339, not both
  ``data`` and ``data_base64`` (CloudEvents 1.0 JSON format §3.1). A violation: 400 with the
  error body ``{"error": {"code": "BadRequest", "message": ...}}`` — the shape and the message
  style ("`source` attribute is required") of Azure/azure-sdk-assets, python azure-eventgrid
  recording ``test_publish_cloud_event_bad_request`` (a namespace topic; for a basic topic the
  body is **unconfirmed**).
- Success: 200, empty body, ``api-supported-versions: 2018-01-01`` (recording
  ``test_eg_publisher_client.py::test_send_cloud_event_data_dict``).
- ``Authorization: Bearer`` for the audience ``https://eventgrid.azure.net`` (scope
  ``https://eventgrid.azure.net/.default`` in the Azure SDKs and in azure-rest-api-specs
  ``EventGridNamespace/main.tsp`` ``@useAuth``); a missing, unverifiable or other-audience
  token: 401 (the status is RFC 6750's ``invalid_token``; Event Grid's exact code and
  message are **unconfirmed**). Whether Event Grid also accepts the audience with a trailing
  slash is **unconfirmed**; this fake accepts both.
- Faults (`fail_next`): 429 with ``Retry-After``, 5xx, or any status — the operation lists
  400, 404, 429 and 500 as its error answers.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = ["EVENT_GRID_AUDIENCES", "FakeEventGrid", "PublishedEvent"]

EVENT_GRID_AUDIENCES = ("https://eventgrid.azure.net", "https://eventgrid.azure.net/")
API_VERSION = "2018-01-01"
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"
_REQUIRED = ("id", "source", "specversion", "type")
_STRINGS = ("id", "source", "specversion", "type", "subject", "datacontenttype", "dataschema")


@dataclass(frozen=True)
class PublishedEvent:
    """An event the topic accepted, and the token's object ID that published it."""

    event: dict[str, Any]
    publisher: str


@dataclass
class FakeEventGrid:
    """One topic at ``host``; ``verify`` returns a token's claims when its signature holds
    (`tests.azure_fake.tokens.FakeEntra.verify`, or the emulator's keys)."""

    host: str
    verify: Callable[[str], dict[str, Any] | None]
    published: list[PublishedEvent] = field(default_factory=list)
    refusals: list[tuple[int, str]] = field(default_factory=list)
    _faults: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def endpoint(self) -> str:
        return f"https://{self.host}/api/events"

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def fail_next(self, count: int, status: int, headers: dict[str, str] | None = None
                  ) -> None:
        with self._lock:
            self._faults.extend([(status, dict(headers or {}))] * count)

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.host != self.host or request.url.path != "/api/events":
            return self._refuse(404, "NotFound", f"no topic answers {request.url.host}"
                                f"{request.url.path}")
        if request.method != "POST":
            return self._refuse(405, "MethodNotAllowed", f"{request.method} is not allowed")
        version = request.url.params.get("api-version")
        if version != API_VERSION:
            return self._refuse(400, "BadRequest",
                                f"api-version {version!r} is not supported; use {API_VERSION}")
        claims = self._token(request.headers.get("authorization"))
        if claims is None:
            return self._refuse(401, "Unauthorized", "the request has no valid bearer token "
                                "for https://eventgrid.azure.net")
        with self._lock:
            fault = self._faults.pop(0) if self._faults else None
        if fault is not None:
            status, headers = fault
            return self._refuse(status, "Injected", f"injected {status}", headers)
        content_type = request.headers.get("content-type", "")
        if content_type.split(";")[0].strip().lower() != BATCH_CONTENT_TYPE:
            return self._refuse(400, "BadRequest",
                                f"content type {content_type!r} is not {BATCH_CONTENT_TYPE}")
        try:
            body = json.loads(request.content)
        except ValueError:
            return self._refuse(400, "BadRequest", "the body is not JSON")
        if not isinstance(body, list):
            return self._refuse(400, "BadRequest", "the body must be an array of events")
        for event in body:
            problem = _schema_problem(event)
            if problem:
                return self._refuse(400, "BadRequest", problem)
        with self._lock:
            self.published.extend(PublishedEvent(e, str(claims.get("oid"))) for e in body)
        return httpx.Response(200, headers={"api-supported-versions": API_VERSION})

    def _token(self, authorization: str | None) -> dict[str, Any] | None:
        if not authorization or not authorization.startswith("Bearer "):
            return None
        claims = self.verify(authorization.removeprefix("Bearer ").strip())
        if claims is None or claims.get("aud") not in EVENT_GRID_AUDIENCES:
            return None
        if float(claims.get("exp", 0)) <= dt.datetime.now(dt.timezone.utc).timestamp():
            return None
        return claims

    def _refuse(self, status: int, code: str, message: str,
                headers: dict[str, str] | None = None) -> httpx.Response:
        with self._lock:
            self.refusals.append((status, message))
        return httpx.Response(status, headers=headers or {},
                              json={"error": {"code": code, "message": message}})


def _schema_problem(event: Any) -> str | None:
    if not isinstance(event, dict):
        return "each event must be a JSON object"
    for name in _REQUIRED:
        if name not in event:
            return f"`{name}` attribute is required"
    for name in _STRINGS:
        if name in event and not isinstance(event[name], str):
            return f"`{name}` attribute must be a string"
    if event["specversion"] != "1.0":
        return f"specversion {event['specversion']!r} is not supported; use 1.0"
    if "data" in event and "data_base64" in event:
        return "an event has either `data` or `data_base64`, not both"
    if "time" in event:
        try:
            dt.datetime.fromisoformat(str(event["time"]).replace("Z", "+00:00"))
        except ValueError:
            return f"`time` {event['time']!r} is not an RFC 3339 timestamp"
    return None
