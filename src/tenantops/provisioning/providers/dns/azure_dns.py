"""``azure-dns``: CNAME, TXT and A record sets in Azure DNS zones, through azure-mgmt-dns
(api-version 2018-05-01).

Each `DnsRecord` is one record set holding exactly one value. Writes use ETags so that a
concurrent writer is never silently overwritten (shared reference provisioning-apis.md §3
"ETags"):

- the set is read first; when it already holds the value and TTL, nothing is written;
- an absent set is created with ``If-None-Match: *`` (fails if someone created it meanwhile);
- a set holding something else is replaced with ``If-Match: <the ETag just read>`` (fails if
  it changed since);
- on 412 Precondition Failed the set is read again and the decision made again, up to three
  times; then the step fails as transient, to be retried by the engine.

Removal deletes with ``If-Match`` the same way and succeeds when the set is already gone.
`DnsPropagation` is `Pending` until every Azure name server of the zone (from the zone's
``nameServers``) answers every record; with ``check_name_servers = false`` the record sets
ARM reports are trusted instead (for networks that cannot reach the name servers).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rdatatype
from azure.core.exceptions import HttpResponseError
from azure.mgmt.dns import DnsManagementClient
from azure.mgmt.dns.models import ARecord, CnameRecord, RecordSet, TxtRecord

from tenantops.config import AzureDnsSettings, DnsProviderSettings, Settings
from tenantops.errors import PermanentProviderError, TransientProviderError
from tenantops.provisioning.providers.azure.calls import azure_call, azure_get
from tenantops.provisioning.providers.azure.connection import AzureConnection
from tenantops.provisioning.providers.azure.errors import translate_azure_error
from tenantops.provisioning.providers.base import Outcome, Pending, Ready, Resource
from tenantops.provisioning.providers.dns import (
    DnsPropagation,
    DnsProvider,
    DnsRecord,
    RecordType,
)
from tenantops.provisioning.providers.dns.zones import rdata_text

__all__ = ["AzureDns", "NameServerLookup", "query_name_servers"]

NameServerLookup = Callable[[str, RecordType, Sequence[str]], list[str]]
"""(fully qualified name, type, the zone's name servers) -> values every one of them answers."""

_ATTEMPTS = 3


def query_name_servers(name: str, type: RecordType, name_servers: Sequence[str],
                       timeout: float = 5.0) -> list[str]:
    """Ask each name server directly (no recursion); the values all of them answer."""
    common: list[str] | None = None
    rdtype = dns.rdatatype.from_text(type)
    for server in name_servers:
        try:
            address = socket.getaddrinfo(server.rstrip("."), 53, proto=socket.IPPROTO_UDP)[0][4][0]
            query = dns.message.make_query(name, rdtype)
            query.flags &= ~dns.flags.RD
            response = dns.query.udp(query, str(address), timeout=timeout)
        except (OSError, dns.exception.DNSException):
            return []
        values = [rdata_text(r) for rrset in response.answer if rrset.rdtype == rdtype
                  for r in rrset]
        common = values if common is None else [v for v in common if v in values]
    return common or []


class AzureDns(DnsProvider):
    """Record sets in the Azure DNS zones of ``settings.azure.resource_group``.

    The zone of a name is the longest of ``settings.zones`` that contains it or, when none are
    configured, its parent. ``name_server_lookup`` replaces the DNS queries to the zone's name
    servers (tests use it).
    """

    name = "azure-dns"

    def __init__(self, connection: AzureConnection, settings: DnsProviderSettings, *,
                 name_server_lookup: NameServerLookup | None = None) -> None:
        super().__init__()
        self.connection = connection
        self.settings = settings
        self.options: AzureDnsSettings = settings.azure
        self.resource_group = connection.group(self.options.resource_group,
                                               "providers.dns.azure.resource_group")
        self._configured = sorted((z.lower().rstrip(".") for z in settings.zones), key=len,
                                  reverse=True)
        self._lookup = name_server_lookup or (
            lambda name, type, servers: query_name_servers(
                name, type, servers, self.options.timeout_seconds))
        self._client: DnsManagementClient | None = None
        self._name_servers: dict[str, list[str]] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> AzureDns:
        return cls(AzureConnection.from_settings(settings.azure), settings.providers.dns)

    @property
    def client(self) -> DnsManagementClient:
        if self._client is None:
            self._client = DnsManagementClient(
                self.connection.credential, self.connection.subscription_id,
                **self.connection.arm_options())
        return self._client

    # -- names ------------------------------------------------------------------------------

    def zone_for(self, name: str) -> str:
        name = name.lower().rstrip(".")
        for zone in self._configured:
            if name == zone or name.endswith(f".{zone}"):
                return zone
        if self._configured:
            raise PermanentProviderError(
                f"no zone in providers.dns.zones ({', '.join(self._configured)}) contains "
                f"{name}; add its zone there or use a domain inside one of them")
        if "." not in name:
            raise PermanentProviderError(f"{name} has no parent zone to hold its records")
        return name.split(".", 1)[1]

    def _split(self, record: DnsRecord | tuple[str, RecordType]) -> tuple[str, str]:
        name, type = (record.name, record.type) if isinstance(record, DnsRecord) else record
        zone = self.zone_for(name)
        fqdn = name.lower().rstrip(".")
        relative = "@" if fqdn == zone else fqdn[: -len(zone) - 1]
        if type == "CNAME" and relative == "@":
            raise PermanentProviderError(
                f"{name} is the apex of zone {zone}, which cannot hold a CNAME; use an A record "
                "to the app's inbound IP address or a subdomain")
        return zone, relative

    # -- record sets ------------------------------------------------------------------------

    def _get(self, zone: str, relative: str, type: RecordType) -> RecordSet | None:
        return azure_get(
            f"read {type} {relative} in zone {zone}",
            lambda: self.client.record_sets.get(self.resource_group, zone, relative, type))

    @staticmethod
    def _values(record_set: RecordSet, type: RecordType) -> list[str]:
        if type == "CNAME":
            cname = record_set.cname_record.cname if record_set.cname_record else None
            return [cname.rstrip(".")] if cname else []
        if type == "TXT":
            return ["".join(r.value or []) for r in record_set.txt_records or []]
        return [str(r.ipv4_address) for r in record_set.a_records or []]

    @staticmethod
    def _record_set(record: DnsRecord) -> RecordSet:
        if record.type == "CNAME":
            return RecordSet(ttl=record.ttl, cname_record=CnameRecord(cname=record.value))
        if record.type == "TXT":
            return RecordSet(ttl=record.ttl, txt_records=[TxtRecord(value=[record.value])])
        return RecordSet(ttl=record.ttl, a_records=[ARecord(ipv4_address=record.value)])

    def _ensure(self, resource: Resource) -> Outcome:
        if isinstance(resource, DnsPropagation):
            return self._check_answers(resource)
        assert isinstance(resource, DnsRecord)
        zone, relative = self._split(resource)
        outputs = {"name": resource.name, "type": resource.type, "value": resource.value,
                   "zone": zone, "resource_group": self.resource_group}
        wanted = self._record_set(resource)
        for _ in range(_ATTEMPTS):
            current = self._get(zone, relative, resource.type)
            if current is not None and self._values(current, resource.type) == [
                    resource.value] and current.ttl == resource.ttl:
                return Ready(outputs, changed=False)
            condition = ({"if_none_match": "*"} if current is None
                         else {"if_match": current.etag})
            try:
                self.client.record_sets.create_or_update(
                    self.resource_group, zone, relative, resource.type, wanted, **condition)
            except HttpResponseError as exc:
                if exc.status_code == 412:
                    continue
                raise translate_azure_error(
                    exc, doing=f"write {resource.type} {resource.name} in zone {zone}") from exc
            except Exception as exc:
                raise translate_azure_error(
                    exc, doing=f"write {resource.type} {resource.name} in zone {zone}") from exc
            return Ready(outputs, changed=True)
        raise self._contended(resource, zone)

    def _contended(self, resource: DnsRecord, zone: str) -> TransientProviderError:
        return TransientProviderError(
            f"{resource.type} {resource.name} in zone {zone} changed {_ATTEMPTS} times while "
            "tenantops was writing it (412 Precondition Failed on its ETag); another writer is "
            "busy with the same record set. Will retry; if it persists, find the other writer")

    def _remove(self, resource: Resource) -> Outcome:
        if isinstance(resource, DnsPropagation):
            return Ready({}, changed=False)
        assert isinstance(resource, DnsRecord)
        zone, relative = self._split(resource)
        outputs = {"name": resource.name, "type": resource.type, "zone": zone}
        for _ in range(_ATTEMPTS):
            current = self._get(zone, relative, resource.type)
            if current is None:
                return Ready(outputs, changed=False)
            try:
                self.client.record_sets.delete(self.resource_group, zone, relative,
                                               resource.type, if_match=current.etag)
            except HttpResponseError as exc:
                if exc.status_code == 412:
                    continue
                raise translate_azure_error(
                    exc, doing=f"delete {resource.type} {resource.name} in zone {zone}") from exc
            except Exception as exc:
                raise translate_azure_error(
                    exc, doing=f"delete {resource.type} {resource.name} in zone {zone}") from exc
            return Ready(outputs, changed=True)
        raise self._contended(resource, zone)

    def _observe(self, resource: Resource) -> dict[str, Any] | None:
        if isinstance(resource, DnsPropagation):
            answered = [r.key for r in resource.records if r.value in self.lookup(r.name, r.type)]
            return {"answered": answered}
        assert isinstance(resource, DnsRecord)
        zone, relative = self._split(resource)
        current = self._get(zone, relative, resource.type)
        if current is None:
            return None
        return {"name": resource.name, "type": resource.type,
                "value": ",".join(self._values(current, resource.type)), "ttl": current.ttl}

    # -- answers ----------------------------------------------------------------------------

    def _zone_name_servers(self, zone: str) -> list[str]:
        if zone not in self._name_servers:
            found = azure_call(f"read DNS zone {zone} in resource group {self.resource_group}",
                               lambda: self.client.zones.get(self.resource_group, zone))
            self._name_servers[zone] = [str(s) for s in found.name_servers or []]
        return self._name_servers[zone]

    def lookup(self, name: str, type: RecordType) -> list[str]:
        zone, relative = self._split((name, type))
        if not self.options.check_name_servers:
            current = self._get(zone, relative, type)
            return [] if current is None else self._values(current, type)
        servers = self._zone_name_servers(zone)
        if not servers:
            raise PermanentProviderError(
                f"Azure reports no name servers for zone {zone}; is it a public zone?")
        return self._lookup(name.lower().rstrip("."), type, servers)

    def _check_answers(self, resource: DnsPropagation) -> Outcome:
        missing = [f"{r.type} {r.name}" for r in resource.records
                   if r.value not in self.lookup(r.name, r.type)]
        if missing:
            return Pending(f"the zone's name servers do not answer yet: {', '.join(missing)}",
                           self.settings.propagation_poll_seconds)
        return Ready({"answered": [r.key for r in resource.records]}, changed=False)
