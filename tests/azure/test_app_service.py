"""The ``azure-app-service`` web host against the App Service fake: hostname binding with its
pre-check, the managed certificate's 202 and polling, SNI binding, Key Vault certificates,
removal in order, and conflicts."""

from __future__ import annotations

import pytest

from tenantops.errors import PermanentProviderError, TransientProviderError
from tenantops.provisioning.providers.base import Pending, Ready
from tenantops.provisioning.providers.dns import DnsRecord
from tenantops.provisioning.providers.webhost import (
    Certificate,
    CertificateRenewal,
    HostnameBinding,
    SniBinding,
)
from tests.azure.conftest import (
    APP,
    RESOURCE_GROUP,
    ZONE,
    AzureWorld,
    build_world,
    settle,
)
from tests.azure_fake import SUBSCRIPTION, FakeAzure, FakeSite, Fault

HOST = f"acme.{ZONE}"


def point_dns(world: AzureWorld, host: str = HOST) -> None:
    site = world.webhost.site()
    for record in (DnsRecord(host, "CNAME", site.default_hostname),
                   DnsRecord(f"asuid.{host}", "TXT", site.verification_id)):
        settle(world.dns, "ensure", record, world.fake)


def bind_and_issue(world: AzureWorld) -> str:
    point_dns(world)
    settle(world.webhost, "ensure", HostnameBinding(HOST, "acme"), world.fake)
    ready, _ = settle(world.webhost, "ensure", Certificate(HOST), world.fake)
    return str(ready.outputs["thumbprint"])


def test_site_identity_is_read_from_the_web_app_once(world: AzureWorld) -> None:
    first, second = world.webhost.site(), world.webhost.site()

    assert first == second
    assert first.default_hostname == f"{APP}.azurewebsites.net"
    assert first.verification_id == world.site.verification_id
    assert len(world.fake.calls("GET", f"/sites/{APP}")) == 1


def test_hostname_is_pending_while_app_service_does_not_see_the_asuid_record(
    world: AzureWorld,
) -> None:
    outcome = world.webhost.ensure(HostnameBinding(HOST, "acme"))

    assert isinstance(outcome, Pending)
    assert f"TXT asuid.{HOST} = {world.site.verification_id}" in outcome.reason
    assert "no TXT record" in outcome.reason
    assert world.fake.calls("PUT", "/hostNameBindings/") == []


def test_hostname_binding_is_created_once_after_the_pre_check(world: AzureWorld) -> None:
    point_dns(world)

    first = world.webhost.ensure(HostnameBinding(HOST, "acme"))
    again = world.webhost.ensure(HostnameBinding(HOST, "acme"))

    assert isinstance(first, Ready)
    assert first.changed
    assert isinstance(again, Ready)
    assert not again.changed
    assert len(world.fake.calls("GET", "/analyzeCustomHostname")) == 1
    (put,) = world.fake.calls("PUT", "/hostNameBindings/")
    assert put.api_version == "2025-05-01"
    assert put.body == {"properties": {
        "siteName": APP, "hostNameType": "Verified", "azureResourceType": "Website",
        "customHostNameDnsRecordType": "CName"}}
    assert world.site.bindings[HOST]["sslState"] == "Disabled"


def test_hostname_bound_to_another_app_is_refused_naming_that_app(world: AzureWorld) -> None:
    other = world.fake.app_service.add_site(FakeSite("other-app", RESOURCE_GROUP, SUBSCRIPTION))
    other.bindings[HOST] = {"sslState": "Disabled"}
    point_dns(world)

    with pytest.raises(PermanentProviderError) as caught:
        world.webhost.ensure(HostnameBinding(HOST, "acme"))

    assert f"{HOST} is already bound to another app ({other.id})" in str(caught.value)
    assert caught.value.provider == "webhost:azure-app-service"


def test_managed_certificate_202_is_pending_until_the_thumbprint_appears(
    world: AzureWorld,
) -> None:
    point_dns(world)
    settle(world.webhost, "ensure", HostnameBinding(HOST, "acme"), world.fake)
    outcomes = []
    for _ in range(10):
        outcome = world.webhost.ensure(Certificate(HOST))
        outcomes.append(outcome)
        if isinstance(outcome, Ready):
            break
        world.fake.clock.advance(outcome.retry_after)

    pending = [o for o in outcomes if isinstance(o, Pending)]
    assert len(pending) == 5  # issuance 300 s, polled every 60 s
    assert "accepted the order" in pending[0].reason
    assert all("still issuing" in p.reason for p in pending[1:])
    ready = outcomes[-1]
    assert isinstance(ready, Ready)
    cert = world.fake.app_service.certificates[f"{HOST}-{APP}".lower()]
    assert ready.outputs["thumbprint"] == cert.thumbprint
    assert ready.outputs["expires_at"].startswith("2027-06-01")
    (put,) = world.fake.calls("PUT", "/certificates/")
    assert put.api_version == "2025-05-01"
    assert put.body == {"location": world.site.location, "properties": {
        "canonicalName": HOST, "password": "", "serverFarmId": world.site.server_farm_id}}


