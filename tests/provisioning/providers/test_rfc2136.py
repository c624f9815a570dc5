"""The ``rfc2136`` DNS provider against BIND 9.18 and Knot 3.2 (scripts/services/bind.sh,
knot.sh): every test body runs against both servers."""

from __future__ import annotations

import base64
import logging
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype
import pytest
from pydantic import SecretStr

from tenantops.config import DnsProviderSettings
from tenantops.errors import PermanentProviderError, TransientProviderError
from tenantops.provisioning.providers.base import Pending, Ready
from tenantops.provisioning.providers.dns import DnsPropagation, DnsRecord
from tenantops.provisioning.providers.dns.rfc2136 import Rfc2136Dns

from .servers import DNS_SERVERS, DnsServer, dns_settings, dns_zone, unique_slug

pytestmark = pytest.mark.integration


@pytest.fixture(params=DNS_SERVERS)
def server(request: pytest.FixtureRequest) -> DnsServer:
    name: DnsServer = request.param
    return name


@pytest.fixture
def settings(server: DnsServer) -> DnsProviderSettings:
    return dns_settings(server)


@pytest.fixture
def provider(settings: DnsProviderSettings) -> Rfc2136Dns:
    return Rfc2136Dns(settings)


@pytest.fixture
def label() -> str:
    return unique_slug("dns")


@pytest.fixture
def records(
    server: DnsServer, provider: Rfc2136Dns, label: str
) -> Iterator[tuple[DnsRecord, DnsRecord]]:
    """The two records of a tenant; removed again after the test whatever happened."""
    zone = dns_zone(server)
    cname = DnsRecord(f"{label}.{zone}", "CNAME", "tenantops-app.azurewebsites.net")
    txt = DnsRecord(f"asuid.{label}.{zone}", "TXT", "0A1B2C3D4E5F60718293A4B5C6D7E8F9")
    yield cname, txt
    for record in (cname, txt):
        provider.remove(record)


def dig(settings: DnsProviderSettings, name: str, rdtype: str) -> list[str]:
    """What the server answers, asked with the server's own client (dig or kdig)."""
    tool = "dig" if settings.rfc2136.port == dns_settings("bind").rfc2136.port else "kdig"
    result = subprocess.run(
        [tool, "+short", "+tcp", "-p", str(settings.rfc2136.port), "@127.0.0.1", name, rdtype],
        capture_output=True, text=True, check=True, timeout=10,
    )
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def soa_serial(settings: DnsProviderSettings, zone: str) -> int:
    query = dns.message.make_query(zone, dns.rdatatype.SOA)
    response = dns.query.tcp(query, "127.0.0.1", port=settings.rfc2136.port, timeout=5)
    serial: int = response.answer[0][0].serial
    return serial


def test_ensure_writes_cname_and_txt_that_the_server_answers(
    provider: Rfc2136Dns, settings: DnsProviderSettings, records: tuple[DnsRecord, DnsRecord],
) -> None:
    cname, txt = records

    for record in records:
        outcome = provider.ensure(record)
        assert isinstance(outcome, Ready)
        assert outcome.changed

    assert dig(settings, cname.name, "CNAME") == ["tenantops-app.azurewebsites.net."]
    assert dig(settings, txt.name, "TXT") == ['"0A1B2C3D4E5F60718293A4B5C6D7E8F9"']
    assert provider.lookup(cname.name, "CNAME") == ["tenantops-app.azurewebsites.net"]
    assert provider.observe(txt) == {"name": txt.name, "type": "TXT",
                                     "value": txt.value, "ttl": 300}


def test_ensure_again_sends_no_update(
    provider: Rfc2136Dns, settings: DnsProviderSettings, records: tuple[DnsRecord, DnsRecord],
    server: DnsServer,
) -> None:
    for record in records:
        provider.ensure(record)
    serial = soa_serial(settings, dns_zone(server))

    for record in records:
        again = provider.ensure(record)
        assert isinstance(again, Ready)
        assert not again.changed

    assert soa_serial(settings, dns_zone(server)) == serial


def test_ensure_replaces_a_changed_value(
    provider: Rfc2136Dns, settings: DnsProviderSettings, records: tuple[DnsRecord, DnsRecord],
) -> None:
    cname, _ = records
    provider.ensure(cname)
    moved = DnsRecord(cname.name, "CNAME", "tenantops-app-2.azurewebsites.net", ttl=600)

    outcome = provider.ensure(moved)

    assert isinstance(outcome, Ready)
    assert outcome.changed
    assert dig(settings, cname.name, "CNAME") == ["tenantops-app-2.azurewebsites.net."]


def test_remove_deletes_the_records_and_is_idempotent(
    provider: Rfc2136Dns, settings: DnsProviderSettings, records: tuple[DnsRecord, DnsRecord],
) -> None:
    for record in records:
        provider.ensure(record)

    for record in records:
        removed = provider.remove(record)
        assert isinstance(removed, Ready)
        assert removed.changed
        assert dig(settings, record.name, record.type) == []
        assert provider.observe(record) is None
        again = provider.remove(record)
        assert isinstance(again, Ready)
        assert not again.changed


def test_propagation_asks_the_zones_authoritative_servers(
    provider: Rfc2136Dns, records: tuple[DnsRecord, DnsRecord], settings: DnsProviderSettings,
) -> None:
    check = DnsPropagation(records)

    before = provider.ensure(check)
    assert isinstance(before, Pending)
    assert records[0].name in before.reason
    assert before.retry_after == settings.propagation_poll_seconds

    for record in records:
        provider.ensure(record)
    after = provider.ensure(check)

    assert isinstance(after, Ready)
    # ns1.<zone> has glue 127.0.0.1 in the test zones; the NS record is how it was found.
    assert after.outputs["servers"] == [f"127.0.0.1:{settings.rfc2136.port}"]


