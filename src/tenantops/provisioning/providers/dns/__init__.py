"""DNS providers: the records that point a tenant's custom domain at the web host.

For App Service (and the local edge) a subdomain needs two records: ``CNAME <sub>`` to the
web host's default hostname, and ``TXT asuid.<sub>`` holding the host's domain verification
ID. Inside the platform's zones (``providers.dns.zones``) the provider writes them. A
customer-managed domain lies in the customer's own zone, which tenantops never writes: the
customer publishes those records and a third, ``TXT _tenantops-challenge.<sub>`` holding the
tenant's verification token, and `CustomerDomainRecords` waits until the zone's authoritative
servers answer all three (`DnsProvider` handles it for every provider, through
`AuthoritativeServers`).
"""

from __future__ import annotations

import re
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, Literal

from tenantops.config import DnsProviderSettings
from tenantops.errors import PermanentProviderError
from tenantops.provisioning.providers.base import Outcome, Pending, Provider, Ready, Resource
from tenantops.provisioning.providers.dns.authoritative import (
    AuthoritativeServers,
    RecordCheck,
    ZoneServers,
)
from tenantops.provisioning.providers.dns.zones import containing_zone
from tenantops.provisioning.spec import normalize_hostname

__all__ = [
    "CustomerDomainRecords",
    "DnsPropagation",
    "DnsProvider",
    "DnsRecord",
    "RecordType",
]

RecordType = Literal["CNAME", "TXT", "A"]

# An underscore label (RFC 8552 "attribute leaves"): _tenantops-challenge, _dmarc, _acme-...
_UNDERSCORE_LABEL = re.compile(r"_[a-z0-9](?:[a-z0-9-]{0,60}[a-z0-9])?")


def _check_record_name(name: str) -> None:
    """A hostname, optionally below underscore labels (``_tenantops-challenge.portal.x.com``)."""
    labels = name.lower().rstrip(".").split(".")
    while len(labels) > 1 and labels[0].startswith("_"):
        if not _UNDERSCORE_LABEL.fullmatch(labels[0]):
            raise ValueError(f"label {labels[0]!r} must be '_' then letters, digits or hyphens")
        labels = labels[1:]
    normalize_hostname(".".join(labels))


@dataclass(frozen=True)
class DnsRecord(Resource):
    """The record set ``name``/``type`` holding exactly ``value`` (names without final dot).

    ``zone`` says which zone should hold it when the provider cannot know (``acme.test``
    for both ``portal.acme.test`` and ``asuid.portal.acme.test``); configured zones win.
    """

    name: str
    type: RecordType
    value: str
    ttl: int = 300
    zone: str | None = None

    def __post_init__(self) -> None:
        try:
            _check_record_name(self.name)
        except ValueError as exc:
            raise PermanentProviderError(f"DNS name {self.name!r} {exc}") from None
        if self.type == "TXT" and len(self.value.encode()) > 255:
            raise PermanentProviderError(
                f"TXT value for {self.name} is longer than 255 bytes; split it or shorten it"
            )

    @property
    def key(self) -> str:
        return f"dns:{self.type}:{self.name}"


@dataclass(frozen=True)
class DnsPropagation(Resource):
    """Ensured when the authoritative servers answer every one of ``records``."""

    records: tuple[DnsRecord, ...]

    @property
    def key(self) -> str:
        return "dns-answers:" + ",".join(f"{r.type}:{r.name}" for r in self.records)


@dataclass(frozen=True)
class CustomerDomainRecords(Resource):
    """Ensured when every authoritative server of the zone holding ``records`` answers each
    of them: records of a customer-managed domain, published by the customer. Nothing is
    written; while any is missing the outcome is `Pending` (again after ``poll_seconds``, for
    at most ``wait_seconds``) with a reason that lists what is missing and what the servers
    answer instead. Removing it removes nothing (the records are the customer's)."""

    domain: str
    records: tuple[DnsRecord, ...]
    poll_seconds: float
    wait_seconds: float

    @property
    def key(self) -> str:
        return f"customer-dns:{self.domain}"


