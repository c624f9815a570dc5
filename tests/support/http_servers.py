"""Tiny loopback HTTP servers for tests that need a real URL: one answer for every request, and
a record of what was asked (method, path, whether an Authorization header came)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["reply", "serve"]


@contextmanager
def serve(handler: Callable[[BaseHTTPRequestHandler], None]) -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server answering every request with ``handler``; yields its URL and the
    paths it was asked for."""
    paths: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            paths.append(f"{self.command} {self.path} auth={'authorization' in self.headers}")
            handler(self)

        do_GET = do_POST = _any

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", paths
    finally:
        server.shutdown()
        server.server_close()


def reply(status: int, headers: dict[str, str], body: bytes = b"") -> Callable[
        [BaseHTTPRequestHandler], None]:
    def answer(request: BaseHTTPRequestHandler) -> None:
        request.send_response(status)
        for name, value in headers.items():
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)
    return answer
