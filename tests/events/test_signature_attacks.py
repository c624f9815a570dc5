"""What a receiver's Standard Webhooks check refuses, given tenantops' signatures: the
signature covers the ``webhook-id``, the timestamp and the exact body, with the endpoint's
own secret (tested with the ``standardwebhooks`` library, as any receiver would check)."""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tenantops.catalog import Event
from tenantops.config import WebhookSettings
from tenantops.events import WebhookSink, structured_body

SECRET = "whsec_" + base64.b64encode(b"receiver-secret-of-32-bytes-long").decode()
OTHER = "whsec_" + base64.b64encode(b"another-secret-of-32-bytes-long!").decode()


def now() -> dt.datetime:
    # Read at each signing: a time taken when the module was collected would be minutes old
    # by the time a long suite reaches these tests.
    return dt.datetime.now(dt.timezone.utc)


def event(event_id: str = "9f0c2d4e6a8b4c1d9e7f5a3b1c0d2e4f") -> Event:
    return Event(seq=7, id=event_id, type="com.tenantops.tenant.onboarded",
                 subject="tenants/acme", tenant_slug="acme", run_id="r1", actor="ops",
                 request_id=None, time=now(), data={"tenant": {"slug": "acme"}})


def signed(secret: str = SECRET, at: dt.datetime | None = None,
           which: Event | None = None) -> tuple[dict[str, str], bytes]:
    client = httpx.Client()
    try:
        sink = WebhookSink(WebhookSettings(name="crm", url="https://crm.test/h",
                                           secret=secret),
                           source="/tenantops", client=client,
                           clock=lambda: at or now())
        chosen = which or event()
        body = structured_body(chosen, source="/tenantops")
        return sink.headers(chosen, body), body
    finally:
        client.close()


def verify(headers: dict[str, str], body: bytes) -> dict[str, Any]:
    verified: dict[str, Any] = Webhook(SECRET).verify(body, headers)
    return verified


def test_a_genuine_delivery_verifies_and_carries_the_event() -> None:
    headers, body = signed()
    assert verify(headers, body)["id"] == headers["webhook-id"]
    assert headers["webhook-signature"].startswith("v1,")


def test_tampered_body_is_refused_by_the_receiver() -> None:
    headers, body = signed()
    changed = json.loads(body)
    changed["data"]["tenant"]["slug"] = "mallory"
    with pytest.raises(WebhookVerificationError):
        verify(headers, json.dumps(changed).encode())


def test_signature_of_another_secret_is_refused_by_the_receiver() -> None:
    headers, body = signed(secret=OTHER)
    with pytest.raises(WebhookVerificationError):
        verify(headers, body)


def test_replayed_old_delivery_is_refused_by_the_receiver() -> None:
    headers, body = signed(at=now() - dt.timedelta(minutes=10))
    with pytest.raises(WebhookVerificationError, match="too old"):
        verify(headers, body)


def test_signature_moved_to_another_webhook_id_is_refused_by_the_receiver() -> None:
    headers, body = signed()
    with pytest.raises(WebhookVerificationError):
        verify({**headers, "webhook-id": "another-event"}, body)


def test_signature_of_another_event_is_refused_by_the_receiver() -> None:
    headers, _ = signed()
    _, other_body = signed(which=event("0" * 32))
    with pytest.raises(WebhookVerificationError):
        verify(headers, other_body)
