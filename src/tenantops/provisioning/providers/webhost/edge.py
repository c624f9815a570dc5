"""The TLS edge: one listener, a certificate per hostname chosen by SNI, bytes forwarded to
the sample app.

A handshake for a hostname that is not bound with SNI (or without SNI at all) is refused
with the ``unrecognized_name`` alert, so nothing is served under a certificate for another
name. A suspended binding completes the handshake with its own certificate, and every
request on it is answered ``503 Service Unavailable`` with a page saying the tenant is
suspended; nothing reaches the tenant app. Bindings and certificates are read from
`EdgeState` on each handshake (cached by file change), so a binding made by a worker in
another process is served at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
from concurrent.futures import Future
from typing import TYPE_CHECKING

from tenantops.provisioning.providers.webhost.state import EdgeState

if TYPE_CHECKING:
    from tenantops.provisioning.providers.webhost.sample_app import SampleApp

__all__ = ["SUSPENDED_PAGE", "TlsEdge"]

log = logging.getLogger("tenantops.provisioning.edge")

_REFUSE = ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
_REQUEST_HEAD_SECONDS = 10.0
SUSPENDED_PAGE = (
    b"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
    b"<title>Service suspended</title></head><body><h1>This service is suspended</h1>"
    b"<p>The account that runs it is suspended. Please contact its administrator.</p>"
    b"</body></html>\n")


class _HostContext(ssl.SSLContext):
    """The TLS context of one bound hostname; ``suspended`` while its tenant is."""

    suspended = False


class TlsEdge:
    """TLS on ``host:port`` (port 0 picks a free one), forwarding to ``app``."""

    name = "tls-edge"

    def __init__(self, host: str, port: int, state: EdgeState, app: SampleApp | None) -> None:
        self.host = host
        self._requested_port = port
        self.state = state
        self.app = app
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._contexts: dict[str, tuple[tuple[int, int, str, bool], ssl.SSLContext]] = {}

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the TLS edge is not running; call start() first")
        port = self._server.sockets[0].getsockname()[1]
        assert isinstance(port, int)
        return port

    def start(self) -> None:
        if self._server is not None:
            return
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="tls-edge", daemon=True)
        self._thread.start()
        started: Future[asyncio.Server] = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, self.host, self._requested_port,
                                 ssl=self._base_context(), reuse_address=True),
            loop,
        )
        self._server = started.result(timeout=10)
        log.info("TLS edge on %s:%d", self.host, self.port)

    def stop(self) -> None:
        loop, server = self._loop, self._server
        if loop is not None and server is not None:
            async def close() -> None:
                server.close()
                await asyncio.wait_for(server.wait_closed(), 2)

            try:
                asyncio.run_coroutine_threadsafe(close(), loop).result(timeout=5)
            except (TimeoutError, asyncio.TimeoutError):  # pragma: no cover
                log.warning("the TLS edge did not close its connections in time")
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5)
        if loop is not None:
            loop.close()
        self._loop = self._thread = self._server = None

    def _base_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.sni_callback = self._select
        return context

    def _select(
        self, connection: ssl.SSLObject | ssl.SSLSocket, server_name: str | None,
        _base: ssl.SSLContext,
    ) -> int | None:
        if not server_name:
            return _REFUSE
        context = self._context_for(server_name.lower().rstrip("."))
        if context is None:
            log.info("TLS edge refused a handshake for unbound hostname %s", server_name)
            return _REFUSE
        connection.context = context
        return None

    def _context_for(self, hostname: str) -> ssl.SSLContext | None:
        binding = self.state.binding(hostname)
        if binding is None or binding.ssl_state != "SniEnabled" or not binding.thumbprint:
            return None
        cert_path, _ = self.state.certificate_paths(hostname)
        try:
            stat = cert_path.stat()
        except FileNotFoundError:
            return None
        stamp = (stat.st_ino, stat.st_mtime_ns, binding.thumbprint, binding.suspended)
        cached = self._contexts.get(hostname)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        issued = self.state.certificate(hostname)
        if issued is None or issued.thumbprint != binding.thumbprint:
            return None
        context = _HostContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(issued.cert_path, issued.key_path)
        context.suspended = binding.suspended
        self._contexts[hostname] = (stamp, context)
        return context

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ssl_object = writer.get_extra_info("ssl_object")
        context = getattr(ssl_object, "context", None)
        if isinstance(context, _HostContext) and context.suspended:
            await _answer_suspended(reader, writer)
            return
        if self.app is None:
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n"
                         b"Connection: close\r\n\r\n")
            await writer.drain()
            writer.close()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                self.app.host, self.app.port)
        except OSError as exc:
            log.warning("TLS edge could not reach the tenant app: %s", exc)
            writer.close()
            return
        await asyncio.gather(
            _pipe(reader, upstream_writer), _pipe(upstream_reader, writer),
            return_exceptions=True,
        )


async def _answer_suspended(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read the request's head, answer 503 with the suspended page, close."""
    with contextlib.suppress(asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                             asyncio.TimeoutError, TimeoutError, OSError):
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _REQUEST_HEAD_SECONDS)
    head = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/html; charset=utf-8\r\n"
            b"Cache-Control: no-store\r\nConnection: close\r\n"
            b"Content-Length: " + str(len(SUSPENDED_PAGE)).encode() + b"\r\n\r\n")
    try:
        writer.write(head + SUSPENDED_PAGE)
        await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        try:
            if writer.can_write_eof():
                writer.write_eof()
        except (OSError, RuntimeError):
            pass
        writer.close()
