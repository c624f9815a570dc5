"""Customer-managed domains against a real authoritative server: the customer's zone is the
test server's (BIND or Knot, zone example.test), the platform's zone is the embedded
``tenants.test``. The run waits until the customer publishes the records (the test publishes
them as a customer would, with a signed dynamic update to their own server), then binds the
hostname and issues the certificate; a wait past its deadline fails listing what is missing,
and ``runs retry`` waits again. Records left by an earlier tenant verify nobody else."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tenantops.catalog import Run
from tenantops.provisioning import Engine, TenantSpec
from tenantops.provisioning.domains import WAIT_STEP, pending_domain
from tenantops.provisioning.providers.dns import DnsRecord
from tenantops.provisioning.providers.dns.rfc2136 import Rfc2136Dns

from ..conftest import EngineFactory
from .servers import DNS_SERVERS, DnsServer, dns_settings, dns_zone, unique_slug

pytestmark = pytest.mark.integration


@dataclass
class Customer:
    """The customer's own DNS: their zone on the test server, updated as they would."""

    server: DnsServer
    dns: Rfc2136Dns
    zone: str
    published: list[DnsRecord]

    @property
    def port(self) -> int:
        return self.dns.options.port

    def publish(self, records: list[dict[str, str]], **replace: str) -> None:
        for record in records:
            value = replace.get(record["name"], record["value"])
            written = DnsRecord(record["name"], record["type"], value,  # type: ignore[arg-type]
                                ttl=60)
            self.dns.ensure(written)
            self.published.append(written)


@pytest.fixture(params=DNS_SERVERS)
def customer(request: pytest.FixtureRequest) -> Iterator[Customer]:
    server: DnsServer = request.param
    found = Customer(server, Rfc2136Dns(dns_settings(server)), dns_zone(server), [])
    yield found
    for record in found.published:
        found.dns.remove(record)


def platform_settings(customer: Customer, **extra: Any) -> dict[str, Any]:
    """The platform's zone is the embedded tenants.test; other domains are customer-managed,
    and their zones are found and asked on the customer's server."""
    return {
        "providers": {"dns": {"zones": ["tenants.test"], "authoritative": {
            "resolvers": [f"127.0.0.1:{customer.port}"], "port": customer.port,
            "timeout_seconds": 2.0}}},
        "domains": {"customer_poll_seconds": 0.2},
        **extra,
    }


def spec(customer: Customer, slug: str | None = None) -> TenantSpec:
    slug = slug or unique_slug("cust")
    return TenantSpec(slug=slug, display_name=f"Customer {slug}",
                      custom_domain=f"portal.{unique_slug('d')}.{customer.zone}",
                      admin_email=f"admin@{slug}.test")


def until(engine: Engine, run_id: str, ready: Callable[[Run], bool],
          timeout: float = 60.0) -> Run:
    deadline = time.monotonic() + timeout
    while True:
        run = engine.get_run(run_id)
        if ready(run):
            return run
        assert time.monotonic() < deadline, f"run {run_id} never got there: {run}"
        time.sleep(0.05)


def waiting(run: Run) -> bool:
    return run.step(WAIT_STEP).status == "waiting" and run.step(WAIT_STEP).attempts >= 2


