"""A client for the local TLS edge: handshake with SNI, return the certificate and reply."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass

from cryptography import x509


@dataclass(frozen=True)
class EdgeReply:
    certificate: x509.Certificate
    status: int
    body: str


def fetch(port: int, hostname: str, ca_pem: bytes, path: str = "/") -> EdgeReply:
    """GET ``path`` from the edge on 127.0.0.1:``port`` with SNI = ``hostname``, trusting
    only ``ca_pem`` and checking the hostname (ssl.SSLError when either fails)."""
    context = ssl.create_default_context(cadata=ca_pem.decode())
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname=hostname) as tls:
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {hostname}\r\nConnection: close\r\n\r\n"
                    .encode())
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
    head, _, body = data.decode().partition("\r\n\r\n")
    return EdgeReply(x509.load_der_x509_certificate(der), int(head.split()[1]), body)
