"""The sample tenant application the local edge forwards to.

One app serves every tenant, as a multi-tenant SaaS web app does: it picks the tenant by the
request's ``Host``, shows the tenant's name from the catalog, and proves it can read the
tenant's own database (connecting with the tenant's login and secret).
``GET /`` answers HTML, ``GET /tenant.json`` the same facts as JSON.
"""

from __future__ import annotations

import html
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tenantops.errors import TenantOpsError

__all__ = ["SampleApp", "TenantLookup", "TenantView"]

log = logging.getLogger("tenantops.provisioning.sample_app")


@dataclass(frozen=True)
class TenantView:
    """What the app shows for one tenant."""

    slug: str
    display_name: str
    database: dict[str, str]


TenantLookup = Callable[[str], TenantView | None]
"""Hostname -> the tenant served there (None: no such tenant); may raise TenantOpsError."""


class SampleApp:
    """HTTP on ``host:port`` (loopback; port 0 picks a free one)."""

    name = "sample-app"

    def __init__(self, host: str, port: int, lookup: TenantLookup) -> None:
        self.host = host
        self._requested_port = port
        self.lookup = lookup
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the sample app is not running; call start() first")
        return self._server.server_address[1]

    def start(self) -> None:
        if self._server is not None:
            return
        app = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "tenantops-sample-app"

            def do_GET(self) -> None:
                app._handle(self)

            def log_message(self, format: str, *args: object) -> None:
                log.debug("%s " + format, self.address_string(), *args)

        server = ThreadingHTTPServer((self.host, self._requested_port), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="sample-app",
                                        kwargs={"poll_interval": 0.2}, daemon=True)
        self._thread.start()
        log.info("sample tenant app on http://%s:%d", self.host, self.port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self._server = self._thread = None

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        host = (request.headers.get("Host") or "").rsplit(":", 1)[0].lower().rstrip(".")
        path = request.path.split("?", 1)[0]
        if path not in ("/", "/tenant.json"):
            self._send(request, 404, "text/plain", f"no page {path}\n")
            return
        try:
            view = self.lookup(host)
        except TenantOpsError as exc:
            self._send(request, 500, "text/plain", f"tenant for {host} is unavailable: {exc}\n")
            return
        if view is None:
            self._send(request, 404, "text/plain", f"no tenant is served at {host}\n")
            return
        if path == "/tenant.json":
            self._send(request, 200, "application/json", json.dumps(asdict(view)))
            return
        rows = "".join(
            f"<li>{html.escape(k)}: {html.escape(v)}</li>" for k, v in sorted(view.database.items())
        )
        page = (
            f"<!doctype html><title>{html.escape(view.display_name)}</title>"
            f"<h1>{html.escape(view.display_name)}</h1>"
            f"<p>Tenant <code>{html.escape(view.slug)}</code>, served at "
            f"{html.escape(host)}.</p><p>Its database says:</p><ul>{rows}</ul>"
        )
        self._send(request, 200, "text/html; charset=utf-8", page)

    @staticmethod
    def _send(request: BaseHTTPRequestHandler, status: int, content_type: str, body: str) -> None:
        data = body.encode()
        request.send_response(status)
        request.send_header("Content-Type", content_type)
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)
