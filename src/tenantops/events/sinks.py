"""Where events go: webhooks signed per Standard Webhooks, and Azure Event Grid topics.

A sink takes one event at a time and either returns (the receiver accepted it: any 2xx) or
raises `EventDeliveryError` saying whether trying again may help. Retries, backoff, order and
parking are the dispatcher's (`tenantops.events.dispatcher`).

Webhooks (`WebhookSink`): ``POST`` of the CloudEvent in the structured JSON format
(``application/cloudevents+json``), with the Standard Webhooks headers ``webhook-id`` (the
event's ID: the same on every attempt, so receivers drop duplicates by it),
``webhook-timestamp`` (seconds, at this attempt) and ``webhook-signature``
(``v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">``, made by the ``standardwebhooks``
library with the endpoint's secret). Redirects are not followed. 410 Gone parks the delivery
at once (the Standard Webhooks specification asks senders to stop sending to such an
endpoint); any other answer than 2xx is tried again.

Event Grid (`EventGridSink`): ``POST <topic endpoint>?api-version=2018-01-01`` of a batch of
one CloudEvent (``application/cloudevents-batch+json; charset=utf-8``), with a bearer token
for ``https://eventgrid.azure.net`` from tenantops' identity source (a managed identity in
Azure). Sources: the ``PublishCloudEventEvents`` operation of azure-rest-api-specs
``eventgrid/data-plane/EventGrid/stable/2018-01-01/EventGrid.json`` (body, content type,
200 on success, 400/404/429/500 as errors) and the SDK's recorded publish
(Azure/azure-sdk-assets, python azure-eventgrid ``test_send_cloud_event_data_dict``: 200 with
an empty body). 400 and 413 park the delivery (the same body cannot pass later); 401, 403,
404, 429 and 5xx are tried again (a role assignment or a topic may be fixed meanwhile).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
from collections.abc import Callable
from typing import Protocol
from urllib.parse import urlsplit

import httpx
from standardwebhooks.webhooks import Webhook

from tenantops import __version__
from tenantops.catalog import Event
from tenantops.catalog.events import type_matches
from tenantops.config import EVENT_GRID_AUDIENCE, EventGridSettings, WebhookSettings
from tenantops.errors import EventDeliveryError, IdentityError
from tenantops.events.cloudevent import CONTENT_TYPE, as_dict, structured_body
from tenantops.identity import (
    TokenCache,
    TokenProvider,
    parse_audience,
    require_secure_destination,
)
from tenantops.log import redact

__all__ = ["BATCH_CONTENT_TYPE", "EventGridSink", "Sink", "WebhookSink"]

BATCH_CONTENT_TYPE = "application/cloudevents-batch+json; charset=utf-8"
_USER_AGENT = f"tenantops/{__version__}"
_BODY_SHOWN = 300


class Sink(Protocol):
    """A destination of events, named ``webhook:<name>`` or ``event-grid``."""

    @property
    def name(self) -> str: ...

    def accepts(self, event: Event) -> bool:
        """Whether the sink's filter takes ``event`` (decided once, when it is routed)."""
        ...

    def deliver(self, event: Event) -> int:
        """Send ``event``; the receiver's status when it accepted it, else
        `EventDeliveryError`."""
        ...