class DnsProvider(Provider):
    """Writes record sets in the platform's zones and tells whether the authoritative servers
    answer them; waits for the records of customer-managed domains.

    Subclasses implement `lookup` and the record operations for the zones they hold, and set
    ``settings``. `CustomerDomainRecords`, and records outside the platform's zones, are
    handled here, the same way for every provider."""

    kind = "dns"
    resource_types = (DnsRecord, DnsPropagation, CustomerDomainRecords)
    settings: DnsProviderSettings
    _authoritative: AuthoritativeServers | None = None

    @abstractmethod
    def lookup(self, name: str, type: RecordType) -> list[str]:
        """What the authoritative servers answer for ``name``/``type`` now (TXT values
        unquoted, names without the final dot); empty when nothing is answered."""

    @property
    def authoritative(self) -> AuthoritativeServers:
        """The authoritative servers of zones this provider does not hold."""
        if self._authoritative is None:
            self._authoritative = AuthoritativeServers(self.settings.authoritative)
        return self._authoritative

    def holds(self, name: str) -> bool:
        """Whether ``name`` lies in a zone this provider writes: one of
        ``providers.dns.zones`` (providers that make zones override this)."""
        return containing_zone(name, self.settings.zones) is not None

    def answers(self, name: str, type: RecordType) -> list[str]:
        """What the authoritative servers of ``name``'s zone answer: this provider's for a
        name it holds (`lookup`), the zone's own name servers for any other name."""
        if self.holds(name):
            return self.lookup(name, type)
        return self.authoritative.lookup(name, type)

    def ensure(self, resource: Resource) -> Outcome:
        if isinstance(resource, CustomerDomainRecords):
            return self._call("ensure", resource, self._await_customer_records)
        return super().ensure(resource)

    def remove(self, resource: Resource) -> Outcome:
        if isinstance(resource, CustomerDomainRecords):
            return self._call("remove", resource, _nothing_to_remove)
        if isinstance(resource, DnsRecord) and not self.holds(resource.name):
            # Never written by tenantops (a customer-managed domain's record): not ours to
            # delete, and no zone of ours could hold it.
            return self._call("remove", resource, _not_in_a_platform_zone)
        return super().remove(resource)

    def observe(self, resource: Resource) -> dict[str, Any] | None:
        if isinstance(resource, CustomerDomainRecords):
            checks = self._customer_checks(resource)
            return {"answered": [f"{c.type} {c.name}" for c in checks if c.seen]}
        return super().observe(resource)

    def _customer_checks(self, resource: CustomerDomainRecords) -> list[RecordCheck]:
        located: dict[str, ZoneServers] = {}
        return [self.authoritative.check(r.name, r.type, r.value, located)
                for r in resource.records]

    def _await_customer_records(self, resource: Resource) -> Outcome:
        if not isinstance(resource, CustomerDomainRecords):  # pragma: no cover - routed above
            raise PermanentProviderError(f"{resource.key} is not a customer domain's records")
        checks = self._customer_checks(resource)
        missing = [c for c in checks if not c.seen]
        if missing:
            return Pending(
                f"waiting for the customer to publish in the DNS of {resource.domain}: "
                + "; ".join(c.describe() for c in missing),
                resource.poll_seconds, timeout_seconds=resource.wait_seconds)
        servers = sorted({server for c in checks for server in c.answers})
        return Ready({"domain": resource.domain,
                      "zone": next((c.zone for c in checks if c.zone), None),
                      "servers": servers,
                      "answered": [f"{c.type} {c.name}" for c in checks]}, changed=False)


def _nothing_to_remove(resource: Resource) -> Outcome:
    return Ready({"left": "the customer's records are the customer's to remove"},
                 changed=False)


def _not_in_a_platform_zone(resource: Resource) -> Outcome:
    name = getattr(resource, "name", "")
    return Ready({"name": name, "left": "not in a platform zone (providers.dns.zones)"},
                 changed=False)
