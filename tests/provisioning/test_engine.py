"""The engine end to end, in process, with the embedded providers."""

from __future__ import annotations

import json
import ssl
import threading
import time

import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from tenantops.config import Settings
from tenantops.errors import ProvisioningError, RunConflictError, TenantConflictError
from tenantops.provisioning import Engine, TenantSpec
from tenantops.provisioning.engine import _RunContext
from tenantops.provisioning.plan import plan_for
from tenantops.provisioning.providers.database import Database
from tenantops.provisioning.providers.dns.zone_file import ZoneFileDns
from tenantops.provisioning.providers.webhost.local_edge import LocalEdge

from ..catalog.postgres import postgres_database
from .conftest import EngineFactory, spec_for
from .middleware import Delay, Gate, Intervals
from .tls import fetch

ONBOARDING_STEPS = [
    "register_tenant", "store_database_secret", "place_database", "create_database",
    "store_connection", "create_cname_record", "create_verification_record", "wait_for_dns",
    "bind_hostname",
    "issue_certificate", "bind_certificate", "create_organization", "invite_admin",
    "activate_tenant",
]


def embedded(engine: Engine) -> tuple[ZoneFileDns, LocalEdge]:
    dns_provider, webhost = engine.providers.dns, engine.providers.webhost
    assert isinstance(dns_provider, ZoneFileDns)
    assert isinstance(webhost, LocalEdge)
    return dns_provider, webhost


def ask(port: int, name: str, rdtype: str, *, tcp: bool = False) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    if tcp:
        return dns.query.tcp(query, "127.0.0.1", port=port, timeout=5)
    return dns.query.udp(query, "127.0.0.1", port=port, timeout=5)


def test_onboarding_then_offboarding_in_process(make_engine: EngineFactory) -> None:
    engine = make_engine(providers={"webhost": {"issuance_delay_seconds": 0.3}})
    dns_provider, webhost = embedded(engine)
    spec = spec_for("acme", display_name="Acme Corp", custom_domain="portal.acme.test")

    run = engine.wait(engine.onboard(spec, requested_by="ops@contoso.test").id)

    assert run.status == "succeeded", run.error
    assert [(s.name, s.status) for s in run.steps] == [(n, "succeeded") for n in ONBOARDING_STEPS]
    assert run.step("issue_certificate").attempts >= 2, "issuance should have been pending"
    tenant = engine.catalog.get_tenant("acme")
    site = webhost.site()
    assert tenant.status == "active"
    assert tenant.registered_at is not None
    assert tenant.dns_records == {"CNAME portal.acme.test": site.default_hostname,
                                  "TXT asuid.portal.acme.test": site.verification_id}
    assert (tenant.database_name, tenant.database_login) == ("tenant_acme", "acme_app")
    assert tenant.hostname == "portal.acme.test"

    # The embedded responder answers both records, authoritatively, over UDP and TCP.
    assert dns_provider.responder is not None
    port = dns_provider.responder.port
    cname = ask(port, "portal.acme.test", "CNAME")
    assert cname.flags & dns.flags.AA
    assert [r.to_text() for r in cname.answer[0]] == [f"{site.default_hostname}."]
    txt = ask(port, "asuid.portal.acme.test", "TXT", tcp=True)
    assert [r.to_text() for r in txt.answer[0]] == [f'"{site.verification_id}"']

    # SNI = the domain: a certificate for the domain, chaining to the local CA (the context
    # trusts only that CA and checks the hostname), and the sample app for this tenant.
    assert webhost.edge is not None
    reply = fetch(webhost.edge.port, "portal.acme.test", webhost.ca_pem())
    names = reply.certificate.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert names == ["portal.acme.test"]
    ca = x509.load_pem_x509_certificate(webhost.ca_pem())
    assert reply.certificate.issuer == ca.subject
    assert tenant.certificate_thumbprint == reply.certificate.fingerprint(
        hashes.SHA1()).hex().upper()
    assert reply.status == 200
    assert "<h1>Acme Corp</h1>" in reply.body
    facts = json.loads(fetch(webhost.edge.port, "portal.acme.test", webhost.ca_pem(),
                             "/tenant.json").body)
    assert facts["slug"] == "acme"
    assert facts["display_name"] == "Acme Corp"
    assert facts["database"]["database"] == "tenant_acme"

    # The database and the organization exist.
    assert engine.providers.database.read_metadata(
        Database("tenant_acme", "acme_app", "acme-database-password"))["database"] == "tenant_acme"
    organization = engine.catalog.organizations.get("acme")
    assert organization is not None
    assert organization.domains == ("portal.acme.test",)
    assert organization.redirect_url == "https://portal.acme.test/"
    assert [i.email for i in organization.invitations] == ["admin@acme.test"]

    offboarding = engine.wait(engine.offboard("acme", requested_by="ops@contoso.test").id)

    assert offboarding.status == "succeeded", offboarding.error
    assert {s.status for s in offboarding.steps} == {"succeeded"}
    tenant = engine.catalog.get_tenant("acme")
    assert tenant.status == "offboarded"
    assert tenant.dns_records == {}
    assert (tenant.database_name, tenant.hostname, tenant.organization_id) == (None, None, None)
    assert ask(port, "portal.acme.test", "CNAME").rcode() == dns.rcode.REFUSED  # zone gone
    with pytest.raises(ssl.SSLError):
        fetch(webhost.edge.port, "portal.acme.test", webhost.ca_pem())
    assert engine.catalog.organizations.get("acme") is None
    assert list((engine.settings.data_dir / "databases").iterdir()) == []
    assert list((engine.settings.data_dir / "secrets").iterdir()) == []
    assert webhost.state.bindings() == []
    assert webhost.state.certificate("portal.acme.test") is None