def _where(url: str) -> str:
    """A URL as messages show it: scheme, host and path, never a query (it may hold a key)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        moment = email.utils.parsedate_to_datetime(value) if value else None
        if moment is None:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.timezone.utc)
        return max(0.0, (moment - dt.datetime.now(dt.timezone.utc)).total_seconds())


def _answer(response: httpx.Response) -> str:
    text = response.text.strip().replace("\n", " ")
    if len(text) > _BODY_SHOWN:
        text = text[:_BODY_SHOWN] + "..."
    return redact(text) if text else "(no body)"


def _unreachable(sink: str, url: str, exc: httpx.HTTPError) -> EventDeliveryError:
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "could not be reached"
    return EventDeliveryError(
        f"{sink} at {_where(url)} {kind} ({type(exc).__name__}: {redact(str(exc))}); it is "
        "tried again with backoff", sink=sink)


class WebhookSink:
    """One ``[[events.webhooks]]`` endpoint. Construction does no I/O."""

    def __init__(self, settings: WebhookSettings, *, source: str, client: httpx.Client,
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        self.settings = settings
        self._source = source
        self._client = client
        self._clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))
        self._signer = Webhook(settings.secret.get_secret_value())

    @property
    def name(self) -> str:
        return f"webhook:{self.settings.name}"

    def accepts(self, event: Event) -> bool:
        if self.settings.tenants and event.tenant_slug not in self.settings.tenants:
            return False
        return type_matches(event.type, self.settings.filter)

    def headers(self, event: Event, body: bytes) -> dict[str, str]:
        """The Standard Webhooks headers of one attempt (a new timestamp each time)."""
        stamp = self._clock()
        return {
            "content-type": f"{CONTENT_TYPE}; charset=utf-8",
            "user-agent": _USER_AGENT,
            "webhook-id": event.id,
            "webhook-timestamp": str(int(stamp.timestamp())),
            "webhook-signature": self._signer.sign(event.id, stamp, body),
        }

    def deliver(self, event: Event) -> int:
        body = structured_body(event, source=self._source)
        url = self.settings.url
        try:
            response = self._client.post(url, content=body, headers=self.headers(event, body))
        except httpx.HTTPError as exc:
            raise _unreachable(self.name, url, exc) from exc
        if response.is_success:
            return response.status_code
        where = _where(url)
        if response.status_code == 410:
            raise EventDeliveryError(
                f"{self.name} at {where} answered 410 Gone: the receiver asks not to be sent "
                "events any more; the delivery is parked (remove the webhook, or redeliver "
                "once the receiver is back)", sink=self.name, status=410, permanent=True)
        if response.is_redirect:
            raise EventDeliveryError(
                f"{self.name} at {where} answered {response.status_code} to "
                f"{_where(response.headers.get('location', '?'))}: redirects are not "
                "followed; set the webhook's url to the final address", sink=self.name,
                status=response.status_code)
        raise EventDeliveryError(
            f"{self.name} at {where} answered {response.status_code}: {_answer(response)}",
            sink=self.name, status=response.status_code, retry_after=_retry_after(response))


class EventGridSink:
    """An Event Grid topic (``[events.event_grid]``). Construction does no I/O; the first
    delivery asks ``tokens`` for a token, then reuses it until shortly before it expires."""

    name = "event-grid"

    def __init__(self, settings: EventGridSettings, *, source: str, client: httpx.Client,
                 tokens: TokenProvider) -> None:
        if not settings.topic_endpoint:
            raise ValueError("EventGridSink needs events.event_grid.topic_endpoint")
        self.settings = settings
        self.endpoint = settings.topic_endpoint
        self._source = source
        self._client = client
        self._tokens = TokenCache(tokens, parse_audience(EVENT_GRID_AUDIENCE))

    def accepts(self, event: Event) -> bool:
        return type_matches(event.type, self.settings.filter)

    def deliver(self, event: Event) -> int:
        where = _where(self.endpoint)
        try:
            require_secure_destination(self.endpoint)
            token = self._tokens.token()
        except IdentityError as exc:
            raise EventDeliveryError(
                f"no token for Event Grid ({EVENT_GRID_AUDIENCE}) to publish to {where}: "
                f"{exc}", sink=self.name) from exc
        body = json.dumps([as_dict(event, source=self._source)]).encode()
        try:
            response = self._client.post(
                self.endpoint, params={"api-version": self.settings.api_version},
                content=body, headers={"content-type": BATCH_CONTENT_TYPE,
                                       "authorization": f"Bearer {token.value}",
                                       "user-agent": _USER_AGENT})
        except httpx.HTTPError as exc:
            raise _unreachable(self.name, self.endpoint, exc) from exc
        status = response.status_code
        if response.is_success:
            return status
        answer = _answer(response)
        if status in (400, 413):
            raise EventDeliveryError(
                f"Event Grid at {where} refused the event with {status}: {answer}; the "
                "delivery is parked (the same event cannot pass later)", sink=self.name,
                status=status, permanent=True)
        hint = ""
        if status in (401, 403):
            hint = ("; give tenantops' identity the 'EventGrid Data Sender' role on the topic, "
                    "and check events.event_grid.identity")
        elif status == 404:
            hint = "; check events.event_grid.topic_endpoint"
        raise EventDeliveryError(
            f"Event Grid at {where} answered {status}: {answer}{hint}", sink=self.name,
            status=status, retry_after=_retry_after(response))
