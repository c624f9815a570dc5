"""A provider's server that counts requests per second and answers 429 above its limit, and
the middleware that makes every call of some provider kinds a request to it, as a provider
talking to a throttled service (Keycloak, ARM) would.

The server is a real HTTP server on 127.0.0.1 (a thread of the test process). It keeps
every request it saw (time, worker, status) so a test can check the budget from the
provider's side. Its clock is injectable: a frozen clock puts every request in one window.
"""

from __future__ import annotations

import http.server
import math
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from tenantops.errors import TransientProviderError
from tenantops.provisioning.providers.base import Outcome, ProviderCall


@dataclass(frozen=True)
class Seen:
    at: float
    worker: str
    status: int


class RateLimitedServer:
    """Answers ``POST /call`` with 200, or 429 (``Retry-After: 1``) once ``limit`` requests
    were answered 200 in the current one-second window of ``clock``."""

    def __init__(self, limit: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.clock = clock
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._accepted: Counter[int] = Counter()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = server._decide(self.headers.get("X-Worker", "?"))
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", "1")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}/call"

    def __enter__(self) -> RateLimitedServer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(timeout=5)

    def _decide(self, worker: str) -> int:
        with self._lock:
            at = self.clock()
            window = math.floor(at)
            status = 200 if self._accepted[window] < self.limit else 429
            if status == 200:
                self._accepted[window] += 1
            self.seen.append(Seen(at, worker, status))
            return status

    def refused(self) -> int:
        with self._lock:
            return sum(1 for s in self.seen if s.status == 429)

    def busiest_window(self) -> int:
        """The most requests (of any answer) in one one-second window."""
        with self._lock:
            return max(Counter(math.floor(s.at) for s in self.seen).values(), default=0)


class ServerCalls:
    """Middleware: every call of a provider of ``kinds`` first makes one request to
    ``url``; a 429 becomes a `TransientProviderError` with the server's Retry-After."""

    def __init__(self, url: str, kinds: Collection[str], *, worker: str = "") -> None:
        self.url = url
        self.kinds = set(kinds)
        self.worker = worker

    def __call__(self, call: ProviderCall, proceed: Callable[[], Outcome]) -> Outcome:
        if call.provider.kind in self.kinds:
            self.request()
        return proceed()

    def request(self) -> None:
        """One request to the server; `TransientProviderError` on its 429."""
        request = urllib.request.Request(self.url, data=b"{}", method="POST",
                                         headers={"X-Worker": self.worker})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            if exc.code != 429:
                raise
            retry_after = float(exc.headers.get("Retry-After", "1"))
            exc.close()
            raise TransientProviderError(
                "the provider's server answered 429 Too Many Requests",
                retry_after=retry_after) from None