def test_a_cname_next_to_other_records_is_a_permanent_error(
    provider: Rfc2136Dns, records: tuple[DnsRecord, DnsRecord],
) -> None:
    cname, _ = records
    other = DnsRecord(cname.name, "A", "192.0.2.10")
    provider.ensure(other)
    try:
        with pytest.raises(PermanentProviderError, match="cannot share its name"):
            provider.ensure(cname)
    finally:
        provider.remove(other)


def test_wrong_secret_is_named_badsig(
    server: DnsServer, records: tuple[DnsRecord, DnsRecord], caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Another test may have run configure_logging(), which stops propagation to root.
    monkeypatch.setattr(logging.getLogger("tenantops"), "propagate", True)
    caplog.set_level(logging.DEBUG, logger="tenantops")
    wrong = base64.b64encode(b"not the server's secret, at all!").decode()
    settings = dns_settings(server)
    settings.rfc2136.tsig_secret = SecretStr(wrong)

    with pytest.raises(PermanentProviderError) as caught:
        Rfc2136Dns(settings).ensure(records[0])

    assert "BADSIG" in str(caught.value)
    assert "secret in providers.dns.rfc2136 differs" in str(caught.value)
    assert wrong not in str(caught.value)
    assert wrong not in caplog.text
    assert caught.value.provider == "dns:rfc2136"


def test_unknown_key_is_named_badkey(
    server: DnsServer, records: tuple[DnsRecord, DnsRecord],
) -> None:
    settings = dns_settings(server)
    settings.rfc2136.tsig_key_name = "not-a-key-the-server-knows"

    with pytest.raises(PermanentProviderError, match=r"BADKEY.*key name and algorithm"):
        Rfc2136Dns(settings).ensure(records[0])


def test_a_zone_the_key_may_not_update_is_refused_with_advice(
    server: DnsServer, label: str,
) -> None:
    settings = dns_settings(server, zones=["locked.test"])
    record = DnsRecord(f"{label}.locked.test", "TXT", "x")

    with pytest.raises(PermanentProviderError) as caught:
        Rfc2136Dns(settings).ensure(record)

    # BIND says REFUSED; Knot says BADKEY (its ACL for the zone does not name the key).
    expected = {"bind": "REFUSED", "knot": "BADKEY"}[server]
    assert expected in str(caught.value)
    assert "locked.test" in str(caught.value)


def test_a_zone_the_server_does_not_serve_is_notauth(server: DnsServer, label: str) -> None:
    settings = dns_settings(server, zones=["not-served.test"])
    record = DnsRecord(f"{label}.not-served.test", "TXT", "x")

    with pytest.raises(PermanentProviderError, match="not authoritative for the zone"):
        Rfc2136Dns(settings).ensure(record)


def test_missing_or_malformed_secret_is_refused_before_sending(
    server: DnsServer, tmp_path: Path, records: tuple[DnsRecord, DnsRecord],
) -> None:
    settings = dns_settings(server)
    settings.rfc2136.tsig_secret_file = None
    with pytest.raises(PermanentProviderError, match="never sends unsigned updates"):
        Rfc2136Dns(settings).ensure(records[0])

    bad = tmp_path / "secret"
    bad.write_text("not base64!")
    settings.rfc2136.tsig_secret_file = bad
    with pytest.raises(PermanentProviderError, match="not a base64 key"):
        Rfc2136Dns(settings).ensure(records[0])


def _write(settings: DnsProviderSettings, name: str, rdtype: str, value: str) -> None:
    record = DnsRecord(name, rdtype, value)  # type: ignore[arg-type]
    Rfc2136Dns(settings).ensure(record)


@pytest.mark.parametrize(
    ("name", "rdtype", "value"),
    [
        ("evil.example.test. 300 IN A 203.0.113.66", "TXT", "x"),
        ("a\nb.example.test", "TXT", "x"),
        ("x.example.test", "CNAME", "evil.example. 300 IN A 203.0.113.66"),
        ("x.example.test", "CNAME", "target\n.example"),
        ("x.example.test", "TXT", "line1\nline2"),
        ("x.example.test", "A", "203.0.113.1; rm -rf /"),
        ("x.other-zone.test", "TXT", "outside the configured zones"),
        ("example.test", "CNAME", "apex.example.net"),
    ],
)
def test_dns_injection_is_refused_before_any_server_is_touched(
    name: str, rdtype: str, value: str,
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as trap:
        trap.settimeout(0.2)
        port = trap.getsockname()[1]
        settings = DnsProviderSettings.model_validate({
            "name": "rfc2136", "zones": ["example.test"],
            "rfc2136": {"server": "127.0.0.1", "port": port, "tsig_key_name": "k",
                        "tsig_secret": base64.b64encode(b"k" * 32).decode()},
        })
        with pytest.raises(PermanentProviderError):
            _write(settings, name, rdtype, value)
        with pytest.raises(TimeoutError):
            trap.accept()


def test_unreachable_server_is_transient(records: tuple[DnsRecord, DnsRecord]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        settings = dns_settings("bind")
        settings.rfc2136.port = probe.getsockname()[1]
        with pytest.raises(TransientProviderError, match="cannot reach DNS server"):
            Rfc2136Dns(settings).ensure(records[0])
