"""Fake of Azure DNS (``Microsoft.Network/dnsZones``, api-version 2018-05-01): zones and
CNAME, TXT and A record sets with ETags.

Semantics kept, with where they come from (shared reference provisioning-apis.md, §3):

- ``PUT .../{type}/{name}`` is an upsert: 201 when it creates, 200 when it replaces the set
  (§3 "Call"). Each write gives the set a new ``etag``.
- ``If-Match: <etag>`` succeeds only when the set exists with that ETag; ``If-Match: *`` only
  when it exists; ``If-None-Match: *`` only when it does not (§3 "ETags",
  ``articles/dns/dns-zones-records.md``). Otherwise **412** ``PreconditionFailed``; the status
  is not documented, 412 follows from HTTP semantics (marked unconfirmed in §3).
- ``DELETE`` answers 200, or 204 when the set is absent, honouring ``If-Match`` (§3).
- ``GET`` of an absent set is 404 ``NotFound``; a write into a zone that does not exist is
  404 ``ParentResourceNotFound`` (terraform-provider-azurerm#26124).
- A CNAME cannot share its name with other types, and the apex (``@``) cannot hold one (§3
  "Other rules"); the fake answers 409 ``Conflict`` with Azure DNS's portal message
  ("...because a CNAME record with the same name already exists in this zone",
  azure-docs#85496); the exact status is unconfirmed.
- TXT strings are at most 255 characters each (§3 "Record payloads").

`set_record` writes as another client would (for races, with `before_write`: hooks run just
before the next PUT or DELETE is handled). `answers` gives what the zone serves now;
`lag_reads` makes a new value visible to it only after that many lookups, to model name
servers catching up.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.azure_fake._transport import (
    ArmError,
    FakeClock,
    FakeResponse,
    FakeTransport,
    Incoming,
)

__all__ = ["FakeAzureDns"]

API_VERSION = "2018-05-01"
_ZONE = (r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/"
         r"Microsoft\.Network/dns[zZ]ones/(?P<zone>[^/]+)")
_TYPES = ("A", "AAAA", "CAA", "CNAME", "MX", "NS", "PTR", "SOA", "SRV", "TXT")


@dataclass
class _Zone:
    name: str
    resource_group: str
    sets: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    etags: dict[tuple[str, str], str] = field(default_factory=dict)
    hidden_reads: dict[tuple[str, str], int] = field(default_factory=dict)


class FakeAzureDns(FakeTransport):
    def __init__(self, *, clock: FakeClock | None = None, lag_reads: int = 0) -> None:
        super().__init__(api_version=API_VERSION, clock=clock)
        self.zones: dict[str, _Zone] = {}
        self.lag_reads = lag_reads
        self.before_write: list[Callable[[], None]] = []
        self._etag_numbers = itertools.count(1)
        record = _ZONE + r"/(?P<type>[A-Za-z]+)/(?P<name>[^/]+)"
        self.route("GET", _ZONE, self._get_zone)
        self.route("GET", record, self._get)
        self.route("PUT", record, self._put)
        self.route("DELETE", record, self._delete)

    def add_zone(self, name: str, resource_group: str) -> None:
        self.zones[name.lower()] = _Zone(name.lower(), resource_group)

    def set_record(self, zone: str, relative: str, record_type: str,
                   properties: dict[str, Any]) -> None:
        """Another writer's change: the set is replaced and gets a new ETag."""
        found = self.zones[zone.lower()]
        key = (record_type.upper(), relative.lower())
        found.sets[key] = {"TTL": 3600, **properties}
        found.etags[key] = f"{next(self._etag_numbers):08x}-0000-0000-0000-000000000000"

    # -- what the public sees --------------------------------------------------------------

    def answers(self, fqdn: str, record_type: str) -> list[str]:
        """What the zone's name servers answer for ``fqdn``/``record_type`` (TXT unquoted,
        names without the final dot)."""
        fqdn = fqdn.lower().rstrip(".")
        for zone in sorted(self.zones.values(), key=lambda z: len(z.name), reverse=True):
            if fqdn == zone.name or fqdn.endswith("." + zone.name):
                relative = "@" if fqdn == zone.name else fqdn[: -len(zone.name) - 1]
                key = (record_type.upper(), relative)
                props = zone.sets.get(key)
                if props is None:
                    return []
                if zone.hidden_reads.get(key, 0) > 0:
                    zone.hidden_reads[key] -= 1
                    return []
                return _values(record_type.upper(), props)
        return []

    # -- handlers -------------------------------------------------------------------------

    def _zone(self, match: re.Match[str], *, writing: str | None = None) -> _Zone:
        zone = self.zones.get(match["zone"].lower())
        if zone is None or zone.resource_group.lower() != match["rg"].lower():
            if writing is not None:
                raise ArmError(
                    404, "ParentResourceNotFound",
                    f"Failed to perform 'write' on resource(s) of type 'dnszones/{writing}', "
                    f"because the parent resource '{match.group(0).split('/' + writing)[0]}' "
                    "could not be found.")
            raise ArmError(404, "ResourceNotFound",
                           f"The Resource 'Microsoft.Network/dnszones/{match['zone']}' under "
                           f"resource group '{match['rg']}' was not found.")
        return zone

    def _get_zone(self, _request: Incoming, match: re.Match[str]) -> FakeResponse:
        zone = self._zone(match)
        return FakeResponse(200, {
            "id": match.group(0), "name": zone.name, "type": "Microsoft.Network/dnszones",
            "location": "global", "etag": "00000002-0000-0000-0000-000000000000",
            "properties": {"maxNumberOfRecordSets": 10000, "numberOfRecordSets": 2 + len(
                zone.sets), "zoneType": "Public", "nameServers": [
                    "ns1-07.azure-dns.com.", "ns2-07.azure-dns.net.", "ns3-07.azure-dns.org.",
                    "ns4-07.azure-dns.info."]},
        })

    def _key(self, match: re.Match[str]) -> tuple[str, str]:
        record_type = match["type"].upper()
        if record_type not in _TYPES:
            raise ArmError(400, "BadRequest", f"The record type '{match['type']}' is invalid.")
        return record_type, match["name"].lower()

    def _body(self, match: re.Match[str], zone: _Zone, key: tuple[str, str]) -> dict[str, Any]:
        record_type, name = key
        fqdn = f"{zone.name}." if name == "@" else f"{name}.{zone.name}."
        return {"id": match.group(0), "name": name,
                "type": f"Microsoft.Network/dnszones/{record_type}", "etag": zone.etags[key],
                "properties": {**zone.sets[key], "fqdn": fqdn, "provisioningState": "Succeeded"}}

    def _get(self, _request: Incoming, match: re.Match[str]) -> FakeResponse:
        zone, key = self._zone(match), self._key(match)
        if key not in zone.sets:
            raise ArmError(404, "NotFound",
                           f"The resource record '{key[1]}' does not exist in resource group "
                           f"'{match['rg']}' of subscription '{match['sub']}'.")
        return FakeResponse(200, self._body(match, zone, key))

    def _check_conditions(self, request: Incoming, zone: _Zone, key: tuple[str, str]) -> None:
        current = zone.etags.get(key)
        if_match, if_none_match = request.header("if-match"), request.header("if-none-match")
        if if_match is not None and (current is None or (if_match != "*" and if_match != current)):
            raise ArmError(
                412, "PreconditionFailed",
                f"The condition '{if_match}' in the If-Match header was not satisfied. The "
                f"current was '{current or 'n/a'}'.")
        if if_none_match == "*" and current is not None:
            raise ArmError(
                412, "PreconditionFailed",
                f"The condition '*' in the If-None-Match header was not satisfied. The current "
                f"was '{current}'.")

    def _concurrent_writers(self) -> None:
        """Run (and forget) the writes a test scheduled to land just before this one."""
        hooks, self.before_write = self.before_write, []
        for hook in hooks:
            hook()

    def _put(self, request: Incoming, match: re.Match[str]) -> FakeResponse:
        self._concurrent_writers()
        record_type = match["type"].upper()
        zone, key = self._zone(match, writing=record_type), self._key(match)
        self._check_conditions(request, zone, key)
        props = dict((request.body or {}).get("properties") or {})
        name = key[1]
        others = {t for (t, n) in zone.sets if n == name and t != record_type}
        if (record_type == "CNAME" and (others or name == "@")) or \
                (record_type != "CNAME" and "CNAME" in others):
            raise ArmError(
                409, "Conflict",
                f"The record set could not be created because a CNAME record set with the same "
                f"name already exists in this zone, or a CNAME is not allowed here ({name}).")
        for txt in props.get("TXTRecords") or []:
            if any(len(v) > 255 for v in txt.get("value") or []):
                raise ArmError(400, "BadRequest", "A TXT record string exceeds 255 characters.")
        stored = {k: v for k, v in props.items() if k not in ("fqdn", "provisioningState")}
        if "TTL" not in stored:
            stored["TTL"] = 3600
        created = key not in zone.sets
        changed = created or zone.sets[key] != stored
        zone.sets[key] = stored
        zone.etags[key] = f"{next(self._etag_numbers):08x}-0000-0000-0000-000000000000"
        if changed and self.lag_reads:
            zone.hidden_reads[key] = self.lag_reads
        return FakeResponse(201 if created else 200, self._body(match, zone, key))

    def _delete(self, request: Incoming, match: re.Match[str]) -> FakeResponse:
        self._concurrent_writers()
        zone, key = self._zone(match, writing=match["type"].upper()), self._key(match)
        if key not in zone.sets and request.header("if-match") is None:
            return FakeResponse(204)
        self._check_conditions(request, zone, key)
        del zone.sets[key]
        del zone.etags[key]
        zone.hidden_reads.pop(key, None)
        return FakeResponse(200)


def _values(record_type: str, props: dict[str, Any]) -> list[str]:
    if record_type == "CNAME":
        cname = (props.get("CNAMERecord") or {}).get("cname")
        return [cname.rstrip(".")] if cname else []
    if record_type == "TXT":
        return ["".join(r.get("value") or []) for r in props.get("TXTRecords") or []]
    if record_type == "A":
        return [r["ipv4Address"] for r in props.get("ARecords") or []]
    if record_type == "CAA":
        return [f'{r.get("flags", 0)} {r.get("tag")} {r.get("value")}'
                for r in props.get("caaRecords") or []]
    return []
