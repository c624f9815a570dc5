"""The ``azure-dns`` provider against the Azure DNS fake: ETag-guarded writes, idempotency,
races with another writer, removal, and waiting for the name servers."""

from __future__ import annotations

import pytest

from tenantops.errors import PermanentProviderError, TransientProviderError
from tenantops.provisioning.providers.base import Pending, Ready
from tenantops.provisioning.providers.dns import DnsPropagation, DnsRecord
from tests.azure.conftest import ZONE, AzureWorld, build_world, settle
from tests.azure_fake import FakeAzure

CNAME = DnsRecord(f"acme.{ZONE}", "CNAME", "tenantops-func.azurewebsites.net")
TXT = DnsRecord(f"asuid.acme.{ZONE}", "TXT", "0123456789ABCDEF")
APEX_A = DnsRecord(ZONE, "A", "20.50.2.10")


@pytest.mark.parametrize("record", [CNAME, TXT, APEX_A], ids=lambda r: r.type)
def test_absent_record_set_is_created_with_if_none_match_then_left_alone(
    world: AzureWorld, record: DnsRecord
) -> None:
    first = world.dns.ensure(record)
    again = world.dns.ensure(record)

    assert isinstance(first, Ready)
    assert first.changed
    assert isinstance(again, Ready)
    assert not again.changed
    (put,) = world.fake.calls("PUT", "/dnsZones/")
    assert put.headers == {"if-none-match": "*"}
    assert put.api_version == "2018-05-01"
    assert world.fake.dns.answers(record.name, record.type) == [record.value]


def test_request_bodies_are_what_azure_dns_documents(world: AzureWorld) -> None:
    for record in (CNAME, TXT, APEX_A):
        world.dns.ensure(record)

    bodies = [r.body for r in world.fake.calls("PUT", "/dnsZones/")]
    assert bodies == [
        {"properties": {"TTL": 300, "CNAMERecord": {"cname": CNAME.value}}},
        {"properties": {"TTL": 300, "TXTRecords": [{"value": [TXT.value]}]}},
        {"properties": {"TTL": 300, "ARecords": [{"ipv4Address": APEX_A.value}]}},
    ]
    paths = [r.path.rsplit("/", 2)[-2:] for r in world.fake.calls("PUT", "/dnsZones/")]
    assert paths == [["CNAME", "acme"], ["TXT", "asuid.acme"], ["A", "@"]]


def test_a_different_value_is_replaced_with_if_match_on_the_etag_read(
    world: AzureWorld,
) -> None:
    world.fake.dns.set_record(ZONE, "acme", "CNAME", {"CNAMERecord": {"cname": "old.example"}})
    etag = world.fake.dns.zones[ZONE].etags[("CNAME", "acme")]

    outcome = world.dns.ensure(CNAME)

    assert isinstance(outcome, Ready)
    assert outcome.changed
    (put,) = world.fake.calls("PUT", "/dnsZones/")
    assert put.headers == {"if-match": etag}
    assert world.fake.dns.answers(CNAME.name, "CNAME") == [CNAME.value]


def test_a_concurrent_writer_causes_412_and_a_fresh_decision(world: AzureWorld) -> None:
    world.fake.dns.before_write.append(lambda: world.fake.dns.set_record(
        ZONE, "acme", "CNAME", {"CNAMERecord": {"cname": "someone-else.example"}}))

    outcome = world.dns.ensure(CNAME)

    assert isinstance(outcome, Ready)
    assert outcome.changed
    puts = world.fake.calls("PUT", "/dnsZones/")
    assert [p.headers for p in puts] == [
        {"if-none-match": "*"},
        {"if-match": world.fake.dns.zones[ZONE].etags[("CNAME", "acme")].replace(
            "00000002", "00000001")},
    ]
    assert world.fake.dns.answers(CNAME.name, "CNAME") == [CNAME.value]


def test_a_writer_that_never_stops_makes_the_step_transient(world: AzureWorld) -> None:
    def keep_changing() -> None:
        world.fake.dns.set_record(ZONE, "acme", "CNAME", {"CNAMERecord": {"cname": "x.example"}})
        world.fake.dns.before_write.append(keep_changing)

    world.fake.dns.set_record(ZONE, "acme", "CNAME", {"CNAMERecord": {"cname": "x.example"}})
    world.fake.dns.before_write.append(keep_changing)

    with pytest.raises(TransientProviderError) as caught:
        world.dns.ensure(CNAME)

    assert "changed 3 times while tenantops was writing it (412" in str(caught.value)
    assert caught.value.resource == f"dns:CNAME:acme.{ZONE}"


def test_cname_next_to_another_type_is_a_permanent_conflict(world: AzureWorld) -> None:
    world.fake.dns.set_record(ZONE, "acme", "TXT", {"TXTRecords": [{"value": ["x"]}]})

    with pytest.raises(PermanentProviderError) as caught:
        world.dns.ensure(CNAME)

    assert "Azure answered 409 (Conflict: The record set could not be created" in str(
        caught.value)


def test_cname_at_the_apex_is_refused_before_any_request(world: AzureWorld) -> None:
    with pytest.raises(PermanentProviderError, match="apex of zone"):
        world.dns.ensure(DnsRecord(ZONE, "CNAME", "x.example"))
    assert world.fake.requests == []


def test_removal_uses_if_match_and_absent_is_success(world: AzureWorld) -> None:
    world.dns.ensure(TXT)
    etag = world.fake.dns.zones[ZONE].etags[("TXT", "asuid.acme")]

    removed = world.dns.remove(TXT)
    again = world.dns.remove(TXT)

    assert isinstance(removed, Ready)
    assert removed.changed
    assert isinstance(again, Ready)
    assert not again.changed
    (delete,) = world.fake.calls("DELETE", "/dnsZones/")
    assert delete.headers == {"if-match": etag}
    assert world.fake.dns.answers(TXT.name, "TXT") == []


def test_missing_zone_is_permanent_with_the_arm_code() -> None:
    world = build_world(FakeAzure())
    world.fake.dns.zones.clear()

    with pytest.raises(PermanentProviderError) as caught:
        world.dns.ensure(CNAME)

    assert "404 (ParentResourceNotFound" in str(caught.value)
    assert "check the names and resource group" in str(caught.value)


def test_propagation_is_pending_until_the_name_servers_answer() -> None:
    world = build_world(FakeAzure(dns_lag_reads=2))
    world.dns.ensure(CNAME)
    world.dns.ensure(TXT)

    outcomes = [world.dns.ensure(DnsPropagation((CNAME, TXT))) for _ in range(3)]

    assert [type(o).__name__ for o in outcomes] == ["Pending", "Pending", "Ready"]
    first = outcomes[0]
    assert isinstance(first, Pending)
    assert f"CNAME acme.{ZONE}" in first.reason
    zone_reads = [r for r in world.fake.calls("GET") if r.path.endswith(f"/dnsZones/{ZONE}")]
    assert len(zone_reads) == 1


def test_settle_helper_reaches_ready_for_propagation(world: AzureWorld) -> None:
    world.dns.ensure(CNAME)
    ready, calls = settle(world.dns, "ensure", DnsPropagation((CNAME,)), world.fake)
    assert ready.outputs == {"answered": [CNAME.key]}
    assert calls == 1
