"""Custom domains: which a tenant may claim, which kind each is, and what a customer publishes.

A tenant's custom domain is checked in two places:

- **Here, at validation** (`DomainRules.check`, a `SpecError` naming field, value and rule,
  422 over HTTP): special-use names (RFC 6761 and its successors; ``.test`` only in dev
  mode), the names the platform uses itself (the web host's default hostname, name servers,
  the API's, dashboard's and identity provider's hosts, ``domains.reserved``) and any name
  above or below one of them, and a domain equal to or above one of the platform's zones.
- **In the catalog, when the run is opened** (`tenantops.catalog.runs`): a domain equal to,
  above or below another live tenant's is a `DomainConflictError` (409), decided in the
  transaction that registers the tenant, so concurrent claims cannot both win.

There are two kinds of domain (`DomainKind`), as SaaS platforms serving customer hostnames
have (Cloudflare for SaaS custom hostnames, App Service custom domains):

- ``platform``: inside one of ``providers.dns.zones``. tenantops writes the CNAME and the
  ``asuid`` TXT record itself. In dev mode with the ``zone-file`` provider and no zone
  configured, every domain is of this kind (the embedded DNS makes a zone for it).
- ``customer``: any other domain. tenantops writes nothing in the customer's DNS: the run
  waits (`CustomerDomainRecords`) until the customer's authoritative servers answer the three
  records `customer_records` lists, the last of which carries a token made for this tenant's
  registration (`new_verification_token`), which is what proves the customer meant this
  tenant to have the domain.

Which kind a run's domain is, and the records its customer must publish, are fixed in the
run's options when the run is opened (`tenantops.provisioning.plan.onboarding_options`), so
a replayed run follows the same plan whatever the configuration says later.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from tenantops.catalog import Run
from tenantops.config import Settings
from tenantops.errors import ConfigError, SpecError, SpecProblem
from tenantops.provisioning.spec import normalize_hostname

__all__ = [
    "CHALLENGE_LABEL",
    "SPECIAL_USE_DOMAINS",
    "WAIT_STEP",
    "DomainKind",
    "DomainRules",
    "PendingDomain",
    "PlatformName",
    "Relation",
    "SpecialUseDomain",
    "customer_records",
    "domain_kind_of",
    "is_dev_mode",
    "new_verification_token",
    "pending_domain",
    "recorded_domain_kind",
    "relation",
]

DomainKind = Literal["platform", "customer"]
Relation = Literal["equal", "above", "below"]

CHALLENGE_LABEL = "_tenantops-challenge"
"""The TXT record ``_tenantops-challenge.<domain>`` holds the tenant's verification token."""

WAIT_STEP = "wait_for_customer_dns"
"""The onboarding step that waits for a customer-managed domain's records."""

ZONE_FILE_NAMESERVER = "ns.tenantops.localhost"
AZURE_DNS_NAMESERVER_DOMAINS = ("azure-dns.com", "azure-dns.net", "azure-dns.org",
                                "azure-dns.info")


@dataclass(frozen=True)
class SpecialUseDomain:
    """A domain no tenant may own (or, with ``dev_only``, only in dev mode), and why."""

    name: str
    reason: str
    dev_only: bool = False


SPECIAL_USE_DOMAINS: tuple[SpecialUseDomain, ...] = (
    SpecialUseDomain("test", "reserved for testing (RFC 6761 §6.2)", dev_only=True),
    SpecialUseDomain("localhost", "always the local machine (RFC 6761 §6.3)"),
    SpecialUseDomain("invalid", "guaranteed never to exist (RFC 6761 §6.4)"),
    SpecialUseDomain("example", "reserved for documentation (RFC 2606, RFC 6761 §6.5)"),
    SpecialUseDomain("example.com", "reserved for documentation (RFC 2606, RFC 6761 §6.5)"),
    SpecialUseDomain("example.net", "reserved for documentation (RFC 2606, RFC 6761 §6.5)"),
    SpecialUseDomain("example.org", "reserved for documentation (RFC 2606, RFC 6761 §6.5)"),
    SpecialUseDomain("local", "multicast DNS on the local link only (RFC 6762)"),
    SpecialUseDomain("onion", "Tor onion services, never in the DNS (RFC 7686)"),
    SpecialUseDomain("alt", "names outside the DNS (RFC 9476)"),
    SpecialUseDomain("arpa", "internet infrastructure, home.arpa included (RFC 3172, RFC 8375)"),
    SpecialUseDomain("internal", "private use, never delegated (ICANN, 2024)"),
)


