"""An embedded authoritative DNS server for the zone files (UDP and TCP, loopback).

It answers only for the zones in its folder (REFUSED otherwise), sets the AA flag, follows a
CNAME inside the zone, and answers NXDOMAIN/NODATA with the zone's SOA, so ``dig @127.0.0.1
-p PORT portal.acme.test CNAME`` and any resolver pointed at it behave as with BIND. Zone
rewrites are picked up on the next query.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from tenantops.provisioning.providers.dns.zones import ZoneFiles

__all__ = ["DnsResponder"]

log = logging.getLogger("tenantops.provisioning.dns.responder")

_MAX_UDP = 1232


class DnsResponder:
    """Serves ``zones`` on ``host:port`` (UDP and TCP); port 0 picks a free one."""

    name = "dns-responder"

    def __init__(self, zones: ZoneFiles, host: str = "127.0.0.1", port: int = 0) -> None:
        self.zones = zones
        self.host = host
        self._requested_port = port
        self._udp: socket.socket | None = None
        self._tcp: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    @classmethod
    def for_directory(cls, directory: Path, host: str, port: int) -> DnsResponder:
        return cls(ZoneFiles(directory), host, port)

    @property
    def port(self) -> int:
        if self._udp is None:
            raise RuntimeError("the DNS responder is not running; call start() first")
        port = self._udp.getsockname()[1]
        assert isinstance(port, int)
        return port

    @property
    def running(self) -> bool:
        return self._udp is not None

    def start(self) -> None:
        if self._udp is not None:
            return
        self._stopping.clear()
        for _ in range(20):
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind((self.host, self._requested_port))
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                tcp.bind((self.host, udp.getsockname()[1]))
            except OSError:
                udp.close()
                tcp.close()
                if self._requested_port:
                    raise
                continue
            break
        else:  # pragma: no cover - twenty collisions in a row
            raise OSError("no port free for both UDP and TCP")
        tcp.listen(64)
        udp.settimeout(0.2)
        tcp.settimeout(0.2)
        self._udp, self._tcp = udp, tcp
        self._threads = [
            threading.Thread(target=self._serve_udp, name="dns-udp", daemon=True),
            threading.Thread(target=self._serve_tcp, name="dns-tcp", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        log.info("DNS responder on %s:%d (UDP+TCP) serving %s", self.host, self.port,
                 self.zones.zones_dir)

    def stop(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=2)
        for sock in (self._udp, self._tcp):
            if sock is not None:
                sock.close()
        self._udp = self._tcp = None
        self._threads = []

    def __enter__(self) -> DnsResponder:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _serve_udp(self) -> None:
        assert self._udp is not None
        sock = self._udp
        while not self._stopping.is_set():
            try:
                wire, peer = sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            reply = self.answer(wire, max_size=_MAX_UDP)
            if reply is not None:
                try:
                    sock.sendto(reply, peer)
                except OSError as exc:
                    log.debug("could not answer %s: %s", peer, exc)

    def _serve_tcp(self) -> None:
        assert self._tcp is not None
        sock = self._tcp
        while not self._stopping.is_set():
            try:
                connection, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve_connection, args=(connection,), daemon=True,
                             name="dns-tcp-conn").start()

    def _serve_connection(self, connection: socket.socket) -> None:
        connection.settimeout(5)
        with connection:
            try:
                while True:
                    header = _read_exactly(connection, 2)
                    if header is None:
                        return
                    wire = _read_exactly(connection, struct.unpack("!H", header)[0])
                    if wire is None:
                        return
                    reply = self.answer(wire, max_size=65535)
                    if reply is None:
                        return
                    connection.sendall(struct.pack("!H", len(reply)) + reply)
            except OSError:
                return

    def answer(self, wire: bytes, *, max_size: int = 65535) -> bytes | None:
        """The response to one query in wire format; None for garbage (dropped)."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        response = dns.message.make_response(query)
        if query.opcode() != 0 or len(query.question) != 1:
            response.set_rcode(dns.rcode.NOTIMP if query.opcode() else dns.rcode.FORMERR)
            return response.to_wire(max_size=max_size)
        question = query.question[0]
        zone = self.zones.zone_of(question.name)
        if zone is None or question.rdclass != dns.rdataclass.IN:
            response.set_rcode(dns.rcode.REFUSED)
            return response.to_wire(max_size=max_size)
        response.flags |= dns.flags.AA
        qname, qtype = question.name, question.rdtype
        for _ in range(8):  # follow CNAMEs inside the zone, at most 8 deep
            node = zone.get_node(qname)
            if node is None:
                exists_below = any(n.is_subdomain(qname) for n in zone.nodes)
                if not exists_below:
                    response.set_rcode(dns.rcode.NXDOMAIN)
                break
            rdataset = node.get_rdataset(dns.rdataclass.IN, qtype)
            if rdataset is not None:
                response.answer.append(
                    dns.rrset.from_rdata_list(qname, rdataset.ttl, list(rdataset)))
                break
            cname = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.CNAME)
            if cname is None or qtype == dns.rdatatype.CNAME:
                break
            response.answer.append(dns.rrset.from_rdata_list(qname, cname.ttl, list(cname)))
            target = cname[0].target
            if zone.origin is None or not target.is_subdomain(zone.origin):
                return response.to_wire(max_size=max_size)
            qname = target
        origin = zone.origin
        if not response.answer and origin is not None:
            soa = zone.get_rdataset(origin, dns.rdatatype.SOA)
            if soa is not None:
                response.authority.append(dns.rrset.from_rdata_list(origin, soa.ttl, list(soa)))
        return response.to_wire(max_size=max_size)


def _read_exactly(connection: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data
