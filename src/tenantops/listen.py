"""Opening a listening socket for a server, with an error that says what to change."""

from __future__ import annotations

import socket

from tenantops.errors import ConfigError

__all__ = ["listen"]


def listen(host: str, port: int, *, setting: str) -> socket.socket:
    """A non-blocking TCP socket listening on ``host:port`` (port 0: any free one).

    Raises `ConfigError` naming ``setting`` (the option or setting that chose the port) when
    the address is taken or not available."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on accepted
    # sockets whose protocol says TCP. With it on, a response written as headers then body
    # waits for the client's delayed ACK: 40 ms per response on a keep-alive connection.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror}; choose another port with "
            f"{setting} (0 picks a free one)"
        ) from exc
    sock.listen(1024)
    sock.setblocking(False)
    return sock