def test_customer_managed_domain_waits_then_succeeds_once_the_records_are_published(
        make_engine: EngineFactory, customer: Customer) -> None:
    engine = make_engine(**platform_settings(customer))
    wanted = spec(customer)
    run = engine.onboard(wanted, requested_by="t")
    domain = wanted.custom_domain
    records = run.options["customer_records"]
    site = engine.providers.webhost.site()
    assert run.options["domain_kind"] == "customer"
    assert [(r["type"], r["name"]) for r in records] == [
        ("CNAME", domain), ("TXT", f"asuid.{domain}"),
        ("TXT", f"_tenantops-challenge.{domain}")]
    assert records[0]["value"] == site.default_hostname
    assert records[1]["value"] == site.verification_id
    assert len(records[2]["value"]) == 32

    stalled = until(engine, run.id, waiting)
    message = stalled.step(WAIT_STEP).message or ""
    assert f"waiting for the customer to publish in the DNS of {domain}" in message
    for record in records:
        assert record["name"] in message
    assert engine.catalog.get_tenant(wanted.slug).hostname is None, "bound before verified"
    pending = pending_domain(domain, engine.catalog.list_runs(wanted.slug))
    assert pending is not None
    assert [dict(r) for r in pending.records] == records

    customer.publish(records)
    finished = engine.wait(run.id, timeout=60)
    assert finished.status == "succeeded", finished.error
    outputs = finished.step(WAIT_STEP).outputs
    assert outputs["zone"] == customer.zone
    assert outputs["servers"] == [f"127.0.0.1:{customer.port}"]
    tenant = engine.catalog.get_tenant(wanted.slug)
    assert (tenant.status, tenant.hostname) == ("active", domain)
    assert tenant.certificate_thumbprint
    assert not any(domain in key for key in tenant.dns_records), "tenantops wrote no record"
    assert pending_domain(domain, engine.catalog.list_runs(wanted.slug)) is None


def test_wait_past_its_deadline_fails_listing_the_missing_records_then_retry_succeeds(
        make_engine: EngineFactory, customer: Customer) -> None:
    # Until the engine honours Pending.timeout_seconds, engine.pending_timeout_seconds bounds
    # the wait; both are set alike so the test holds either way.
    engine = make_engine(**platform_settings(
        customer, engine={"pending_timeout_seconds": 1.5},
        domains={"customer_poll_seconds": 0.2, "customer_wait_seconds": 1.5}))
    wanted = spec(customer)
    run = engine.onboard(wanted, requested_by="t")
    records = run.options["customer_records"]
    customer.publish(records[:1])  # the CNAME only: both TXT records are still missing
    failed = engine.wait(run.id, timeout=60)
    assert (failed.status, failed.failed_step) == ("failed", WAIT_STEP)
    error = failed.error or ""
    assert f"TXT asuid.{wanted.custom_domain} = {records[1]['value']}" in error
    assert f"TXT _tenantops-challenge.{wanted.custom_domain} = {records[2]['value']}" in error
    assert f"CNAME {wanted.custom_domain}" not in error.split("publish", 1)[1]
    assert engine.catalog.get_tenant(wanted.slug).hostname is None

    customer.publish(records[1:])
    engine.retry(run.id)
    finished = engine.wait(run.id, timeout=60)
    assert finished.status == "succeeded", finished.error
    assert finished.retries == 1
    assert engine.catalog.get_tenant(wanted.slug).hostname == wanted.custom_domain


def test_takeover_through_dangling_records_of_an_offboarded_tenant_is_refused(
        make_engine: EngineFactory, customer: Customer) -> None:
    engine = make_engine(**platform_settings(customer))
    first = spec(customer)
    run = engine.onboard(first, requested_by="t")
    customer.publish(run.options["customer_records"])
    assert engine.wait(run.id, timeout=60).status == "succeeded"
    offboarded = engine.wait(engine.offboard(first.slug, requested_by="t").id, timeout=60)
    assert offboarded.status == "succeeded", offboarded.error
    left = [s.outputs.get("left") for s in offboarded.steps
            if s.name in ("delete_cname_record", "delete_verification_record")]
    assert left == ["not in a platform zone (providers.dns.zones)"] * 2

    # The customer's DNS still points at the platform, with the first tenant's token.
    second = TenantSpec(slug=unique_slug("thief"), display_name="Thief",
                        custom_domain=first.custom_domain, admin_email="x@thief.test")
    claim = engine.onboard(second, requested_by="attacker")
    new_token = claim.options["customer_records"][2]["value"]
    old_token = run.options["customer_records"][2]["value"]
    assert new_token != old_token
    stalled = until(engine, claim.id, waiting)
    message = stalled.step(WAIT_STEP).message or ""
    assert f"_tenantops-challenge.{first.custom_domain} = {new_token}" in message
    assert f"answers '{old_token}'" in message
    assert f"CNAME {first.custom_domain}" not in message.split("publish", 1)[1]
    assert engine.catalog.get_tenant(second.slug).hostname is None
    engine.cancel(claim.id)