def test_sni_binding_uses_the_thumbprint_and_is_idempotent(world: AzureWorld) -> None:
    thumbprint = bind_and_issue(world)

    first = world.webhost.ensure(SniBinding(HOST, thumbprint))
    again = world.webhost.ensure(SniBinding(HOST, thumbprint))

    assert isinstance(first, Ready)
    assert first.changed
    assert isinstance(again, Ready)
    assert not again.changed
    assert world.site.bindings[HOST]["sslState"] == "SniEnabled"
    assert world.site.bindings[HOST]["thumbprint"] == thumbprint


def test_sni_binding_before_the_hostname_is_refused(world: AzureWorld) -> None:
    with pytest.raises(PermanentProviderError, match="run the bind_hostname step first"):
        world.webhost.ensure(SniBinding(HOST, "AB" * 20))


def test_deleting_a_bound_certificate_is_a_conflict_with_the_arm_code(world: AzureWorld) -> None:
    thumbprint = bind_and_issue(world)
    world.webhost.ensure(SniBinding(HOST, thumbprint))

    with pytest.raises(PermanentProviderError) as caught:
        world.webhost.remove(Certificate(HOST))

    message = str(caught.value)
    assert "Azure answered 409 (Conflict: Certificate" in message
    assert "delete the SSL binding first" in message
    assert caught.value.status_code == 409


def test_removal_in_reverse_order_leaves_nothing_and_repeats_harmlessly(
    world: AzureWorld,
) -> None:
    thumbprint = bind_and_issue(world)
    world.webhost.ensure(SniBinding(HOST, thumbprint))
    steps = [SniBinding(HOST, ""), Certificate(HOST), HostnameBinding(HOST, "acme")]

    removed = [world.webhost.remove(step) for step in steps]
    again = [world.webhost.remove(step) for step in steps]

    assert all(isinstance(o, Ready) and o.changed for o in removed)
    assert all(isinstance(o, Ready) and not o.changed for o in again)
    assert world.site.bindings == {}
    assert world.fake.app_service.certificates == {}


def test_another_operation_in_progress_on_the_site_is_transient(world: AzureWorld) -> None:
    point_dns(world)
    world.fake.app_service.busy_sites.add(APP)

    with pytest.raises(TransientProviderError, match="another operation"):
        world.webhost.ensure(HostnameBinding(HOST, "acme"))

    world.fake.app_service.busy_sites.clear()
    assert isinstance(world.webhost.ensure(HostnameBinding(HOST, "acme")), Ready)


def test_key_vault_certificate_is_imported_without_polling() -> None:
    world = build_world(FakeAzure(), certificate_source="key-vault")
    point_dns(world)
    settle(world.webhost, "ensure", HostnameBinding(HOST, "acme"), world.fake)

    outcome = world.webhost.ensure(Certificate(HOST))

    assert isinstance(outcome, Ready)
    assert outcome.outputs["source"] == "key-vault"
    (put,) = world.fake.calls("PUT", "/certificates/")
    assert put.body["properties"] == {
        "keyVaultId": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/"
                      "providers/Microsoft.KeyVault/vaults/tenantops-kv",
        "keyVaultSecretName": HOST.replace(".", "-"),
        "serverFarmId": world.site.server_farm_id}


def test_a_hostname_not_resolving_to_the_app_gets_no_managed_certificate(
    world: AzureWorld,
) -> None:
    point_dns(world)
    settle(world.webhost, "ensure", HostnameBinding(HOST, "acme"), world.fake)
    world.fake.dns.set_record(ZONE, "acme", "CNAME",
                              {"CNAMERecord": {"cname": "edge.example-cdn.net"}})

    with pytest.raises(PermanentProviderError) as caught:
        world.webhost.ensure(Certificate(HOST))

    assert f"does not resolve to {APP}.azurewebsites.net" in str(caught.value)
    assert f"a CNAME record pointing directly at {APP}.azurewebsites.net (no proxy or " \
           "Traffic Manager in between)" in str(caught.value)
    assert world.fake.app_service.certificates == {}