def relation(name: str, other: str) -> Relation | None:
    """How ``name`` stands to ``other`` in the DNS tree: ``equal``, ``below`` (a descendant
    of it), ``above`` (an ancestor of it), or None (neither)."""
    if name == other:
        return "equal"
    if name.endswith(f".{other}"):
        return "below"
    if other.endswith(f".{name}"):
        return "above"
    return None


def is_dev_mode(settings: Settings) -> bool:
    """``dev_mode`` when set; otherwise on exactly when ``auth.authority`` is on a loopback
    address, where only an emulator can be (the rule the dashboard's defaults follow)."""
    if settings.dev_mode is not None:
        return settings.dev_mode
    return _is_loopback(urlsplit(settings.auth.authority).hostname or "")


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _hostname(value: str | None) -> str | None:
    """``value`` as a normalised hostname, or None for an IP address, empty or junk."""
    if not value:
        return None
    try:
        return normalize_hostname(value, min_labels=1)
    except ValueError:
        return None


def _url_host(url: str | None) -> str | None:
    return _hostname(urlsplit(url).hostname) if url else None


@dataclass(frozen=True)
class PlatformName:
    """A name the platform uses itself (no tenant may claim it, nor above or below it)."""

    name: str
    what: str


@dataclass(frozen=True)
class DomainRules:
    """The validation rules for custom domains, from settings (no I/O)."""

    dev_mode: bool
    platform_names: tuple[PlatformName, ...]
    zones: tuple[str, ...]
    every_domain_is_platform: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> DomainRules:
        providers = settings.providers
        names: list[PlatformName] = []

        def add(value: str | None, what: str) -> None:
            host = _hostname(value)
            if host is not None:
                names.append(PlatformName(host, what))

        add(providers.webhost.default_hostname,
            "the web host's default hostname (providers.webhost.default_hostname), the CNAME "
            "target of every tenant")
        if providers.webhost.name == "azure-app-service":
            add("azurewebsites.net", "the domain of every App Service default hostname")
        if providers.dns.name == "zone-file":
            add(ZONE_FILE_NAMESERVER, "the embedded DNS's name server")
        elif providers.dns.name == "rfc2136":
            options = providers.dns.rfc2136
            add(options.server, "the DNS primary (providers.dns.rfc2136.server)")
            for entry in options.nameservers:
                add(entry.rsplit(":", 1)[0] if entry.count(":") == 1 else entry,
                    "a name server (providers.dns.rfc2136.nameservers)")
        else:
            for domain in AZURE_DNS_NAMESERVER_DOMAINS:
                add(domain, "the domain of Azure DNS's name servers")
        add(_url_host(settings.api.url), "the API's host (api.url)")
        add(_url_host(settings.dashboard.public_url),
            "the dashboard's host (dashboard.public_url)")
        add(_url_host(settings.auth.authority), "the identity provider's host (auth.authority)")
        for entry in settings.domains.reserved:
            host = _hostname(entry)
            if host is None:
                raise ConfigError(
                    f"domains.reserved = {entry!r}: must be a hostname such as "
                    "status.saas.example.com")
            names.append(PlatformName(host, "a reserved name (domains.reserved)"))
        zones = tuple(sorted({z.lower().rstrip(".") for z in providers.dns.zones}))
        dev = is_dev_mode(settings)
        return cls(
            dev_mode=dev, platform_names=tuple(names), zones=zones,
            every_domain_is_platform=(dev and not zones and providers.dns.name == "zone-file"))

    def problems(self, domain: str) -> list[SpecProblem]:
        """Every rule ``domain`` (a normalised custom domain) breaks, as spec problems."""
        found: list[SpecProblem] = []
        for special in SPECIAL_USE_DOMAINS:
            if relation(domain, special.name) not in ("equal", "below"):
                continue
            if special.dev_only and self.dev_mode:
                continue
            where = ("accepted only in dev mode (dev_mode, docs/decisions.md)"
                     if special.dev_only else "which no tenant can own")
            found.append(SpecProblem(
                "custom_domain", domain,
                f"is under .{special.name}, a special-use domain {special.reason}, {where}; "
                "use a domain the tenant has registered"))
        for platform in self.platform_names:
            how = relation(domain, platform.name)
            if how is not None:
                at = {"equal": "is", "below": "is below", "above": "is above"}[how]
                found.append(SpecProblem(
                    "custom_domain", domain,
                    f"{at} {platform.name}, {platform.what}: names the platform uses itself, "
                    "and names above or below them, cannot be a tenant's"))
        for zone in self.zones:
            how = relation(domain, zone)
            if how in ("equal", "above"):
                at = "is the apex of" if how == "equal" else "is above"
                found.append(SpecProblem(
                    "custom_domain", domain,
                    f"{at} the platform zone {zone} (providers.dns.zones); use a subdomain "
                    f"such as portal.{zone}"))
        return found

    def check(self, domain: str) -> None:
        """Raise `SpecError` when ``domain`` breaks a rule."""
        problems = self.problems(domain)
        if problems:
            raise SpecError(problems)

    def kind_of(self, domain: str) -> DomainKind:
        """``platform`` for a domain in a platform zone (tenantops writes its records),
        ``customer`` for any other (its customer publishes them)."""
        if self.every_domain_is_platform:
            return "platform"
        if any(relation(domain, zone) == "below" for zone in self.zones):
            return "platform"
        return "customer"


