"""``zone-file`` DNS: standard RFC 1035 zone files, served by an embedded responder.

Each change rewrites one zone file atomically under a per-zone lock and bumps the SOA
serial, so the files can also be loaded by BIND, Knot or NSD unchanged. A zone is either one
of ``providers.dns.zones`` (the longest that contains the name) or, when none are configured,
the longest stored zone that contains the name, else its parent (``acme.test`` for
``portal.acme.test``), created on first use and deleted again when its last tenant record goes.
A zone is never made below a stored one (it would shadow that zone's records); the embedded
responder serves by the same rule (`ZoneFiles.holding_zone`).
"""

from __future__ import annotations

from pathlib import Path

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.zone

from tenantops.config import DnsProviderSettings
from tenantops.errors import PermanentProviderError
from tenantops.provisioning.providers.base import (
    EmbeddedService,
    Outcome,
    Pending,
    Ready,
    Resource,
)
from tenantops.provisioning.providers.dns import (
    DnsPropagation,
    DnsProvider,
    DnsRecord,
    RecordType,
)
from tenantops.provisioning.providers.dns.responder import DnsResponder
from tenantops.provisioning.providers.dns.zones import ZoneFiles, rdata_text

__all__ = ["ZoneFileDns"]

NAMESERVER = "ns.tenantops.localhost."
HOSTMASTER = "hostmaster.tenantops.localhost."
_ZONE_TTL = 3600


