"""A webhook receiver as a platform team writes one: a loopback HTTP server that verifies
each request with the Standard Webhooks library (any library of the specification would do),
reads the CloudEvent with the CNCF ``cloudevents`` library, drops duplicates by
``webhook-id``, and can be told to fail the first attempts of every event."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cloudevents.core.bindings.http import HTTPMessage, from_http
from cloudevents.core.formats.json import JSONFormat
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

__all__ = ["Accepted", "Receiver", "receiving"]


@dataclass(frozen=True)
class Accepted:
    webhook_id: str
    type: str
    tenant: str | None
    seq: int
    data: dict[str, Any]


@dataclass
class Receiver:
    secret: str
    url: str = ""
    fail_first: int = 0
    fail_status: int = 500
    answer_status: int = 204
    attempts: Counter[str] = field(default_factory=Counter)
    accepted: list[Accepted] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            self.requests.append((headers, body))
        try:
            Webhook(self.secret).verify(body, headers)
        except WebhookVerificationError as exc:
            with self.lock:
                self.rejected.append(str(exc))
            return 401
        event = from_http(HTTPMessage(headers=headers, body=body), JSONFormat())
        webhook_id = headers["webhook-id"]
        if event.get_id() != webhook_id:
            with self.lock:
                self.rejected.append(f"webhook-id {webhook_id} is not the event's id")
            return 400
        with self.lock:
            self.attempts[webhook_id] += 1
            if self.attempts[webhook_id] <= self.fail_first:
                return self.fail_status
            if any(a.webhook_id == webhook_id for a in self.accepted):
                self.duplicates.append(webhook_id)
                return self.answer_status
            data = event.get_data()
            self.accepted.append(Accepted(
                webhook_id, event.get_type(), event.get_extension("tenant"),
                int(event.get_extension("sequence")), data if isinstance(data, dict) else {}))
        return self.answer_status

    def ids(self) -> list[str]:
        with self.lock:
            return [a.webhook_id for a in self.accepted]


@contextmanager
def receiving(receiver: Receiver) -> Iterator[Receiver]:
    """Serve ``receiver`` on a free loopback port; its ``url`` is set while it runs."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            status = receiver.handle({k.lower(): v for k, v in self.headers.items()}, body)
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/tenantops"
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
