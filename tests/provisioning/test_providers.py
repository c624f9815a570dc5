"""The embedded providers one by one: idempotent ensure/remove, no I/O at construction,
and the servers they run (DNS responder, TLS edge, sample app)."""

from __future__ import annotations

import errno
import ssl
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.zone
import pytest

from tenantops.catalog import Catalog
from tenantops.config import Settings
from tenantops.errors import PermanentProviderError, ProviderError, TransientProviderError
from tenantops.provisioning.providers.base import (
    Outcome,
    Pending,
    Provider,
    ProviderCall,
    Ready,
    Resource,
)
from tenantops.provisioning.providers.database import Database
from tenantops.provisioning.providers.dns import DnsPropagation, DnsRecord
from tenantops.provisioning.providers.dns.zone_file import ZoneFileDns
from tenantops.provisioning.providers.organization import (
    OrganizationInvitation,
    TenantOrganization,
)
from tenantops.provisioning.providers.registry import Providers, build_providers
from tenantops.provisioning.providers.secrets import Secret
from tenantops.provisioning.providers.webhost import Certificate, HostnameBinding, SniBinding
from tenantops.provisioning.providers.webhost.local_edge import LocalEdge

from .conftest import fast_settings
from .tls import fetch


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return fast_settings(tmp_path / "data")


@pytest.fixture
def providers(settings: Settings, tmp_path: Path) -> Iterator[Providers]:
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    catalog.migrate()
    built = build_providers(settings, catalog)
    services = built.services()
    for service in services:
        service.start()
    yield built
    for service in reversed(services):
        service.stop()
    catalog.close()


def dns_of(providers: Providers) -> ZoneFileDns:
    assert isinstance(providers.dns, ZoneFileDns)
    return providers.dns


def edge_of(providers: Providers) -> LocalEdge:
    assert isinstance(providers.webhost, LocalEdge)
    return providers.webhost


def twice(action: Callable[[Resource], Outcome], resource: Resource) -> tuple[Ready, Ready]:
    first, second = action(resource), action(resource)
    assert isinstance(first, Ready)
    assert isinstance(second, Ready)
    return first, second


def test_building_providers_does_no_io(settings: Settings, tmp_path: Path) -> None:
    catalog = Catalog(f"sqlite:///{tmp_path / 'never' / 'catalog.sqlite'}")
    build_providers(settings, catalog)
    assert not settings.data_dir.exists()
    assert not (tmp_path / "never").exists()


def test_secret_is_generated_once_and_readable_only_by_its_owner(providers: Providers) -> None:
    first, second = twice(providers.secrets.ensure, Secret("acme-database-password"))
    assert (first.changed, second.changed) == (True, False)
    assert first.outputs == {"secret": "acme-database-password"}, "outputs never hold values"
    value = providers.secrets.read("acme-database-password")
    assert len(value) >= 40
    path = Path(providers.secrets.directory) / "acme-database-password"  # type: ignore[attr-defined]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    removed, again = twice(providers.secrets.remove, Secret("acme-database-password"))
    assert (removed.changed, again.changed) == (True, False)
    with pytest.raises(PermanentProviderError, match="secret 'acme-database-password' does not"):
        providers.secrets.read("acme-database-password")


def test_secret_names_cannot_escape_the_folder() -> None:
    with pytest.raises(PermanentProviderError, match=r"secret name '\.\./etc' must be"):
        Secret("../etc")


def test_database_login_uses_the_secret_and_refuses_a_wrong_one(providers: Providers) -> None:
    providers.secrets.ensure(Secret("acme-db"))
    database = Database("tenant_acme", "acme_app", "acme-db")
    first, second = twice(providers.database.ensure, database)
    assert (first.changed, second.changed) == (True, False)
    assert providers.database.read_metadata(database)["database"] == "tenant_acme"
    assert providers.database.observe(database) == {
        "name": "tenant_acme", "login": "acme_app", "secret": "acme-db", "server": "default",
        "login_enabled": True}
    providers.secrets.remove(Secret("acme-db"))
    providers.secrets.ensure(Secret("acme-db"))  # a new password the database does not know
    with pytest.raises(PermanentProviderError, match="login 'acme_app' was refused"):
        providers.database.read_metadata(database)
    assert providers.database.ensure(database).changed  # type: ignore[union-attr]
    assert providers.database.read_metadata(database)["database"] == "tenant_acme"
    removed, again = twice(providers.database.remove, database)
    assert (removed.changed, again.changed) == (True, False)
    assert providers.database.observe(database) is None