class ZoneFileDns(DnsProvider):
    """Zone files under ``<directory>/zones``; the responder (if ``serve``) answers them."""

    name = "zone-file"

    def __init__(self, settings: DnsProviderSettings, directory: Path) -> None:
        super().__init__()
        self.settings = settings
        self.files = ZoneFiles(directory, settings.zones)
        self.responder = (
            DnsResponder(self.files, settings.host, settings.port) if settings.serve else None
        )

    def services(self) -> list[EmbeddedService]:
        return [self.responder] if self.responder is not None else []

    def zone_for(self, name: str, hint: str | None = None) -> str:
        """The zone that holds ``name`` (see the module docstring; ``hint`` names the zone to
        make when none holds it yet). `PermanentProviderError` when no zone may hold it."""
        try:
            return self.files.zone_for_writing(name, hint)
        except ValueError as exc:
            raise PermanentProviderError(str(exc)) from None

    def holds(self, name: str) -> bool:
        """A configured zone contains ``name``, or, with none configured, a stored zone does."""
        return self.files.holding_zone(name) is not None

    def _new_zone(self, zone: str) -> dns.zone.Zone:
        origin = dns.name.from_text(zone)
        content = dns.zone.Zone(origin, relativize=False)
        soa = dns.rdata.from_text(
            dns.rdataclass.IN, dns.rdatatype.SOA,
            f"{NAMESERVER} {HOSTMASTER} 1 3600 600 86400 300",
        )
        ns = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.NS, NAMESERVER)
        content.replace_rdataset(origin, dns.rdataset.from_rdata(_ZONE_TTL, soa))
        content.replace_rdataset(origin, dns.rdataset.from_rdata(_ZONE_TTL, ns))
        return content

    def _writable(self, zone: str) -> dns.zone.Zone:
        """A private copy of the stored zone (the cached one is shared with readers)."""
        stored = self.files.load(zone)
        if stored is None:
            return self._new_zone(zone)
        copy = dns.zone.Zone(stored.origin, relativize=False)
        for name, node in stored.nodes.items():
            for rdataset in node.rdatasets:
                copy.replace_rdataset(name, rdataset.copy())
        return copy

    @staticmethod
    def _bump_serial(content: dns.zone.Zone) -> None:
        assert content.origin is not None
        soa = content.get_rdataset(content.origin, dns.rdatatype.SOA)
        assert soa is not None
        content.replace_rdataset(
            content.origin,
            dns.rdataset.from_rdata(soa.ttl, soa[0].replace(serial=(soa[0].serial + 1) % 2**32)),
        )

    def _rdata(self, record: DnsRecord) -> dns.rdata.Rdata:
        rdtype = dns.rdatatype.from_text(record.type)
        if record.type == "TXT":
            text = '"' + record.value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        elif record.type == "CNAME":
            text = record.value.rstrip(".") + "."
        else:
            text = record.value
        try:
            return dns.rdata.from_text(dns.rdataclass.IN, rdtype, text)
        except dns.exception.DNSException as exc:
            raise PermanentProviderError(
                f"{record.type} value {record.value!r} for {record.name} is invalid: {exc}"
            ) from None

    def _ensure(self, resource: Resource) -> Outcome:
        if isinstance(resource, DnsPropagation):
            return self._check_answers(resource)
        assert isinstance(resource, DnsRecord)
        zone = self.zone_for(resource.name, resource.zone)
        owner = dns.name.from_text(resource.name)
        wanted = dns.rdataset.from_rdata(resource.ttl, self._rdata(resource))
        outputs = {"name": resource.name, "type": resource.type, "value": resource.value,
                   "zone": zone}
        with self.files.locked(zone):
            content = self._writable(zone)
            node = content.get_node(owner)
            if node is not None:
                current = node.get_rdataset(dns.rdataclass.IN, wanted.rdtype)
                if current is not None and current == wanted and current.ttl == wanted.ttl:
                    return Ready(outputs, changed=False)
                others = {dns.rdatatype.to_text(r.rdtype) for r in node.rdatasets} - {
                    resource.type}
                if others and (resource.type == "CNAME" or "CNAME" in others):
                    raise PermanentProviderError(
                        f"{resource.name} already has {', '.join(sorted(others))} records and a "
                        "CNAME cannot share a name with other records (RFC 1034 §3.6.2); "
                        f"remove them from zone {zone} first"
                    )
            content.replace_rdataset(owner, wanted)
            self._bump_serial(content)
            self.files.write(zone, content)
        return Ready(outputs, changed=True)

    def _remove(self, resource: Resource) -> Outcome:
        if isinstance(resource, DnsPropagation):
            return Ready({}, changed=False)
        assert isinstance(resource, DnsRecord)
        zone = self.zone_for(resource.name, resource.zone)
        owner = dns.name.from_text(resource.name)
        rdtype = dns.rdatatype.from_text(resource.type)
        outputs = {"name": resource.name, "type": resource.type, "zone": zone}
        with self.files.locked(zone):
            stored = self.files.load(zone)
            if stored is None or stored.get_rdataset(owner, rdtype) is None:
                return Ready(outputs, changed=False)
            content = self._writable(zone)
            content.delete_rdataset(owner, rdtype)
            assert content.origin is not None
            only_apex = all(name == content.origin for name in content.nodes)
            if only_apex and zone not in self.files.configured:
                self.files.delete(zone)
            else:
                self._bump_serial(content)
                self.files.write(zone, content)
        return Ready(outputs, changed=True)

    def _observe(self, resource: Resource) -> dict[str, object] | None:
        if isinstance(resource, DnsPropagation):
            answered = [r.key for r in resource.records if r.value in self.lookup(r.name, r.type)]
            return {"answered": answered}
        assert isinstance(resource, DnsRecord)
        values = self.files.resolve(resource.name, resource.type)
        if not values:
            return None
        return {"name": resource.name, "type": resource.type, "value": ",".join(values)}

    def _check_answers(self, resource: DnsPropagation) -> Outcome:
        missing = [
            f"{r.type} {r.name}" for r in resource.records
            if r.value not in self.lookup(r.name, r.type)
        ]
        if missing:
            return Pending(
                f"{', '.join(missing)} not answered yet by {self._server_label()}",
                self.settings.propagation_poll_seconds,
            )
        return Ready({"answered": [r.key for r in resource.records],
                      "server": self._server_label()}, changed=False)

    def _server_label(self) -> str:
        if self.responder is not None and self.responder.running:
            return f"{self.settings.host}:{self.responder.port}"
        if self.settings.serve:
            return f"{self.settings.host}:{self.settings.port}"
        return f"the zone files in {self.files.zones_dir}"

    def lookup(self, name: str, type: RecordType) -> list[str]:
        if not self.settings.serve:
            return self.files.resolve(name, type)
        port = self.responder.port if self.responder and self.responder.running else (
            self.settings.port)
        # A responder listening on every interface is still asked over loopback.
        host = "127.0.0.1" if self.settings.host in ("0.0.0.0", "") else (  # noqa: S104
            self.settings.host)
        query = dns.message.make_query(name, type)
        try:
            response = dns.query.udp(query, host, port=port, timeout=2.0)
        except (dns.exception.DNSException, OSError):
            return []
        rdtype = dns.rdatatype.from_text(type)
        return [
            rdata_text(rdata)
            for rrset in response.answer if rrset.rdtype == rdtype
            for rdata in rrset
        ]
