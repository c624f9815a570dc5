"""Custom domain rules at validation (special-use names, the platform's own names, zone
apexes), the two kinds of domain, and zones: no provider makes a zone that shadows another's
records, and the embedded responder serves the zone the provider wrote."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dns.zone
import pytest

from tenantops.catalog import Catalog
from tenantops.config import Settings
from tenantops.errors import ConfigError, PermanentProviderError, ProvisioningError, SpecError
from tenantops.provisioning import Engine
from tenantops.provisioning.domains import (
    SPECIAL_USE_DOMAINS,
    DomainRules,
    is_dev_mode,
    relation,
)
from tenantops.provisioning.plan import customer_onboarding_plan, plan_for
from tenantops.provisioning.providers.base import Ready
from tenantops.provisioning.providers.dns import DnsRecord
from tenantops.provisioning.providers.dns.rfc2136 import Rfc2136Dns
from tenantops.provisioning.providers.dns.zone_file import ZoneFileDns
from tenantops.provisioning.providers.registry import build_providers
from tenantops.provisioning.providers.webhost import HostnameBinding
from tenantops.provisioning.providers.webhost.local_edge import LocalEdge

from .conftest import fast_settings, spec_for


def rules(**values: Any) -> DomainRules:
    return DomainRules.from_settings(Settings(**values))


def rule_of(domain: str, **values: Any) -> str:
    problems = rules(**values).problems(domain)
    assert problems, f"{domain} was accepted"
    assert all(p.field == "custom_domain" and p.value == domain for p in problems)
    return problems[0].rule


def test_relation_is_equal_above_below_or_none() -> None:
    assert relation("portal.shared.test", "portal.shared.test") == "equal"
    assert relation("asuid.portal.shared.test", "portal.shared.test") == "below"
    assert relation("shared.test", "portal.shared.test") == "above"
    assert relation("xportal.shared.test", "portal.shared.test") is None
    assert relation("shop.shared.test", "portal.shared.test") is None


# -- special-use names ----------------------------------------------------------------------

@pytest.mark.parametrize("special", [s for s in SPECIAL_USE_DOMAINS if not s.dev_only],
                         ids=lambda s: s.name)
@pytest.mark.parametrize("dev_mode", [False, True], ids=["production", "dev"])
def test_special_use_domain_claim_is_refused_in_every_mode(special: Any, dev_mode: bool) -> None:
    domain = f"portal.acme.{special.name}"
    rule = rule_of(domain, dev_mode=dev_mode)
    assert rule.startswith(f"is under .{special.name}, a special-use domain {special.reason}")
    assert "which no tenant can own" in rule


def test_test_domain_claim_is_refused_outside_dev_mode_only() -> None:
    rule = rule_of("portal.acme.test", dev_mode=False)
    assert "is under .test, a special-use domain reserved for testing (RFC 6761 §6.2), " \
           "accepted only in dev mode" in rule
    assert rules(dev_mode=True).problems("portal.acme.test") == []


def test_dev_mode_follows_an_emulator_authority_unless_set() -> None:
    emulator = {"authority": "https://127.0.0.1:7443"}
    assert is_dev_mode(Settings(auth=emulator))
    assert is_dev_mode(Settings(auth={"authority": "https://localhost:7443"}))
    assert not is_dev_mode(Settings())
    assert not is_dev_mode(Settings(auth=emulator, dev_mode=False))
    assert is_dev_mode(Settings(dev_mode=True))


# -- the platform's own names -----------------------------------------------------------------

@pytest.mark.parametrize(("domain", "values", "said"), [
    ("edge.saas.test", {"providers": {"webhost": {"default_hostname": "edge.saas.test"}}},
     "is edge.saas.test, the web host's default hostname"),
    ("x.edge.saas.test", {"providers": {"webhost": {"default_hostname": "edge.saas.test"}}},
     "is below edge.saas.test, the web host's default hostname"),
    ("apps.saas.test", {"providers": {"webhost": {"default_hostname": "edge.apps.saas.test"}}},
     "is above edge.apps.saas.test, the web host's default hostname"),
    ("func-x.azurewebsites.net", {"providers": {"webhost": {"name": "azure-app-service"}}},
     "is below azurewebsites.net, the domain of every App Service default hostname"),
    ("ns1.saas.test", {"providers": {"dns": {"name": "rfc2136",
                                             "rfc2136": {"server": "ns1.saas.test"}}}},
     "is ns1.saas.test, the DNS primary"),
    ("ns2.saas.test", {"providers": {"dns": {"name": "rfc2136", "rfc2136": {
        "nameservers": ["ns2.saas.test:5353"]}}}}, "is ns2.saas.test, a name server"),
    ("ns1-07.azure-dns.com", {"providers": {"dns": {"name": "azure-dns"}}},
     "is below azure-dns.com, the domain of Azure DNS's name servers"),
    ("api.saas.test", {"api": {"url": "https://api.saas.test/api"}},
     "is api.saas.test, the API's host"),
    ("ops.saas.test", {"dashboard": {"public_url": "https://ops.saas.test"}},
     "is ops.saas.test, the dashboard's host"),
    ("x.login.saas.test", {"auth": {"authority": "https://login.saas.test"}},
     "is below login.saas.test, the identity provider's host"),
    ("status.saas.test", {"domains": {"reserved": ["status.saas.test"]}},
     "is status.saas.test, a reserved name (domains.reserved)"),
    ("eu.status.saas.test", {"domains": {"reserved": ["Status.SAAS.test."]}},
     "is below status.saas.test, a reserved name"),
], ids=["default-hostname", "below-default-hostname", "above-default-hostname",
        "app-service-domain", "dns-primary", "name-server", "azure-name-servers", "api-host",
        "dashboard-host", "authority-host", "reserved", "below-reserved"])
def test_platform_name_claim_is_refused_at_validation(
        domain: str, values: dict[str, Any], said: str) -> None:
    rule = rule_of(domain, dev_mode=True, **values)
    assert rule.startswith(said), rule
    assert "names the platform uses itself, and names above or below them" in rule


def test_a_reserved_entry_that_is_no_hostname_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"domains\.reserved = 'not a host'"):
        rules(domains={"reserved": ["not a host"]})


@pytest.mark.parametrize(("domain", "said"), [
    ("tenants.saas.test", "is the apex of the platform zone tenants.saas.test"),
    ("saas.test.shop", "is above the platform zone t.saas.test.shop"),
])
def test_zone_apex_or_above_claim_is_refused(domain: str, said: str) -> None:
    rule = rule_of(domain, dev_mode=True, providers={"dns": {"zones": [
        "tenants.saas.test", "t.saas.test.shop"]}})
    assert rule.startswith(said)


# -- kinds ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("dns", "dev_mode", "domain", "kind"), [
    ({"zones": ["tenants.test"]}, True, "acme.tenants.test", "platform"),
    ({"zones": ["tenants.test"]}, True, "portal.acme.test", "customer"),
    ({}, True, "portal.acme.test", "platform"),
    ({}, False, "portal.acme.com", "customer"),
    ({"name": "rfc2136"}, True, "portal.acme.test", "customer"),
    ({"name": "azure-dns"}, True, "portal.acme.test", "customer"),
    ({"name": "rfc2136", "zones": ["acme.com"]}, False, "portal.acme.com", "platform"),
], ids=["in-zone", "outside-zones", "zone-file-dev-no-zones", "zone-file-no-zones",
        "rfc2136-no-zones", "azure-dns-no-zones", "rfc2136-in-zone"])
def test_domain_kind_follows_the_platform_zones(
        dns: dict[str, Any], dev_mode: bool, domain: str, kind: str) -> None:
    assert rules(dev_mode=dev_mode, providers={"dns": dns}).kind_of(domain) == kind


def test_customer_plan_waits_instead_of_writing_records() -> None:
    records = [{"type": "CNAME", "name": "portal.acme.com", "value": "edge.saas.net"},
               {"type": "TXT", "name": "asuid.portal.acme.com", "value": "v"},
               {"type": "TXT", "name": "_tenantops-challenge.portal.acme.com", "value": "t"}]
    names = [s.name for s in plan_for("onboard", {"domain_kind": "customer",
                                                  "customer_records": records}).steps]
    assert names[:5] == ["register_tenant", "store_database_secret", "create_database",
                         "wait_for_customer_dns", "bind_hostname"]
    assert not {"create_cname_record", "create_verification_record", "wait_for_dns"} & set(names)
    assert "create_cname_record" in [s.name for s in plan_for("onboard", {}).steps]


def test_customer_plan_refuses_records_outside_the_domain() -> None:
    with pytest.raises(ProvisioningError, match=r"name records outside portal\.acme\.com"):
        customer_onboarding_plan([
            {"type": "CNAME", "name": "portal.acme.com", "value": "edge.saas.net"},
            {"type": "TXT", "name": "victim.example.net", "value": "v"}])


def test_default_hostname_claim_is_refused_before_anything_is_made(tmp_path: Path) -> None:
    settings = fast_settings(tmp_path / "data",
                             providers={"webhost": {"default_hostname": "edge.saas.test"}})
    engine = Engine(settings)
    engine.catalog.migrate()
    try:
        with pytest.raises(SpecError) as caught:
            engine.onboard(spec_for("thief", custom_domain="edge.saas.test"),
                           requested_by="t")
        assert [p.field for p in caught.value.problems] == ["custom_domain"]
        assert engine.catalog.list_tenants() == []
    finally:
        engine.stop()


def test_default_hostname_binding_is_refused_by_the_local_edge(tmp_path: Path) -> None:
    settings = fast_settings(tmp_path / "data", providers={
        "webhost": {"default_hostname": "edge.saas.test", "verify_domain": False}})
    edge = LocalEdge(settings.providers.webhost, tmp_path / "edge", serve=False)
    for hostname in ("edge.saas.test", "x.edge.saas.test", "saas.test"):
        with pytest.raises(PermanentProviderError, match="belongs to the platform"):
            edge.ensure(HostnameBinding(hostname, "thief"))
    assert edge.state.binding("edge.saas.test") is None


# -- zones ------------------------------------------------------------------------------------

def zone_file_dns(tmp_path: Path, **dns: Any) -> ZoneFileDns:
    settings = fast_settings(tmp_path / "data", providers={"dns": {"serve": True, **dns}})
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    provider = build_providers(settings, catalog).dns
    assert isinstance(provider, ZoneFileDns)
    return provider


def test_shadowing_child_zone_is_refused_and_the_record_joins_the_enclosing_zone(
        tmp_path: Path) -> None:
    provider = zone_file_dns(tmp_path)
    assert provider.responder is not None
    with provider.responder:
        first = "portal.shared.test"
        provider.ensure(DnsRecord(first, "CNAME", "edge.saas.test", zone="shared.test"))
        provider.ensure(DnsRecord(f"asuid.{first}", "TXT", "first-id", zone="shared.test"))
        # A second tenant's records below the first's domain, hinted into a zone of their own.
        provider.ensure(DnsRecord(f"x.{first}", "CNAME", "edge.saas.test", zone=first))
        provider.ensure(DnsRecord(f"asuid.x.{first}", "TXT", "second-id", zone=first))
        assert provider.files.names() == ["shared.test"]
        assert provider.lookup(first, "CNAME") == ["edge.saas.test"]
        assert provider.lookup(f"asuid.{first}", "TXT") == ["first-id"]
        assert provider.lookup(f"asuid.x.{first}", "TXT") == ["second-id"]


def test_stray_zone_file_shadowing_a_configured_zone_is_not_served(
        tmp_path: Path) -> None:
    provider = zone_file_dns(tmp_path, zones=["tenants.test"])
    assert provider.responder is not None
    # A zone file nobody configured (left by an older version, say) must shadow nothing.
    stray = dns.zone.from_text(
        "@ 3600 IN SOA ns. h. 1 3600 600 86400 300\n@ 3600 IN NS ns.\n"
        "portal 300 IN CNAME evil.example.net.\n", origin="acme.tenants.test.",
        relativize=False)
    provider.files.write("acme.tenants.test", stray)
    with provider.responder:
        provider.ensure(DnsRecord("portal.acme.tenants.test", "CNAME", "edge.saas.test"))
        assert provider.zone_for("portal.acme.tenants.test") == "tenants.test"
        assert provider.lookup("portal.acme.tenants.test", "CNAME") == ["edge.saas.test"]


def test_rfc2136_write_to_a_guessed_zone_is_refused_when_no_zone_is_configured() -> None:
    provider = Rfc2136Dns(Settings().providers.dns.model_copy(update={"name": "rfc2136"}))
    with pytest.raises(PermanentProviderError,
                       match=r"providers\.dns\.zones is empty, so the rfc2136 provider writes "
                             r"no record \(portal\.acme\.com\)"):
        provider.ensure(DnsRecord("portal.acme.com", "CNAME", "edge.saas.net"))
    removed = provider.remove(DnsRecord("portal.acme.com", "CNAME", "edge.saas.net"))
    assert isinstance(removed, Ready)
    assert not removed.changed
    assert removed.outputs["left"] == "not in a platform zone (providers.dns.zones)"