def new_verification_token() -> str:
    """A fresh token for one tenant registration: 128 random bits, as 32 hex digits."""
    return secrets.token_hex(16)


def customer_records(domain: str, *, default_hostname: str, verification_id: str,
                     token: str) -> list[dict[str, str]]:
    """The records the customer of a customer-managed ``domain`` publishes, in order:
    the CNAME to the web host, App Service's ``asuid`` TXT (the web host's verification ID),
    and the ``_tenantops-challenge`` TXT holding the tenant's verification token."""
    return [
        {"type": "CNAME", "name": domain, "value": default_hostname},
        {"type": "TXT", "name": f"asuid.{domain}", "value": verification_id},
        {"type": "TXT", "name": f"{CHALLENGE_LABEL}.{domain}", "value": token},
    ]


def domain_kind_of(options: Mapping[str, Any]) -> DomainKind:
    """The kind a run's options say (runs opened before kinds existed: ``platform``)."""
    return "customer" if options.get("domain_kind") == "customer" else "platform"


def recorded_domain_kind(runs: Sequence[Run]) -> DomainKind:
    """The kind of a tenant's current custom domain, as the run that claimed it recorded
    (its onboarding, its latest domain change, or its adoption), from its runs oldest
    first; ``platform`` when none says."""
    claims = [r for r in runs if r.kind in ("onboard", "adopt") or (
        r.kind == "update" and "custom_domain" in (r.options.get("changes") or {}))]
    return domain_kind_of(claims[-1].options) if claims else "platform"


@dataclass(frozen=True)
class PendingDomain:
    """A customer-managed domain whose records the run still waits for: the records to
    publish, the wait step's status, and its last message (what is still missing)."""

    domain: str
    records: tuple[dict[str, str], ...]
    status: str
    message: str | None


def pending_domain(domain: str, runs: Sequence[Run]) -> PendingDomain | None:
    """What the customer must still publish, from the tenant's runs (oldest first): set
    while the latest run is an onboarding, or an update to a new domain, of a
    customer-managed domain whose wait step has not succeeded; None otherwise."""
    latest = runs[-1] if runs else None
    if latest is None or latest.kind not in ("onboard", "update") or domain_kind_of(
            latest.options) != "customer":
        return None
    step = next((s for s in latest.steps if s.name == WAIT_STEP), None)
    if step is None or step.status == "succeeded":
        return None
    records = tuple(dict(r) for r in latest.options.get("customer_records", []))
    return PendingDomain(domain, records, step.status, step.error or step.message)