def test_a_caa_record_that_forbids_digicert_gets_no_managed_certificate(
    world: AzureWorld,
) -> None:
    point_dns(world)
    settle(world.webhost, "ensure", HostnameBinding(HOST, "acme"), world.fake)
    world.fake.dns.set_record(ZONE, "@", "CAA", {"caaRecords": [
        {"flags": 0, "tag": "issue", "value": "letsencrypt.org"}]})

    with pytest.raises(PermanentProviderError) as caught:
        world.webhost.ensure(Certificate(HOST))

    assert f"The CAA record at {ZONE} does not allow DigiCert" in str(caught.value)
    assert 'add a CAA record 0 issue "digicert.com"' in str(caught.value)


def test_a_caa_record_that_allows_digicert_lets_the_order_through(world: AzureWorld) -> None:
    world.fake.dns.set_record(ZONE, "@", "CAA", {"caaRecords": [
        {"flags": 0, "tag": "issue", "value": "letsencrypt.org"},
        {"flags": 0, "tag": "issue", "value": "digicert.com"}]})

    assert bind_and_issue(world)


def test_too_many_certificate_orders_is_transient_with_retry_after(world: AzureWorld) -> None:
    point_dns(world)
    settle(world.webhost, "ensure", HostnameBinding(HOST, "acme"), world.fake)
    world.fake.inject(Fault(429, count=1, retry_after=120, method="PUT",
                            path_contains="/certificates/"))

    with pytest.raises(TransientProviderError) as caught:
        world.webhost.ensure(Certificate(HOST))

    assert caught.value.retry_after == 120
    assert "retry after 120 s" in str(caught.value)


def test_a_renewal_follows_the_managed_certificate_app_service_renewed_and_rebinds(
        world: AzureWorld) -> None:
    old = bind_and_issue(world)
    settle(world.webhost, "ensure", SniBinding(HOST, old), world.fake)

    not_yet = world.webhost.ensure(CertificateRenewal(HOST, old))
    world.fake.app_service.renew_managed(f"{HOST}-{APP}")
    renewed = world.webhost.ensure(CertificateRenewal(HOST, old))
    assert isinstance(renewed, Ready)
    rebound = world.webhost.ensure(SniBinding(HOST, str(renewed.outputs["thumbprint"])))

    assert isinstance(not_yet, Ready)
    assert not not_yet.changed
    assert not_yet.outputs["thumbprint"] == old
    assert not_yet.message is not None
    assert "has not renewed this managed certificate yet" in not_yet.message
    assert renewed.changed
    assert renewed.outputs["thumbprint"] != old
    assert renewed.outputs["expires_at"].startswith("2027-12-01")
    assert isinstance(rebound, Ready)
    assert rebound.changed
    assert world.site.bindings[HOST]["thumbprint"] == renewed.outputs["thumbprint"]
    assert len(world.fake.calls("PUT", "/certificates/")) == 1  # nothing ordered again


def test_renewing_a_hostname_without_a_certificate_says_what_to_do(world: AzureWorld) -> None:
    with pytest.raises(PermanentProviderError, match="run the tenant's onboarding"):
        world.webhost.ensure(CertificateRenewal(HOST, "AB" * 20))


def test_a_renewal_imports_a_newer_key_vault_version_and_rebinds() -> None:
    world = build_world(FakeAzure(), certificate_source="key-vault")
    point_dns(world)
    settle(world.webhost, "ensure", HostnameBinding(HOST, "acme"), world.fake)
    first = world.webhost.ensure(Certificate(HOST))
    assert isinstance(first, Ready)
    old = str(first.outputs["thumbprint"])
    settle(world.webhost, "ensure", SniBinding(HOST, old), world.fake)

    same = world.webhost.ensure(CertificateRenewal(HOST, old))
    world.fake.app_service.key_vault_versions[HOST.replace(".", "-")] = 2  # renewed in KV
    newer = world.webhost.ensure(CertificateRenewal(HOST, old))
    assert isinstance(newer, Ready)
    rebound = world.webhost.ensure(SniBinding(HOST, str(newer.outputs["thumbprint"])))
    replayed = world.webhost.ensure(CertificateRenewal(HOST, old))

    assert isinstance(same, Ready)
    assert not same.changed
    assert same.message is not None
    assert "Key Vault holds no newer version" in same.message
    assert newer.changed
    assert newer.outputs["thumbprint"] != old
    assert newer.outputs["expires_at"].startswith("2027-12-01")
    assert isinstance(rebound, Ready)
    assert rebound.changed
    assert world.site.bindings[HOST]["thumbprint"] == newer.outputs["thumbprint"]
    assert isinstance(replayed, Ready)
    assert replayed.outputs["thumbprint"] == newer.outputs["thumbprint"]
    # no longer at the old thumbprint: a replay imports nothing again
    assert len(world.fake.calls("PUT", "/certificates/")) == 3  # issue, two re-imports
