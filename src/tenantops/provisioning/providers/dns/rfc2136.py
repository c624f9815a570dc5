"""``rfc2136`` DNS: dynamic updates (RFC 2136) signed with TSIG, for BIND, Knot, PowerDNS...

Each `DnsRecord` is one UPDATE message to the zone's primary that replaces the whole record
set (delete the name/type, add the wanted record), so sending it twice changes nothing; before
sending, the primary is asked whether the set already holds exactly the wanted value, and
when it does no update is sent (the zone's serial stays put). After an update the primary is
asked again: servers silently skip a CNAME next to other records (RFC 2136 §3.4.2.2), and
that must not pass for success.

Records are built from rdata objects, never from text, so a value cannot smuggle a second
record into the update; names and CNAME targets must be hostnames and lie inside the zone.

`DnsPropagation` asks every authoritative server of the zone directly (the NS records of the
zone and their addresses, or ``nameservers`` from the config), not a recursive resolver, and
is `Pending` until each of them answers every record.

Errors name the server, the zone and the key, and say what to fix: REFUSED (the key may not
update the zone), NOTAUTH (the server is not authoritative for it or did not accept the
key), BADKEY / BADSIG (the server does not know the key, or its secret differs).
The TSIG secret is read on first use and never logged or put in a message.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import socket
from pathlib import Path
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.rrset
import dns.tsig
import dns.update

from tenantops.config import DnsProviderSettings, Rfc2136DnsSettings
from tenantops.errors import PermanentProviderError, TransientProviderError
from tenantops.provisioning.providers.base import Outcome, Pending, Ready, Resource
from tenantops.provisioning.providers.dns import (
    DnsPropagation,
    DnsProvider,
    DnsRecord,
    RecordType,
)
from tenantops.provisioning.providers.dns.zones import containing_zone, rdata_text
from tenantops.provisioning.spec import normalize_hostname

__all__ = ["Rfc2136Dns"]

_ALGORITHMS = {
    "hmac-sha256": dns.tsig.HMAC_SHA256,
    "hmac-sha384": dns.tsig.HMAC_SHA384,
    "hmac-sha512": dns.tsig.HMAC_SHA512,
}
_TRANSIENT_RCODES = frozenset({dns.rcode.SERVFAIL})


class Rfc2136Dns(DnsProvider):
    """Record sets on the primary ``settings.rfc2136.server``, updated with a TSIG key.

    A name goes into the longest of ``settings.zones`` that contains it, as with the
    ``zone-file`` provider. With no zone configured, no name does: RFC 2136 cannot create a
    zone, and guessing one (the name's parent, say) could write into a zone the server holds
    for someone else, so every custom domain is then customer-managed.
    """

    name = "rfc2136"

    def __init__(self, settings: DnsProviderSettings) -> None:
        super().__init__()
        self.settings = settings
        self.options: Rfc2136DnsSettings = settings.rfc2136
        self._configured = tuple(z.lower().rstrip(".") for z in settings.zones)
        self._key: dns.tsig.Key | None = None

    @property
    def _server_label(self) -> str:
        return f"{self.options.server}:{self.options.port}"

    def zone_for(self, name: str) -> str:
        """The zone that holds ``name``; `PermanentProviderError` when none may."""
        zone = containing_zone(name, self._configured)
        if zone is not None:
            return zone
        if self._configured:
            raise PermanentProviderError(
                f"no zone in providers.dns.zones ({', '.join(self._configured)}) contains "
                f"{name.lower().rstrip('.')}; add its zone there or use a domain inside one of them"
            )
        raise PermanentProviderError(
            f"providers.dns.zones is empty, so the rfc2136 provider writes no record "
            f"({name.lower().rstrip('.')}): list the zones tenantops may update there; a domain "
            "outside them is customer-managed"
        )

    def _tsig_key(self) -> dns.tsig.Key:
        """The key, read on first use (a file may only be readable by the worker)."""
        if self._key is not None:
            return self._key
        options = self.options
        if options.tsig_secret is not None:
            secret = options.tsig_secret.get_secret_value().strip()
            origin = "providers.dns.rfc2136.tsig_secret"
        elif options.tsig_secret_file is not None:
            origin = f"providers.dns.rfc2136.tsig_secret_file ({options.tsig_secret_file})"
            try:
                secret = Path(options.tsig_secret_file).read_text().strip()
            except OSError as exc:
                raise PermanentProviderError(
                    f"cannot read the TSIG secret from {origin}: {exc.strerror}; check the "
                    "path and that the worker may read it"
                ) from None
        else:
            raise PermanentProviderError(
                f"no TSIG secret for key {options.tsig_key_name!r}: set "
                "providers.dns.rfc2136.tsig_secret or tsig_secret_file; tenantops never sends "
                "unsigned updates"
            )
        try:
            raw = base64.b64decode(secret, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) < 16:
            raise PermanentProviderError(
                f"the TSIG secret in {origin} is not a base64 key of at least 16 bytes; "
                "copy the 'secret' of the key from tsig-keygen or keymgr"
            )
        self._key = dns.tsig.Key(
            dns.name.from_text(options.tsig_key_name), raw, _ALGORITHMS[options.tsig_algorithm]
        )
        return self._key

    def _rdata(self, record: DnsRecord) -> dns.rdata.Rdata:
        """The record's data as an object; values that are not what the type holds are
        refused here, before any server is contacted."""
        IN = dns.rdataclass.IN
        if record.type == "CNAME":
            try:
                target = normalize_hostname(record.value)
            except ValueError as exc:
                raise PermanentProviderError(
                    f"CNAME target {record.value!r} for {record.name} {exc}"
                ) from None
            # A normalised hostname is letters, digits, hyphens and dots: safe as text.
            return dns.rdata.from_text(IN, dns.rdatatype.CNAME, f"{target}.")
        if record.type == "TXT":
            if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in record.value):
                raise PermanentProviderError(
                    f"TXT value for {record.name} contains control characters; refusing it"
                )
            return dns.rdtypes.ANY.TXT.TXT(IN, dns.rdatatype.TXT, [record.value.encode()])
        try:
            address = ipaddress.IPv4Address(record.value)
        except ValueError:
            raise PermanentProviderError(
                f"A value {record.value!r} for {record.name} is not an IPv4 address"
            ) from None
        return dns.rdata.from_text(IN, dns.rdatatype.A, str(address))

    def _target(self, record: DnsRecord) -> tuple[str, dns.name.Name, dns.rdata.Rdata]:
        zone = self.zone_for(record.name)
        owner = dns.name.from_text(record.name.lower())
        if record.type == "CNAME" and record.name.lower().rstrip(".") == zone:
            raise PermanentProviderError(
                f"{record.name} is the apex of zone {zone}, which cannot hold a CNAME "
                "(it has SOA and NS records); use a subdomain"
            )
        return zone, owner, self._rdata(record)

    def _ensure(self, resource: Resource) -> Outcome:
        if isinstance(resource, DnsPropagation):
            return self._check_answers(resource)
        assert isinstance(resource, DnsRecord)
        zone, owner, rdata = self._target(resource)
        key = self._tsig_key()
        outputs = {"name": resource.name, "type": resource.type, "value": resource.value,
                   "zone": zone, "server": self._server_label}
        wanted = dns.rdataset.from_rdata(resource.ttl, rdata)
        current = self._query(self.options.server, self.options.port, owner, resource.type)
        if current is not None and current == wanted and current.ttl == wanted.ttl:
            return Ready(outputs, changed=False)
        update = dns.update.UpdateMessage(zone, keyring=key, keyname=key.name,
                                          keyalgorithm=key.algorithm)
        update.replace(owner, wanted)
        self._send(update, zone, resource.key)
        stored = self._query(self.options.server, self.options.port, owner, resource.type)
        if stored is None or stored != wanted:
            raise PermanentProviderError(
                f"{self._server_label} accepted the update of {resource.type} {resource.name} "
                f"in zone {zone} but does not serve it; a CNAME cannot share its name with "
                "other records (RFC 1034 §3.6.2), and servers skip such updates silently. "
                f"Check which records exist at {resource.name} (dig @{self.options.server} "
                f"-p {self.options.port} {resource.name} ANY) and remove the conflicting ones"
            )
        return Ready(outputs, changed=True)

    def _remove(self, resource: Resource) -> Outcome:
        if isinstance(resource, DnsPropagation):
            return Ready({}, changed=False)
        assert isinstance(resource, DnsRecord)
        zone, owner, _ = self._target(resource)
        key = self._tsig_key()
        outputs = {"name": resource.name, "type": resource.type, "zone": zone}
        if self._query(self.options.server, self.options.port, owner, resource.type) is None:
            return Ready(outputs, changed=False)
        update = dns.update.UpdateMessage(zone, keyring=key, keyname=key.name,
                                          keyalgorithm=key.algorithm)
        update.delete(owner, dns.rdatatype.from_text(resource.type))
        self._send(update, zone, resource.key)
        return Ready(outputs, changed=True)

    def _observe(self, resource: Resource) -> dict[str, Any] | None:
        if isinstance(resource, DnsPropagation):
            answered = [r.key for r in resource.records if r.value in self.lookup(r.name, r.type)]
            return {"answered": answered}
        assert isinstance(resource, DnsRecord)
        _, owner, _ = self._target(resource)
        current = self._query(self.options.server, self.options.port, owner, resource.type)
        if current is None:
            return None
        return {"name": resource.name, "type": resource.type,
                "value": ",".join(rdata_text(r) for r in current), "ttl": current.ttl}

    def _check_answers(self, resource: DnsPropagation) -> Outcome:
        missing: list[str] = []
        servers: set[str] = set()
        for record in resource.records:
            zone, owner, _ = self._target(record)
            for host, port in self._authoritative_servers(zone):
                servers.add(f"{host}:{port}")
                try:
                    answer = self._query(host, port, owner, record.type)
                except TransientProviderError:
                    answer = None
                values = [] if answer is None else [rdata_text(r) for r in answer]
                if record.value not in values:
                    missing.append(f"{record.type} {record.name} at {host}:{port}")
        if missing:
            return Pending(f"not answered yet: {', '.join(missing)}",
                           self.settings.propagation_poll_seconds)
        return Ready({"answered": [r.key for r in resource.records],
                      "servers": sorted(servers)}, changed=False)

    def lookup(self, name: str, type: RecordType) -> list[str]:
        """Values every authoritative server of the zone answers for ``name``/``type``."""
        zone = self.zone_for(name)
        owner = dns.name.from_text(name.lower())
        common: list[str] | None = None
        for host, port in self._authoritative_servers(zone):
            try:
                answer = self._query(host, port, owner, type)
            except TransientProviderError:
                return []
            values = [] if answer is None else [rdata_text(r) for r in answer]
            common = values if common is None else [v for v in common if v in values]
        return common or []

    def _authoritative_servers(self, zone: str) -> list[tuple[str, int]]:
        """``nameservers`` from the config, else the zone's NS records (asked of the primary)
        with their addresses from the glue, the primary, or the system resolver."""
        port = self.options.port
        if self.options.nameservers:
            return [_host_port(entry, port) for entry in self.options.nameservers]
        origin = dns.name.from_text(zone)
        response = self._exchange(
            dns.message.make_query(origin, dns.rdatatype.NS), self.options.server, port
        )
        targets = [
            rdata.target for rrset in response.answer if rrset.rdtype == dns.rdatatype.NS
            for rdata in rrset
        ]
        if not targets:
            raise PermanentProviderError(
                f"{self._server_label} answers no NS records for zone {zone}; is it "
                "authoritative for the zone? Set providers.dns.rfc2136.nameservers otherwise"
            )
        glue = {
            rrset.name: [r.address for r in rrset] for rrset in response.additional
            if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA)
        }
        servers: list[tuple[str, int]] = []
        for target in targets:
            addresses = glue.get(target) or self._addresses(target, origin)
            servers.extend((address, port) for address in addresses)
        if not servers:
            raise PermanentProviderError(
                f"no address found for the name servers of zone {zone} "
                f"({', '.join(t.to_text() for t in targets)}); set "
                "providers.dns.rfc2136.nameservers"
            )
        return sorted(set(servers))

    def _addresses(self, target: dns.name.Name, origin: dns.name.Name) -> list[str]:
        if target.is_subdomain(origin):
            found = self._query(self.options.server, self.options.port, target, "A")
            return [r.address for r in found] if found is not None else []
        try:
            infos = socket.getaddrinfo(target.to_text(omit_final_dot=True), None,
                                       proto=socket.IPPROTO_TCP)
        except OSError:
            return []
        return sorted({str(info[4][0]) for info in infos})

    def _query(
        self, host: str, port: int, owner: dns.name.Name, type: str
    ) -> dns.rdataset.Rdataset | None:
        """The record set the server itself holds (no recursion), or None."""
        query = dns.message.make_query(owner, dns.rdatatype.from_text(type))
        query.flags &= ~dns.flags.RD
        response = self._exchange(query, host, port)
        rcode = response.rcode()
        if rcode in (dns.rcode.REFUSED, dns.rcode.NOTAUTH):
            raise PermanentProviderError(
                f"{host}:{port} answered {dns.rcode.to_text(rcode)} to a query for "
                f"{owner.to_text(omit_final_dot=True)} {type}: it is not authoritative for the "
                "zone holding that name. Check providers.dns.zones and that the server is the "
                "zone's primary (or one of its name servers)"
            )
        if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            raise TransientProviderError(
                f"{host}:{port} answered {dns.rcode.to_text(rcode)} to a query for "
                f"{owner.to_text(omit_final_dot=True)} {type}; will retry"
            )
        rdtype = dns.rdatatype.from_text(type)
        for rrset in response.answer:
            if rrset.name == owner and rrset.rdtype == rdtype:
                return rrset
        return None

    def _exchange(self, message: dns.message.Message, host: str, port: int) -> dns.message.Message:
        try:
            return dns.query.tcp(message, host, port=port, timeout=self.options.timeout_seconds)
        except dns.exception.Timeout:
            raise TransientProviderError(
                f"{host}:{port} did not answer within {self.options.timeout_seconds:g} s; "
                "will retry"
            ) from None
        except OSError as exc:
            raise TransientProviderError(
                f"cannot reach DNS server {host}:{port} ({exc.strerror or exc}); will retry"
            ) from None

    def _send(self, update: dns.update.UpdateMessage, zone: str, key_text: str) -> None:
        """Send a signed update to the primary; translate every refusal into what to fix."""
        server, key_name = self._server_label, self.options.tsig_key_name
        try:
            response = self._exchange(update, self.options.server, self.options.port)
        except dns.tsig.PeerBadKey:
            raise PermanentProviderError(
                f"{server} does not accept TSIG key {key_name!r} for zone {zone} (BADKEY): "
                "the server does not know a key of that name and algorithm, or (Knot) the "
                "zone's update ACL does not name it. Check the key name and algorithm in "
                "providers.dns.rfc2136 against the server's configuration"
            ) from None
        except dns.tsig.PeerBadSignature:
            raise PermanentProviderError(
                f"{server} rejected the signature made with TSIG key {key_name!r} (BADSIG): "
                "the secret in providers.dns.rfc2136 differs from the server's; copy the "
                "key's secret from the server again"
            ) from None
        except dns.tsig.PeerBadTime:
            raise PermanentProviderError(
                f"{server} rejected the signature's time (BADTIME): the clocks of this "
                "machine and the DNS server differ by more than 5 minutes; synchronise them"
            ) from None
        except dns.tsig.PeerError as exc:
            raise PermanentProviderError(
                f"{server} rejected TSIG key {key_name!r} for zone {zone}: {exc}"
            ) from None
        except dns.exception.FormError as exc:
            if "TSIG" not in str(exc):
                raise PermanentProviderError(
                    f"{server} sent a malformed answer to the update of zone {zone}: {exc}"
                ) from None
            raise PermanentProviderError(
                f"{server} answered the update of zone {zone} without signing it, which "
                "servers do when they are not authoritative for the zone (NOTAUTH) or do not "
                f"know key {key_name!r}; check that {server} is the zone's primary and that "
                "the zone name is right"
            ) from None
        rcode = response.rcode()
        if rcode == dns.rcode.NOERROR:
            return
        name = dns.rcode.to_text(rcode)
        if rcode in _TRANSIENT_RCODES:
            raise TransientProviderError(
                f"{server} answered {name} to the update of {key_text} in zone {zone}; "
                "will retry"
            )
        advice = {
            dns.rcode.REFUSED: (
                f"the server refuses updates of zone {zone} with key {key_name!r}: allow "
                f"them (BIND: allow-update {{ key \"{key_name}\"; }}; or update-policy; Knot: "
                "an acl with action: update and this key)"
            ),
            dns.rcode.NOTAUTH: (
                f"the server is not authoritative for zone {zone}, or did not accept the "
                f"update's signature with key {key_name!r}; check the zone name, that "
                f"{server} is its primary, and the key"
            ),
            dns.rcode.NOTZONE: (
                f"a name in the update is outside zone {zone}; check providers.dns.zones"
            ),
        }.get(rcode, "see the server's log for the reason")
        raise PermanentProviderError(
            f"{server} answered {name} to the update of {key_text}: {advice}"
        )


def _host_port(entry: str, default_port: int) -> tuple[str, int]:
    text = entry.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default_port
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, int(port)
    return text, default_port
