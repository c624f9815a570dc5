"""Day-two runs on the embedded default, in process: change a tenant (a new domain served
before the old one goes, a new administrator, a new plan), suspend and resume it, offboard it
suspended; previews; a failed step retried."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from tenantops.catalog import Run
from tenantops.errors import (
    PermanentProviderError,
    RunConflictError,
    SpecError,
    TenantStateError,
)
from tenantops.provisioning import Engine
from tenantops.provisioning.engine import current_step
from tenantops.provisioning.providers.base import Outcome, ProviderCall
from tenantops.provisioning.providers.database import Database
from tenantops.provisioning.providers.dns.zones import ZoneFiles
from tenantops.provisioning.providers.webhost.edge import SUSPENDED_PAGE
from tenantops.provisioning.providers.webhost.local_edge import LocalEdge
from tenantops.provisioning.run_requests import TenantChange

from .conftest import EngineFactory, spec_for
from .tls import fetch


class StepGate:
    """Holds the provider call of one step (by name) until `open` is called."""

    def __init__(self, step: str) -> None:
        self.step = step
        self.entered = threading.Event()
        self._open = threading.Event()

    def open(self) -> None:
        self._open.set()

    def __call__(self, call: ProviderCall, proceed: Callable[[], Outcome]) -> Outcome:
        ref = current_step()
        if ref is not None and ref.step == self.step:
            self.entered.set()
            if not self._open.wait(30):
                raise PermanentProviderError("the test never opened the gate")
        return proceed()


class FailStep:
    """Fails the calls of one step (by name) permanently until `fix` is called."""

    def __init__(self, step: str) -> None:
        self.step = step
        self.calls = 0
        self._fixed = False

    def fix(self) -> None:
        self._fixed = True

    def __call__(self, call: ProviderCall, proceed: Callable[[], Outcome]) -> Outcome:
        ref = current_step()
        if ref is not None and ref.step == self.step:
            self.calls += 1
            if not self._fixed:
                raise PermanentProviderError(f"injected failure in {self.step}")
        return proceed()


def onboard(engine: Engine, slug: str = "acme") -> Run:
    run = engine.wait(engine.onboard(spec_for(slug), requested_by="ops").id)
    assert run.status == "succeeded", run.error
    return run


def finished(engine: Engine, run: Run | None) -> Run:
    assert run is not None
    done = engine.wait(run.id, timeout=60)
    assert done.status == "succeeded", (done.failed_step, done.error)
    return done


def edge_of(engine: Engine) -> LocalEdge:
    webhost = engine.providers.webhost
    assert isinstance(webhost, LocalEdge)
    assert webhost.edge is not None
    return webhost


def served(engine: Engine, hostname: str) -> int:
    edge = edge_of(engine)
    assert edge.edge is not None
    return fetch(edge.edge.port, hostname, edge.ca_pem()).status


def test_a_new_domain_is_served_before_the_old_one_goes(make_engine: EngineFactory) -> None:
    gate = StepGate("unbind_previous_certificate")
    engine = make_engine(gate, domains={"change_grace_seconds": 0})
    onboard(engine)
    run = engine.update("acme", TenantChange(custom_domain="www.acme2.test"),
                        requested_by="ops")
    assert run is not None
    assert gate.entered.wait(30)
    # The grace period is over and the old name is about to go: both names are served.
    assert served(engine, "www.acme2.test") == 200
    assert served(engine, "app.acme.test") == 200
    assert engine.catalog.tenant_for_hostname("app.acme.test") is not None
    organization = engine.catalog.organizations.get("acme")
    assert organization is not None
    assert organization.domains == ("app.acme.test", "www.acme2.test")
    gate.open()
    done = finished(engine, run)

    assert done.options["changes"] == {"custom_domain": {
        "from": "app.acme.test", "to": "www.acme2.test"}}
    assert served(engine, "www.acme2.test") == 200
    with pytest.raises(ssl.SSLError):  # the edge no longer serves it
        served(engine, "app.acme.test")
    zones = ZoneFiles(engine.settings.data_dir / "dns")
    assert zones.load("acme.test") is None or not zones.load("acme.test").get_node(  # type: ignore[union-attr]
        "app")
    tenant = engine.catalog.get_tenant("acme")
    assert (tenant.status, tenant.custom_domain, tenant.hostname) == (
        "active", "www.acme2.test", "www.acme2.test")
    assert set(tenant.dns_records) == {"CNAME www.acme2.test", "TXT asuid.www.acme2.test"}
    assert engine.catalog.retiring_domains_of("acme") == []
    organization = engine.catalog.organizations.get("acme")
    assert organization is not None
    assert (organization.domains, organization.redirect_url) == (
        ("www.acme2.test",), "https://www.acme2.test/")
    assert engine.catalog.tenant_for_hostname("app.acme.test") is None
    # The old name is free again.
    other = engine.wait(engine.onboard(spec_for("globex", custom_domain="app.acme.test"),
                                       requested_by="ops").id)
    assert other.status == "succeeded", other.error


def test_the_old_domain_waits_out_the_grace_period(make_engine: EngineFactory) -> None:
    engine = make_engine(domains={"change_grace_seconds": 3600})
    onboard(engine)
    run = engine.update("acme", TenantChange(custom_domain="www.acme2.test"),
                        requested_by="ops")
    assert run is not None
    step = None
    for _ in range(600):
        current = engine.get_run(run.id)
        step = current.step("wait_for_grace_period")
        if step.status == "waiting":
            break
        threading.Event().wait(0.05)
    assert step is not None
    assert step.status == "waiting"
    assert "app.acme.test keep serving until" in (step.message or "")
    (retiring,) = engine.catalog.retiring_domains_of("acme")
    assert retiring.retire_at is not None
    assert 3500 < (retiring.retire_at - retiring.created_at).total_seconds() <= 3601
    assert engine.get_run(run.id).step("unbind_previous_certificate").status == "pending"
    assert served(engine, "app.acme.test") == 200
    assert served(engine, "www.acme2.test") == 200
    # Another change waits for this one, naming it.
    with pytest.raises(RunConflictError, match=run.id):
        engine.suspend("acme", reason="test", requested_by="ops")
    engine.cancel(run.id)


def test_a_new_administrator_is_invited_and_the_previous_one_kept_unless_asked(
        engine: Engine) -> None:
    onboard(engine)
    finished(engine, engine.update("acme", TenantChange(admin_email="second@acme.test"),
                                   requested_by="ops"))
    organization = engine.catalog.organizations.get("acme")
    assert organization is not None
    assert {i.email for i in organization.invitations} == {"admin@acme.test",
                                                           "second@acme.test"}
    with pytest.raises(SpecError, match="remove_previous_admin = True: needs a new admin_email"):
        engine.update("acme", TenantChange(remove_previous_admin=True), requested_by="ops")
    run = finished(engine, engine.update(
        "acme", TenantChange(admin_email="third@acme.test", remove_previous_admin=True),
        requested_by="ops"))
    assert [s.name for s in run.steps] == ["invite_admin", "remove_previous_admin"]
    organization = engine.catalog.organizations.get("acme")
    assert organization is not None
    assert {i.email for i in organization.invitations} == {"admin@acme.test",
                                                           "third@acme.test"}


def test_a_plan_change_runs_the_steps_whose_resources_depend_on_the_plan(
        engine: Engine) -> None:
    onboard(engine)
    preview = engine.preview_update("acme", TenantChange(plan="premium", tags={"tier": "gold"}))
    assert preview.diff == {"plan": {"from": "standard", "to": "premium"},
                            "tags": {"from": {}, "to": {"tier": "gold"}}}
    assert [c.step for c in preview.changes] == ["create_database", "create_organization"]
    run = finished(engine, engine.update("acme", TenantChange(plan="premium",
                                                               tags={"tier": "gold"}),
                                         requested_by="ops"))
    assert [s.name for s in run.steps] == ["create_database", "create_organization"]
    tenant = engine.catalog.get_tenant("acme")
    assert (tenant.plan, tenant.tags) == ("premium", {"tier": "gold"})
    # Asked again: the tenant already is so; the same run, no new one.
    again = engine.update("acme", TenantChange(plan="premium"), requested_by="ops")
    assert again is not None
    assert again.id == run.id
    assert engine.update("acme", TenantChange(display_name=tenant.display_name),
                         requested_by="ops") is None
    assert len(engine.catalog.list_runs("acme")) == 2


def test_suspension_serves_a_suspended_page_disables_and_deletes_nothing(
        engine: Engine) -> None:
    onboard(engine)
    database = Database("tenant_acme", "acme_app", "acme-database-password")
    before = engine.providers.database.read_metadata(database)
    preview = engine.preview_suspension("acme")
    assert [(c.step, c.action) for c in preview.changes] == [
        ("disable_organization", "update"), ("suspend_hostname", "update"),
        ("disable_database_login", "update")]
    run = finished(engine, engine.suspend("acme", reason="invoice unpaid", requested_by="ops"))
    assert run.options["reason"] == "invoice unpaid"
    assert engine.catalog.get_tenant("acme").status == "suspended"

    edge = edge_of(engine)
    assert edge.edge is not None
    reply = fetch(edge.edge.port, "app.acme.test", edge.ca_pem())
    assert (reply.status, reply.body.encode()) == (503, SUSPENDED_PAGE)
    organization = engine.catalog.organizations.get("acme")
    assert organization is not None
    assert not organization.enabled
    with pytest.raises(PermanentProviderError, match="the login is disabled"):
        engine.providers.database.read_metadata(database)
    data = engine.settings.data_dir
    assert (data / "databases" / "tenant_acme.sqlite").exists()
    assert (data / "secrets" / "acme-database-password").exists()
    assert organization.invitations
    assert set(engine.catalog.get_tenant("acme").dns_records) == {
        "CNAME app.acme.test", "TXT asuid.app.acme.test"}
    assert [(c.step, c.action) for c in engine.preview_suspension("acme").changes] == [
        ("disable_organization", "unchanged"), ("suspend_hostname", "unchanged"),
        ("disable_database_login", "unchanged")]

    resumed = finished(engine, engine.resume("acme", requested_by="ops"))
    assert [s.name for s in resumed.steps] == [
        "enable_database_login", "resume_hostname", "enable_organization"]
    assert engine.catalog.get_tenant("acme").status == "active"
    reply = fetch(edge.edge.port, "app.acme.test", edge.ca_pem())
    assert reply.status == 200
    assert "Acme Ltd" in reply.body
    assert engine.providers.database.read_metadata(database) == before
    organization = engine.catalog.organizations.get("acme")
    assert organization is not None
    assert organization.enabled


def test_a_suspended_tenant_can_be_offboarded(engine: Engine) -> None:
    onboard(engine)
    finished(engine, engine.suspend("acme", reason="closing", requested_by="ops"))
    run = finished(engine, engine.offboard("acme", requested_by="ops"))
    assert run.kind == "offboard"
    assert engine.catalog.get_tenant("acme").status == "offboarded"
    assert engine.catalog.organizations.get("acme") is None
    assert not (engine.settings.data_dir / "databases" / "tenant_acme.sqlite").exists()


def test_a_suspension_that_fails_is_retried_from_the_failed_step(
        make_engine: EngineFactory) -> None:
    fault = FailStep("suspend_hostname")
    engine = make_engine(fault)
    onboard(engine)
    run = engine.wait(engine.suspend("acme", reason="x", requested_by="ops").id)
    assert (run.status, run.failed_step) == ("failed", "suspend_hostname")
    assert "injected failure in suspend_hostname" in (run.error or "")
    assert engine.catalog.get_tenant("acme").status == "failed"
    with pytest.raises(TenantStateError, match=f"its suspend run {run.id} ended failed at step "
                                               "suspend_hostname"):
        engine.update("acme", TenantChange(plan="free"), requested_by="ops")
    fault.fix()
    retried = finished(engine, engine.retry(run.id))
    assert retried.step("disable_organization").attempts == 1
    assert retried.step("suspend_hostname").attempts == 2
    assert engine.catalog.get_tenant("acme").status == "suspended"


def test_a_domain_change_of_a_suspended_tenant_is_refused(engine: Engine) -> None:
    onboard(engine)
    finished(engine, engine.suspend("acme", reason="x", requested_by="ops"))
    with pytest.raises(SpecError, match="cannot change while the tenant is suspended"):
        engine.update("acme", TenantChange(custom_domain="new.acme.test"), requested_by="ops")
    run = finished(engine, engine.update("acme", TenantChange(display_name="Acme Suspended"),
                                         requested_by="ops"))
    assert run.options["suspended"] is True
    organization = engine.catalog.organizations.get("acme")
    assert organization is not None
    assert (organization.name, organization.enabled) == ("Acme Suspended", False)
    assert engine.catalog.get_tenant("acme").status == "suspended"


def test_the_update_preview_shows_the_diff_and_changes_nothing(engine: Engine) -> None:
    onboard(engine)
    preview = engine.preview_update("acme", TenantChange(custom_domain="www.acme2.test",
                                                         display_name="Acme Two"))
    assert preview.diff == {
        "display_name": {"from": "Acme Ltd", "to": "Acme Two"},
        "custom_domain": {"from": "app.acme.test", "to": "www.acme2.test"}}
    actions = {c.step: c.action for c in preview.changes}
    assert actions["bind_hostname"] == "create"
    assert actions["create_organization"] == "update"
    assert actions["wait_for_grace_period"] == "check"
    assert actions["unbind_previous_hostname"] == "delete"
    rendered = preview.render()
    assert "custom_domain: 'app.acme.test' -> 'www.acme2.test'" in rendered
    assert engine.catalog.get_tenant("acme").custom_domain == "app.acme.test"
    assert len(engine.catalog.list_runs("acme")) == 1
    assert json.dumps(preview.diff)  # JSON, as the API returns it


def test_offboarding_during_a_domain_change_removes_both_names(
        make_engine: EngineFactory, tmp_path: Path) -> None:
    fault = FailStep("wait_for_grace_period")
    engine = make_engine(fault)
    onboard(engine)
    run = engine.wait(engine.update("acme", TenantChange(custom_domain="www.acme2.test"),
                                    requested_by="ops").id)  # type: ignore[union-attr]
    assert run.failed_step == "wait_for_grace_period"
    assert served(engine, "app.acme.test") == 200
    off = finished(engine, engine.offboard("acme", requested_by="ops"))
    names = [s.name for s in off.steps]
    assert "unbind_previous_hostname" in names
    assert "release_previous_domains" in names
    for hostname in ("app.acme.test", "www.acme2.test"):
        with pytest.raises(ssl.SSLError):
            served(engine, hostname)
    assert engine.catalog.retiring_domains_of("acme") == []