def test_zone_files_are_rfc1035_and_the_responder_answers(providers: Providers) -> None:
    dns_provider = dns_of(providers)
    cname = DnsRecord("portal.acme.test", "CNAME", "edge.tenantops.localhost", zone="acme.test")
    txt = DnsRecord("asuid.portal.acme.test", "TXT", "ABC123", zone="acme.test")
    first, second = twice(dns_provider.ensure, cname)
    assert (first.changed, second.changed) == (True, False)
    dns_provider.ensure(txt)
    text = (dns_provider.files.path("acme.test")).read_text()
    zone = dns.zone.from_text(text, origin="acme.test.")  # standard zone-file syntax
    assert zone.get_rdataset("@", "SOA")[0].serial == 3  # type: ignore[index]
    assert "portal 300 IN CNAME edge.tenantops.localhost." in text
    assert dns_provider.responder is not None
    port = dns_provider.responder.port

    def ask(name: str, rdtype: str) -> dns.message.Message:
        return dns.query.udp(dns.message.make_query(name, rdtype), "127.0.0.1", port=port,
                             timeout=5)

    answer = ask("portal.acme.test", "A")  # a CNAME is returned for any type
    assert answer.flags & dns.flags.AA
    assert answer.answer[0].to_text() == "portal.acme.test. 300 IN CNAME edge.tenantops.localhost."
    assert ask("nothing.acme.test", "A").rcode() == dns.rcode.NXDOMAIN
    assert ask("asuid.portal.acme.test", "A").answer == []  # NODATA
    assert ask("example.org", "A").rcode() == dns.rcode.REFUSED
    tcp = dns.query.tcp(dns.message.make_query("asuid.portal.acme.test", "TXT"), "127.0.0.1",
                        port=port, timeout=5)
    assert tcp.answer[0].to_text() == 'asuid.portal.acme.test. 300 IN TXT "ABC123"'
    assert isinstance(dns_provider.ensure(DnsPropagation((cname, txt))), Ready)
    missing = DnsRecord("other.acme.test", "TXT", "x", zone="acme.test")
    pending = dns_provider.ensure(DnsPropagation((missing,)))
    assert isinstance(pending, Pending)
    assert "TXT other.acme.test not answered yet" in pending.reason

    with pytest.raises(PermanentProviderError, match="CNAME cannot share a name"):
        dns_provider.ensure(DnsRecord("portal.acme.test", "TXT", "x", zone="acme.test"))
    for record in (txt, cname):
        removed, again = twice(dns_provider.remove, record)
        assert (removed.changed, again.changed) == (True, False)
    assert dns_provider.files.names() == [], "an auto-created zone goes with its last record"


def test_configured_zones_bound_where_records_may_go(tmp_path: Path) -> None:
    settings = fast_settings(tmp_path / "data", providers={"dns": {"zones": ["tenants.test"],
                                                                   "serve": False}})
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    dns_provider = build_providers(settings, catalog).dns
    assert isinstance(dns_provider, ZoneFileDns)
    assert dns_provider.zone_for("app.acme.tenants.test", "acme.tenants.test") == "tenants.test"
    with pytest.raises(PermanentProviderError, match=r"no zone in providers\.dns\.zones"):
        dns_provider.ensure(DnsRecord("app.acme.test", "CNAME", "edge.test"))
    dns_provider.ensure(DnsRecord("app.acme.tenants.test", "CNAME", "edge.test"))
    assert dns_provider.lookup("app.acme.tenants.test", "CNAME") == ["edge.test"]


def test_web_host_binds_in_app_service_order_and_serves_by_sni(providers: Providers) -> None:
    edge = edge_of(providers)
    site = edge.site()
    host = "portal.acme.test"
    binding = HostnameBinding(host, "acme")
    with pytest.raises(PermanentProviderError, match=f"domain verification failed for {host}"):
        edge.ensure(binding)
    providers.dns.ensure(DnsRecord(host, "CNAME", site.default_hostname, zone="acme.test"))
    providers.dns.ensure(DnsRecord(f"asuid.{host}", "TXT", site.verification_id,
                                   zone="acme.test"))
    with pytest.raises(PermanentProviderError, match="bind the hostname first"):
        edge.ensure(Certificate(host))
    twice(edge.ensure, binding)
    issued, again = twice(edge.ensure, Certificate(host))
    assert issued.outputs["thumbprint"] == again.outputs["thumbprint"]
    assert not again.changed
    with pytest.raises(PermanentProviderError, match="no certificate with thumbprint BAD"):
        edge.ensure(SniBinding(host, "BAD"))
    assert edge.edge is not None
    with pytest.raises(ssl.SSLError):  # bound, but not with SNI yet: nothing is served
        fetch(edge.edge.port, host, edge.ca_pem())
    twice(edge.ensure, SniBinding(host, issued.outputs["thumbprint"]))
    with pytest.raises(ssl.SSLError):  # another name is refused, not served a wrong cert
        fetch(edge.edge.port, "other.acme.test", edge.ca_pem())
    reply = fetch(edge.edge.port, host, edge.ca_pem())
    assert reply.status == 404, "no tenant in the catalog serves this host yet"
    with pytest.raises(PermanentProviderError, match="still bound"):
        edge.remove(Certificate(host))
    for resource in (SniBinding(host, ""), Certificate(host), binding):
        removed, again = twice(edge.remove, resource)
        assert (removed.changed, again.changed) == (True, False)


