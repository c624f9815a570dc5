"""Crash safety of day-two runs: a worker killed with SIGKILL at random moments, restarted
each time, finishes every domain change, suspension and resumption with every resource in
the state asked for, made once, and no step that had succeeded run again."""

from __future__ import annotations

import random
import sqlite3
import time
from pathlib import Path

import pytest

from tenantops.catalog import Run
from tenantops.config import load_settings
from tenantops.provisioning import Engine
from tenantops.provisioning.providers.dns.zones import ZoneFiles
from tenantops.provisioning.providers.webhost.state import EdgeState
from tenantops.provisioning.run_requests import TenantChange

from .conftest import spec_for
from .middleware import CallLog
from .test_crash import CONFIG, Worker, assert_no_succeeded_step_ran_again, wait_all

pytestmark = pytest.mark.integration

TENANTS = 12
KILLS = 4


def killing(worker: Worker, requester: Engine, runs: list[Run], chance: random.Random) -> int:
    """Kill and restart the worker a few times while ``runs`` go on; how many kills landed
    while some were unfinished."""
    landed = 0
    for _ in range(KILLS):
        time.sleep(chance.uniform(0.02, 0.4))
        unfinished = sum(1 for run in runs if not requester.get_run(run.id).finished)
        worker.kill()
        landed += unfinished > 0
        worker.start()
    return landed


def logins_enabled(data: Path) -> set[int]:
    found = set()
    for path in (data / "databases").glob("*.sqlite"):
        with sqlite3.connect(path) as db:
            found |= {row[0] for row in db.execute("SELECT enabled FROM tenantops_logins")}
    return found


def test_sigkilled_worker_finishes_every_change_suspension_and_resumption(
        tmp_path: Path) -> None:
    data = tmp_path / "data"
    worker = Worker(tmp_path)
    worker.config.write_text(CONFIG.format(data=data) + "\n[domains]\nchange_grace_seconds = 0\n")
    settings = load_settings(worker.config)
    worker.start()
    requester = Engine(settings)
    chance = random.Random(20261206)
    slugs = [f"day{i:02d}" for i in range(TENANTS)]
    try:
        onboarded = wait_all(requester, [requester.onboard(spec_for(s), requested_by="crash")
                                         for s in slugs], timeout=180)
        assert {r.status for r in onboarded} == {"succeeded"}

        updates = []
        for slug in slugs:
            run = requester.update(slug, TenantChange(
                custom_domain=f"www.{slug}-new.test", admin_email=f"it@{slug}.test",
                display_name=f"{slug} renamed"), requested_by="crash")
            assert run is not None
            updates.append(run)
        landed = killing(worker, requester, updates, chance)
        updated = wait_all(requester, updates, timeout=240)
        assert [(r.status, r.error) for r in updated] == [("succeeded", None)] * TENANTS

        suspensions = [requester.suspend(s, reason="crash test", requested_by="crash")
                       for s in slugs]
        landed += killing(worker, requester, suspensions, chance)
        suspended = wait_all(requester, suspensions, timeout=240)
        assert [(r.status, r.error) for r in suspended] == [("succeeded", None)] * TENANTS
        edge = EdgeState(data / "edge")
        assert {(b.suspended, b.ssl_state) for b in edge.bindings()} == {(True, "SniEnabled")}
        assert {o.enabled for o in requester.catalog.organizations.list()} == {False}
        assert logins_enabled(data) == {0}

        resumptions = [requester.resume(s, requested_by="crash") for s in slugs]
        landed += killing(worker, requester, resumptions, chance)
        resumed = wait_all(requester, resumptions, timeout=240)
        worker.stop()
        assert [(r.status, r.error) for r in resumed] == [("succeeded", None)] * TENANTS
        assert landed >= 4, "too few kills landed while runs were going on"

        bindings = edge.bindings()
        assert sorted(b.hostname for b in bindings) == sorted(f"www.{s}-new.test" for s in slugs)
        assert {(b.suspended, b.ssl_state) for b in bindings} == {(False, "SniEnabled")}
        assert len(list((data / "edge" / "certificates").glob("*.pem"))) == TENANTS
        zones = ZoneFiles(data / "dns")
        for slug in slugs:
            tenant = requester.catalog.get_tenant(slug)
            assert (tenant.status, tenant.custom_domain) == ("active", f"www.{slug}-new.test")
            assert set(tenant.dns_records) == {f"CNAME www.{slug}-new.test",
                                               f"TXT asuid.www.{slug}-new.test"}
            old = zones.load(f"{slug}.test")
            assert old is None or old.get_node("app") is None
            assert requester.catalog.retiring_domains_of(slug) == []
        organizations = requester.catalog.organizations.list()
        assert {o.enabled for o in organizations} == {True}
        assert {len(o.domains) for o in organizations} == {1}
        assert {len(o.invitations) for o in organizations} == {2}
        assert logins_enabled(data) == {1}
        assert_no_succeeded_step_ran_again(requester, [*updated, *suspended, *resumed],
                                           CallLog(worker.calls).read(), worker.killed_pids)
    finally:
        worker.stop()
        requester.stop()


def test_sigkilled_worker_finishes_every_reconcile_with_each_resource_made_once(
        tmp_path: Path) -> None:
    from tenantops.provisioning.drift import DriftChecker
    from tenantops.provisioning.providers.organization import TenantOrganization

    data = tmp_path / "data"
    worker = Worker(tmp_path)
    worker.config.write_text(CONFIG.format(data=data))
    settings = load_settings(worker.config)
    worker.start()
    requester = Engine(settings)
    chance = random.Random(20261207)
    slugs = [f"rec{i:02d}" for i in range(TENANTS)]
    try:
        specs = [spec_for(s) for s in slugs]
        onboarded = wait_all(requester, [requester.onboard(spec, requested_by="crash")
                                         for spec in specs], timeout=180)
        assert {r.status for r in onboarded} == {"succeeded"}
        for spec in specs:  # deleted behind tenantops' back
            requester.providers.organization.remove(TenantOrganization(
                spec.slug, spec.display_name, (spec.custom_domain,),
                f"https://{spec.custom_domain}/"))
        checker = DriftChecker.of(requester)
        assert {checker.check(s).state for s in slugs} == {"missing"}

        reconciles = [requester.reconcile_tenant(s, requested_by="crash") for s in slugs]
        landed = killing(worker, requester, reconciles, chance)
        reconciled = wait_all(requester, reconciles, timeout=240)
        worker.stop()

        assert [(r.status, r.error) for r in reconciled] == [("succeeded", None)] * TENANTS
        assert landed >= 1, "no kill landed while reconcile runs were going on"
        organizations = requester.catalog.organizations.list()
        assert sorted(o.alias for o in organizations) == slugs  # each made once
        assert {checker.check(s).state for s in slugs} == {"in_sync"}
        assert {requester.catalog.get_tenant(s).status for s in slugs} == {"active"}
        assert_no_succeeded_step_ran_again(requester, reconciled, CallLog(worker.calls).read(),
                                           worker.killed_pids)
    finally:
        worker.stop()
        requester.stop()
