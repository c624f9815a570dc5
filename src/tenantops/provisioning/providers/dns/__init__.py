"""DNS providers: the records that point a tenant's custom domain at the web host.

For App Service (and the local edge) a subdomain needs two records: ``CNAME <sub>`` to the
web host's default hostname, and ``TXT asuid.<sub>`` holding the host's domain verification
ID, which proves the domain's owner asked for the binding.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import Literal

from tenantops.errors import PermanentProviderError
from tenantops.provisioning.providers.base import Provider, Resource
from tenantops.provisioning.spec import normalize_hostname

__all__ = ["DnsPropagation", "DnsProvider", "DnsRecord", "RecordType"]

RecordType = Literal["CNAME", "TXT", "A"]


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
            normalize_hostname(self.name)
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


class DnsProvider(Provider):
    """Writes record sets and tells whether the authoritative servers answer them."""

    kind = "dns"
    resource_types = (DnsRecord, DnsPropagation)

    @abstractmethod
    def lookup(self, name: str, type: RecordType) -> list[str]:
        """What the authoritative servers answer for ``name``/``type`` now (TXT values
        unquoted, names without the final dot); empty when nothing is answered."""
