"""Read a zone tenantops does not hold, as the rest of the world sees it: find the zone that
holds a name and its name servers through recursive resolvers, then ask each name server
directly (no recursion, authoritative answers only).

This is how tenantops sees the records of a customer-managed domain: the CNAME and TXT
records the customer publishes in their own DNS. A recursive resolver alone would do, but its
cache can say a record exists (or not) for as long as the record's TTL after it changed; the
authoritative servers say what is published now, and every one of them must answer, because
App Service, a certificate authority or a visitor may ask any of them.

Nothing here raises for what the DNS answers: a zone that cannot be found, a server that does
not answer or a record that is missing are findings (`RecordCheck.problem`) that the caller
reports while it keeps waiting.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver

from tenantops.config import AuthoritativeDnsSettings
from tenantops.provisioning.providers.dns.zones import rdata_text

__all__ = ["AuthoritativeServers", "RecordCheck", "ZoneServers"]


class _LookupProblem(Exception):
    """The DNS did not tell what was asked (no zone found, no server answered)."""


@dataclass(frozen=True)
class ZoneServers:
    """The zone that holds a name, and its name servers as ``host:port``."""

    zone: str
    servers: tuple[str, ...]


@dataclass(frozen=True)
class RecordCheck:
    """What the authoritative servers answer for one record: ``answers`` by server (empty
    when the server holds no such record), or ``problem`` when they could not be asked."""

    name: str
    type: str
    expected: str
    zone: str | None
    answers: dict[str, list[str]]
    problem: str | None = None

    @property
    def seen(self) -> bool:
        """Every authoritative server answers the expected value."""
        return self.problem is None and bool(self.answers) and all(
            _same(self.type, self.expected, values) for values in self.answers.values())

    def describe(self) -> str:
        """``TXT asuid.x = v (ns1:53 answers nothing; ns2:53 answers 'w')``-style text."""
        wanted = (f"CNAME {self.name} -> {self.expected}" if self.type == "CNAME"
                  else f"{self.type} {self.name} = {self.expected}")
        if self.problem is not None:
            return f"{wanted} ({self.problem})"
        heard = "; ".join(
            f"{server} answers {', '.join(repr(v) for v in values) if values else 'nothing'}"
            for server, values in sorted(self.answers.items())
            if not _same(self.type, self.expected, values))
        return f"{wanted} ({heard})" if heard else wanted


def _same(record_type: str, expected: str, values: Sequence[str]) -> bool:
    if record_type == "CNAME":
        return expected.lower().rstrip(".") in [v.lower().rstrip(".") for v in values]
    return expected in values


class AuthoritativeServers:
    """Finds zones and name servers through ``settings.resolvers`` (or the system's), and
    asks the name servers on ``settings.port``. No I/O until asked."""

    def __init__(self, settings: AuthoritativeDnsSettings) -> None:
        self.settings = settings

    # -- the resolvers ------------------------------------------------------------------

    def _resolvers(self) -> list[tuple[str, int]]:
        if self.settings.resolvers:
            return [_host_port(entry, 53) for entry in self.settings.resolvers]
        try:
            system = dns.resolver.Resolver()
        except dns.resolver.NoResolverConfiguration as exc:
            raise _LookupProblem(
                "no resolver is configured (/etc/resolv.conf lists none); set "
                f"providers.dns.authoritative.resolvers ({exc})") from None
        return [(str(address), int(system.port)) for address in system.nameservers]

    def _resolve(self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType
                 ) -> dns.message.Message:
        """Ask the resolvers in turn; the first answer that is not a server failure."""
        failures: list[str] = []
        for host, port in self._resolvers():
            query = dns.message.make_query(name, rdtype)
            try:
                response, _ = dns.query.udp_with_fallback(
                    query, host, port=port, timeout=self.settings.timeout_seconds)
            except (dns.exception.DNSException, OSError) as exc:
                failures.append(f"{host}:{port} {type(exc).__name__}")
                continue
            if response.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
                return response
            failures.append(f"{host}:{port} {dns.rcode.to_text(response.rcode())}")
        raise _LookupProblem(
            f"no resolver answered {name.to_text(omit_final_dot=True)} "
            f"{dns.rdatatype.to_text(rdtype)} ({'; '.join(failures) or 'none configured'})")

    # -- zones and their servers ----------------------------------------------------------

    def zone_of(self, name: str) -> str:
        """The zone that holds ``name`` (from the SOA the resolvers report, walking up)."""
        wanted = dns.name.from_text(name)
        candidate = wanted
        while len(candidate) > 2:  # stop above a top-level domain: no customer's zone is one
            response = self._resolve(candidate, dns.rdatatype.SOA)
            for rrset in response.answer:
                if rrset.rdtype == dns.rdatatype.SOA and rrset.name == candidate:
                    return candidate.to_text(omit_final_dot=True)
            for rrset in response.authority:
                if (rrset.rdtype == dns.rdatatype.SOA and candidate.is_subdomain(rrset.name)
                        and len(rrset.name) > 2):
                    return rrset.name.to_text(omit_final_dot=True)
            candidate = candidate.parent()
        raise _LookupProblem(
            f"no zone holds {name}: the resolvers know no zone of it below the top-level "
            "domain; is the domain registered and delegated?")

    def servers_of(self, zone: str) -> tuple[str, ...]:
        """The zone's name servers (its NS records) as ``address:port``."""
        origin = dns.name.from_text(zone)
        response = self._resolve(origin, dns.rdatatype.NS)
        targets = [rdata.target for rrset in response.answer
                   if rrset.rdtype == dns.rdatatype.NS and rrset.name == origin
                   for rdata in rrset]
        if not targets:
            raise _LookupProblem(f"the resolvers answer no NS records for zone {zone}")
        glue = {rrset.name: [rdata_text(r) for r in rrset] for rrset in response.additional
                if rrset.rdtype == dns.rdatatype.A}
        servers: set[str] = set()
        for target in targets:
            for address in glue.get(target) or self._addresses(target):
                servers.add(f"{address}:{self.settings.port}")
        if not servers:
            raise _LookupProblem(
                f"no address found for the name servers of zone {zone} "
                f"({', '.join(t.to_text(omit_final_dot=True) for t in targets)})")
        return tuple(sorted(servers))

    def _addresses(self, target: dns.name.Name) -> list[str]:
        try:
            response = self._resolve(target, dns.rdatatype.A)
        except _LookupProblem:
            response = None
        found = [] if response is None else [
            rdata_text(r) for rrset in response.answer
            if rrset.rdtype == dns.rdatatype.A for r in rrset]
        if found:
            return found
        try:  # a name server the resolvers cannot place may still be in /etc/hosts
            infos = socket.getaddrinfo(target.to_text(omit_final_dot=True), None,
                                       family=socket.AF_INET, proto=socket.IPPROTO_UDP)
        except OSError:
            return []
        return sorted({str(info[4][0]) for info in infos})

    def locate(self, name: str) -> ZoneServers:
        zone = self.zone_of(name)
        return ZoneServers(zone, self.servers_of(zone))

    # -- asking the name servers ----------------------------------------------------------

    def _ask(self, server: str, name: str, record_type: str) -> list[str]:
        host, port = _host_port(server, self.settings.port)
        query = dns.message.make_query(name, dns.rdatatype.from_text(record_type))
        query.flags &= ~dns.flags.RD
        try:
            response, _ = dns.query.udp_with_fallback(
                query, host, port=port, timeout=self.settings.timeout_seconds)
        except (dns.exception.DNSException, OSError) as exc:
            raise _LookupProblem(f"{server} did not answer ({type(exc).__name__})") from None
        rcode = response.rcode()
        if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            raise _LookupProblem(f"{server} answered {dns.rcode.to_text(rcode)}")
        if not response.flags & dns.flags.AA:
            raise _LookupProblem(f"{server} is not authoritative for {name}")
        owner = dns.name.from_text(name)
        rdtype = dns.rdatatype.from_text(record_type)
        return [rdata_text(r) for rrset in response.answer
                if rrset.name == owner and rrset.rdtype == rdtype for r in rrset]

    def check(self, name: str, record_type: str, expected: str,
              located: dict[str, ZoneServers] | None = None) -> RecordCheck:
        """What every authoritative server of ``name``'s zone answers for it. ``located``
        caches zones found by earlier checks of the same round (keyed by the name's parent)."""
        key = name.split(".", 1)[-1]
        try:
            where = located.get(key) if located is not None else None
            if where is None:
                where = self.locate(name)
                if located is not None:
                    located[key] = where
        except _LookupProblem as exc:
            return RecordCheck(name, record_type, expected, None, {}, str(exc))
        answers: dict[str, list[str]] = {}
        problems: list[str] = []
        for server in where.servers:
            try:
                answers[server] = self._ask(server, name, record_type)
            except _LookupProblem as exc:
                problems.append(str(exc))
        return RecordCheck(name, record_type, expected, where.zone, answers,
                           "; ".join(problems) if problems else None)

    def lookup(self, name: str, record_type: str) -> list[str]:
        """The values every authoritative server of the zone answers (empty when any of them
        cannot be asked, or the zone cannot be found)."""
        try:
            where = self.locate(name)
            common: list[str] | None = None
            for server in where.servers:
                values = self._ask(server, name, record_type)
                common = values if common is None else [v for v in common if v in values]
        except _LookupProblem:
            return []
        return common or []


def _host_port(entry: str, default_port: int) -> tuple[str, int]:
    text = entry.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default_port
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, int(port)
    return text, default_port
