"""Certificate renewal on the local edge, driven by the schedule with a clock turned
forward: certificates inside the window are renewed by the edge's CA, bound, and recorded;
none is due today; a renewal fleet in progress holds the next; a replayed renewal does not
renew twice."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from cryptography import x509

from tenantops.provisioning import Engine
from tenantops.provisioning.fleet import (
    SCHEDULE_REQUESTER,
    CertificateSchedule,
    FleetRequest,
    FleetRuns,
    Selection,
    wait_for_fleet,
)
from tenantops.provisioning.providers.base import Ready
from tenantops.provisioning.providers.webhost import CertificateRenewal
from tenantops.provisioning.providers.webhost.local_edge import LocalEdge
from tests.provisioning.conftest import EngineFactory, spec_for

pytestmark = pytest.mark.integration  # engines serve embedded DNS and web hosts


def onboarded(engine: Engine, *slugs: str) -> None:
    for run_id in [engine.onboard(spec_for(s), requested_by="t").id for s in slugs]:
        assert engine.wait(run_id, timeout=120).status == "succeeded"


def later(days: float) -> Callable[[], dt.datetime]:
    """A clock stopped ``days`` from now."""
    moment = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=days)
    return lambda: moment


def test_the_schedule_renews_certificates_inside_the_window_and_rebinds_them(
        make_engine: EngineFactory) -> None:
    engine = make_engine(fleet={"poll_seconds": 0.02},
                         certificates={"renew_before_days": 30, "schedule": False})
    onboarded(engine, "renewa", "renewb")
    before = {s: engine.catalog.get_tenant(s) for s in ("renewa", "renewb")}
    expires = before["renewa"].certificate_expires_at
    assert expires is not None

    assert CertificateSchedule(engine).check() is None  # today: nothing is due
    due_in = (expires - dt.datetime.now(dt.timezone.utc)).days - 20  # 20 days left then
    fleet = CertificateSchedule(engine, clock=later(due_in)).check()
    assert fleet is not None
    assert fleet.requested_by == SCHEDULE_REQUESTER
    assert fleet.options["within_days"] == 30.0
    done = wait_for_fleet(FleetRuns(engine), fleet.id, timeout=120)
    assert done.status == "succeeded", done.stop_reason

    webhost = engine.providers.webhost
    assert isinstance(webhost, LocalEdge)
    for slug in ("renewa", "renewb"):
        tenant = engine.catalog.get_tenant(slug)
        old = before[slug]
        assert tenant.certificate_thumbprint != old.certificate_thumbprint
        assert tenant.certificate_expires_at is not None
        assert old.certificate_expires_at is not None
        assert tenant.certificate_expires_at >= old.certificate_expires_at
        binding = webhost.state.binding(tenant.custom_domain)
        assert binding is not None
        assert binding.thumbprint == tenant.certificate_thumbprint
        issued = webhost.state.certificate(tenant.custom_domain)
        assert issued is not None
        assert issued.thumbprint == tenant.certificate_thumbprint
        x509.load_pem_x509_certificate(issued.cert_path.read_bytes())
        assert tenant.status == "active"
    run = engine.catalog.latest_run("renewa", kind="renew")
    assert run is not None
    assert [s.name for s in run.steps] == ["renew_certificate", "bind_renewed_certificate"]


def test_a_renewal_fleet_in_progress_holds_the_next_and_skips_certificates_not_due(
        make_engine: EngineFactory) -> None:
    engine = make_engine(certificates={"schedule": False})
    onboarded(engine, "holda")
    assert engine.conductor is not None
    engine.conductor.stop()  # the fleet stays running (nothing conducts it)
    schedule = CertificateSchedule(engine, clock=later(390))
    first = schedule.check()
    assert first is not None
    assert schedule.check() is None
    preview = FleetRuns(engine).preview(FleetRequest(
        "renew-certificates", Selection(all=True), options={"within_days": 30}))
    (target,) = preview.targets
    assert target.action == "skip"
    assert target.reason is not None
    assert "after" in target.reason
    assert "(30 days from as_of)" in target.reason
    assert target.detail["hostname"] == "app.holda.test"


def test_a_replayed_renewal_does_not_renew_twice(make_engine: EngineFactory) -> None:
    engine = make_engine(certificates={"schedule": False})
    onboarded(engine, "replay")
    tenant = engine.catalog.get_tenant("replay")
    assert tenant.certificate_thumbprint
    renewal = CertificateRenewal(tenant.custom_domain, tenant.certificate_thumbprint)
    first = engine.providers.webhost.ensure(renewal)
    again = engine.providers.webhost.ensure(renewal)
    assert isinstance(first, Ready)
    assert isinstance(again, Ready)
    assert first.changed
    assert not again.changed
    assert first.outputs["thumbprint"] == again.outputs["thumbprint"]
    assert first.outputs["thumbprint"] != tenant.certificate_thumbprint