def test_offboarding_can_keep_the_database(engine: Engine) -> None:
    engine.wait(engine.onboard(spec_for("keeper"), requested_by="ops").id)
    run = engine.wait(engine.offboard("keeper", requested_by="ops", keep_database=True).id)
    assert run.status == "succeeded"
    assert "drop_database" not in [s.name for s in run.steps]
    assert (engine.settings.data_dir / "databases" / "tenant_keeper.sqlite").exists()
    assert engine.catalog.get_tenant("keeper").database_name == "tenant_keeper"


def test_repeated_and_concurrent_requests_give_one_tenant_and_one_run(engine: Engine) -> None:
    spec = spec_for("rush")
    barrier = threading.Barrier(20)
    run_ids: list[str] = []
    failures: list[BaseException] = []

    def request() -> None:
        barrier.wait()
        try:
            run_ids.append(engine.onboard(spec, requested_by="burst").id)
        except BaseException as exc:  # asserted below
            failures.append(exc)

    threads = [threading.Thread(target=request) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert len(run_ids) == 20
    assert len(set(run_ids)) == 1
    run = engine.wait(run_ids[0])
    assert run.status == "succeeded"
    assert engine.onboard(spec, requested_by="later").id == run.id
    assert [t.slug for t in engine.catalog.list_tenants()] == ["rush"]
    assert len(engine.catalog.list_runs("rush")) == 1
    workflows = engine._dbos().list_workflows(workflow_id_prefix="tenantops/rush/")
    assert [w.workflow_id for w in workflows] == [run.workflow_id]
    with pytest.raises(TenantConflictError, match=r"display_name: registered .Rush Ltd."):
        engine.onboard(spec_for("rush", display_name="Someone Else"), requested_by="x")


def test_runs_for_different_slugs_proceed_in_parallel(make_engine: EngineFactory) -> None:
    intervals = Intervals("database")
    engine = make_engine(intervals, Delay(1.0, kind="database"))
    slugs = ["par-one", "par-two", "par-three", "par-four"]
    runs = [engine.onboard(spec_for(slug), requested_by="ops") for slug in slugs]
    for run in runs:
        assert engine.wait(run.id).status == "succeeded"
    assert {tenant for tenant, _, _ in intervals.calls} == set(slugs)
    # One run at a time would never have two database calls in flight; how many overlap at
    # once depends on the machine's load, so the test asks for at least two, not all four.
    events = sorted([(start, 1) for _, start, _ in intervals.calls]
                    + [(end, -1) for _, _, end in intervals.calls])
    in_flight = most = 0
    for _, change in events:
        in_flight += change
        most = max(most, in_flight)
    assert most >= 2, "database calls of different tenants never overlapped"


def test_running_step_is_visible_and_blocks_a_second_run(make_engine: EngineFactory) -> None:
    gate = Gate("database")
    engine = make_engine(gate)
    run = engine.onboard(spec_for("gated"), requested_by="ops")
    assert gate.entered.wait(20)
    seen = engine.get_run(run.id)
    assert seen.status == "running"
    statuses = {s.name: s.status for s in seen.steps}
    assert statuses["store_database_secret"] == "succeeded"
    assert statuses["create_database"] == "running"
    assert seen.step("create_database").attempts == 1
    assert statuses["activate_tenant"] == "pending"
    with pytest.raises(RunConflictError, match=r"run in progress \(onboard run") as caught:
        engine.offboard("gated", requested_by="ops")
    assert caught.value.active_run_id == run.id
    gate.open()
    assert engine.wait(run.id).status == "succeeded"


def test_preview_says_what_each_provider_would_do(engine: Engine) -> None:
    spec = spec_for("preview")
    before = engine.preview_onboarding(spec)
    assert [c.action for c in before.changes].count("create") == 13
    assert before.by_provider()["dns:zone-file"][0].resource == "dns:CNAME:app.preview.test"
    assert "13 to create, 0 to update, 0 to delete" in before.render()
    assert engine.catalog.find_tenant("preview") is None, "a preview must not change anything"
    engine.wait(engine.onboard(spec, requested_by="ops").id)
    after = engine.preview_onboarding(spec)
    assert {c.action for c in after.changes} == {"unchanged", "check"}
    removal = engine.preview_offboarding("preview")
    assert {c.action for c in removal.changes} == {"delete"}
    assert removal.count("delete") == 12  # delete_connection_secret, forget_placement included
    kept = engine.preview_offboarding("preview", keep_database=True)
    assert kept.count("delete") == 8


def test_engine_start_refuses_a_second_engine_in_the_process(engine: Engine) -> None:
    from tenantops.errors import ProvisioningError

    other = Engine(engine.settings)
    with pytest.raises(ProvisioningError, match="already started in this process"):
        other.start()
    assert engine.started


@pytest.mark.integration
def test_catalog_and_workflows_on_postgresql(make_engine: EngineFactory) -> None:
    with postgres_database() as url:
        engine = make_engine(catalog={"url": url}, engine={"system_database_url": url})
        try:
            assert engine.catalog.dialect == "postgresql"
            run = engine.wait(engine.onboard(spec_for("pgco"), requested_by="ops").id)
            assert run.status == "succeeded", run.error
            assert run.step("create_database").provider == "database:sqlite"
            assert engine.catalog.get_tenant("pgco").status == "active"
            off = engine.wait(engine.offboard("pgco", requested_by="ops").id)
            assert off.status == "succeeded", off.error
            # The catalog closes the run just before the workflow returns and DBOS records it.
            deadline = time.monotonic() + 30
            while {w.status for w in engine._dbos().list_workflows(
                    workflow_id_prefix="tenantops/pgco/")} != {"SUCCESS"}:
                assert time.monotonic() < deadline, "the workflows did not end as SUCCESS"
                time.sleep(0.05)
        finally:
            engine.stop()


def test_waiting_on_a_run_nobody_executes_says_no_worker_is_alive(settings: Settings) -> None:
    requester = Engine(settings)  # not started, and no worker anywhere
    requester.catalog.migrate()
    try:
        run = requester.onboard(spec_for("unattended"), requested_by="ops")
        with pytest.raises(ProvisioningError) as caught:
            requester.wait(run.id, timeout=0.2)
        assert str(caught.value) == (
            f"run {run.id} is still pending after 0 s; step register_tenant is pending; no "
            "worker has been seen in the last 120 s: start one (tenantops worker)")
        requester.catalog.worker_seen("worker-7", host="h", pid=1)
        with pytest.raises(ProvisioningError, match=r"; workers alive: worker-7$"):
            requester.wait(run.id, timeout=0.2)
    finally:
        requester.stop()


def test_the_last_step_run_again_after_closing_its_run_reports_its_success(
        engine: Engine) -> None:
    """The last step closes the run in its own transaction; a worker killed after that
    commit and before the step's checkpoint runs the step again on recovery, which must
    report the recorded success (not a cancellation) and call no provider."""
    run = engine.wait(engine.onboard(spec_for("closed"), requested_by="t").id)
    assert run.status == "succeeded"
    plan = plan_for(run.kind, run.options)
    last = plan.steps[-1].name
    context = _RunContext(TenantSpec(**engine.catalog.get_tenant(run.tenant_slug).spec_fields()),
                          plan, {s.name: s.outputs for s in run.steps})
    again = engine._execute(run.id, last, context)
    assert again == {"step": last, "state": "succeeded", "outputs": run.step(last).outputs,
                     "closed_run": True}
    assert engine.get_run(run.id).step(last).attempts == 1
    # Any other step of a finished run reports the run as ended.
    assert engine._execute(run.id, plan.steps[0].name, context)["state"] == "cancelled"