def test_certificate_stays_pending_until_issued(tmp_path: Path) -> None:
    settings = fast_settings(tmp_path / "data", providers={
        "webhost": {"issuance_delay_seconds": 30, "verify_domain": False}})
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    edge = build_providers(settings, catalog, serve=False).webhost
    edge.ensure(HostnameBinding("portal.acme.test", "acme"))
    outcome = edge.ensure(Certificate("portal.acme.test"))
    assert isinstance(outcome, Pending)
    assert 25 < outcome.retry_after <= 30
    assert "being issued" in outcome.reason


def test_local_organizations_live_in_the_catalog(providers: Providers) -> None:
    organization = TenantOrganization("acme", "Acme", ("portal.acme.test",),
                                      "https://portal.acme.test/")
    created, again = twice(providers.organization.ensure, organization)
    assert (created.changed, again.changed) == (True, False)
    assert providers.organization.observe(organization) == {
        "alias": "acme", "name": "Acme", "domains": ("portal.acme.test",),
        "redirect_url": "https://portal.acme.test/", "enabled": True, "managed": True,
        "attributes": ()}
    invitation = OrganizationInvitation("acme", "admin@acme.test")
    invited, _ = twice(providers.organization.ensure, invitation)
    assert invited.outputs["status"] == "pending"
    with pytest.raises(PermanentProviderError, match="already belongs to organization 'acme'"):
        providers.organization.ensure(TenantOrganization(
            "evil", "Evil", ("portal.acme.test",), "https://evil.test/"))
    with pytest.raises(PermanentProviderError, match="organization 'ghost' does not exist"):
        providers.organization.ensure(OrganizationInvitation("ghost", "a@b.test"))
    removed, again = twice(providers.organization.remove, organization)
    assert (removed.changed, again.changed) == (True, False)


class Exploding(Provider):
    """A provider whose implementation lets a library exception escape."""

    kind = "secrets"
    name = "exploding"
    resource_types = (Secret,)

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def _ensure(self, resource: Resource) -> Outcome:
        raise self.error

    def _remove(self, resource: Resource) -> Outcome:
        return Ready()

    def _observe(self, resource: Resource) -> dict[str, Any] | None:
        return None


@pytest.mark.parametrize(("error", "expected"), [
    (ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"), TransientProviderError),
    (TimeoutError("read timed out"), TransientProviderError),
    # A full disk clears when space is freed (issue 20): retried, like a reset connection.
    (OSError(errno.ENOSPC, "No space left on device"), TransientProviderError),
    (PermissionError(errno.EACCES, "Permission denied"), PermanentProviderError),
    (ValueError("bad value"), PermanentProviderError),
])
def test_escaping_exceptions_become_provider_errors(
    error: Exception, expected: type[ProviderError],
) -> None:
    with pytest.raises(expected) as caught:
        Exploding(error).ensure(Secret("x"))
    assert caught.value.provider == "secrets:exploding"
    assert caught.value.action == "ensure"
    assert caught.value.resource == "secret:x"
    assert str(caught.value).startswith("secrets:exploding could not ensure secret:x:")


def test_unsupported_resource_is_refused_by_name(providers: Providers) -> None:
    with pytest.raises(PermanentProviderError, match="does not manage Database resources"):
        providers.secrets.ensure(Database("tenant_x", "x_app", "x"))


def test_middleware_wraps_calls_outermost_first(providers: Providers) -> None:
    seen: list[str] = []

    def named(label: str) -> Callable[[ProviderCall, Callable[[], Outcome]], Outcome]:
        def middleware(call: ProviderCall, proceed: Callable[[], Outcome]) -> Outcome:
            seen.append(f"{label}>{call.verb}:{call.resource.key}")
            outcome = proceed()
            seen.append(f"<{label}")
            return outcome
        return middleware

    providers.secrets.use([named("outer"), named("inner")])
    providers.secrets.ensure(Secret("mw"))
    assert seen == ["outer>ensure:secret:mw", "inner>ensure:secret:mw", "<inner", "<outer"]
