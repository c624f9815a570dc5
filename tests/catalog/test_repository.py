"""The catalog's contract: idempotent requests, one active run per tenant, step records."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from dataclasses import dataclass, field

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tenantops.catalog import Catalog, StepTemplate
from tenantops.catalog.models import RunRow
from tenantops.errors import (
    RunConflictError,
    RunNotFoundError,
    RunStateError,
    TenantConflictError,
    TenantNotFoundError,
)

STEPS = [StepTemplate("register", "catalog:sqlite", "ensure"),
         StepTemplate("create_database", "database:sqlite", "ensure"),
         StepTemplate("activate", "catalog:sqlite", "ensure")]


@dataclass(frozen=True)
class Spec:
    slug: str = "acme"
    display_name: str = "Acme"
    custom_domain: str = "portal.acme.test"
    plan: str = "standard"
    admin_email: str = "admin@acme.test"
    tags: dict[str, str] = field(default_factory=dict)


def test_onboarding_registers_tenant_run_and_pending_steps(catalog: Catalog) -> None:
    opened = catalog.open_onboarding(Spec(), requested_by="ops@contoso.test", steps=STEPS)
    assert opened.created
    run = opened.run
    assert (run.kind, run.status, run.requested_by) == ("onboard", "pending", "ops@contoso.test")
    assert run.workflow_id == f"tenantops/acme/onboard/{run.id}"
    assert [(s.name, s.status, s.attempts) for s in run.steps] == [
        ("register", "pending", 0), ("create_database", "pending", 0), ("activate", "pending", 0)]
    tenant = catalog.get_tenant("acme")
    assert tenant.status == "provisioning"
    assert tenant.created_at.tzinfo is not None


def test_repeated_request_returns_the_same_run(catalog: Catalog) -> None:
    first = catalog.open_onboarding(Spec(), requested_by="a", steps=STEPS)
    again = catalog.open_onboarding(Spec(), requested_by="b", steps=STEPS)
    assert not again.created
    assert again.run.id == first.run.id
    assert len(catalog.list_runs("acme")) == 1


def test_request_with_other_values_names_the_differing_fields(catalog: Catalog) -> None:
    catalog.open_onboarding(Spec(), requested_by="a", steps=STEPS)
    with pytest.raises(TenantConflictError) as caught:
        catalog.open_onboarding(Spec(display_name="Acme 2", plan="premium"), requested_by="a",
                                steps=STEPS)
    message = str(caught.value)
    assert "display_name: registered 'Acme', requested 'Acme 2'" in message
    assert "plan: registered 'standard', requested 'premium'" in message
    assert "change the tenant with PATCH /api/tenants/acme (tenantops tenants update)" in message


def test_concurrent_identical_requests_make_one_tenant_and_one_run(catalog: Catalog) -> None:
    barrier = threading.Barrier(10)
    run_ids: list[str] = []
    errors: list[BaseException] = []

    def request() -> None:
        barrier.wait()
        try:
            run_ids.append(catalog.open_onboarding(Spec(), requested_by="a", steps=STEPS).run.id)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=request) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(set(run_ids)) == 1
    assert len(catalog.list_tenants()) == 1
    assert len(catalog.list_runs()) == 1


def test_database_refuses_a_second_active_run_for_a_tenant(catalog: Catalog) -> None:
    run = catalog.open_onboarding(Spec(), requested_by="a", steps=STEPS).run
    second = RunRow(
        id=uuid.uuid4().hex, tenant_id=catalog.get_tenant("acme").id, kind="offboard",
        status="running", options={}, requested_by="x", workflow_id=f"other/{run.id}",
        created_at=dt.datetime.now(dt.timezone.utc), retries=0,
    )
    with Session(catalog.engine) as session:
        session.add(second)
        with pytest.raises(IntegrityError):
            session.commit()


def test_step_status_is_recorded_as_it_changes(catalog: Catalog) -> None:
    run = catalog.open_onboarding(Spec(), requested_by="a", steps=STEPS).run
    assert catalog.step_started(run.id, "register") == 1
    running = catalog.get_run(run.id)
    assert running.status == "running"
    assert running.started_at is not None
    assert running.step("register").status == "running"
    catalog.step_succeeded(run.id, "register", {"tenant_id": "t"}, {})
    catalog.step_started(run.id, "create_database")
    catalog.step_waiting(run.id, "create_database", status="retrying", message="HTTP 503")
    assert catalog.step_started(run.id, "create_database") == 2
    catalog.step_succeeded(
        run.id, "create_database", {"database": "tenant_acme"},
        {"database_name": "tenant_acme", "dns_records": {"CNAME portal.acme.test": "edge"}})
    step = catalog.get_run(run.id).step("create_database")
    assert (step.status, step.attempts, step.error, step.outputs) == (
        "succeeded", 2, None, {"database": "tenant_acme"})
    assert step.finished_at is not None
    assert step.started_at is not None
    assert step.finished_at >= step.started_at
    tenant = catalog.get_tenant("acme")
    assert tenant.database_name == "tenant_acme"
    assert tenant.dns_records == {"CNAME portal.acme.test": "edge"}
    catalog.update_tenant_outputs("acme", {"dns_records": {"CNAME portal.acme.test": None}})
    assert catalog.get_tenant("acme").dns_records == {}


def test_step_writes_from_many_threads_all_land(catalog: Catalog) -> None:
    steps = [StepTemplate(f"step{i}", "catalog:sqlite", "ensure") for i in range(10)]
    runs = [catalog.open_onboarding(Spec(slug=f"tenant{i}", custom_domain=f"app.t{i}.test"),
                                    requested_by="a", steps=steps).run for i in range(8)]
    errors: list[BaseException] = []

    def work(run_id: str) -> None:
        try:
            for step in steps:
                catalog.step_started(run_id, step.name)
                catalog.step_succeeded(run_id, step.name, {"n": step.name},
                                       {"dns_records": {step.name: run_id}})
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(run.id,)) for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for i, run in enumerate(runs):
        recorded = catalog.get_run(run.id)
        assert [(s.status, s.attempts, s.outputs) for s in recorded.steps] == [
            ("succeeded", 1, {"n": s.name}) for s in steps]
        assert catalog.get_tenant(f"tenant{i}").dns_records == {s.name: run.id for s in steps}


def test_failed_run_marks_step_and_tenant_failed(catalog: Catalog) -> None:
    run = catalog.open_onboarding(Spec(), requested_by="a", steps=STEPS).run
    catalog.step_started(run.id, "register")
    finished = catalog.finish_run(run.id, "failed", error="register failed: boom",
                                  failed_step="register")
    assert (finished.status, finished.error, finished.failed_step) == (
        "failed", "register failed: boom", "register")
    assert finished.step("register").status == "failed"
    assert catalog.get_tenant("acme").status == "failed"
    again = catalog.open_onboarding(Spec(), requested_by="a", steps=STEPS)
    assert again.run.id == run.id
    assert not again.created


def test_reopen_only_failed_or_cancelled_latest_runs(catalog: Catalog) -> None:
    run = catalog.open_onboarding(Spec(), requested_by="a", steps=STEPS).run
    with pytest.raises(RunStateError, match="is pending; only a failed or cancelled run"):
        catalog.reopen_run(run.id)
    catalog.step_started(run.id, "register")
    catalog.step_succeeded(run.id, "register", {}, {})
    catalog.step_started(run.id, "create_database")
    catalog.finish_run(run.id, "failed", error="x", failed_step="create_database")
    reopened = catalog.reopen_run(run.id)
    assert (reopened.status, reopened.retries, reopened.error) == ("pending", 1, None)
    assert [s.status for s in reopened.steps] == ["succeeded", "pending", "pending"]
    assert catalog.get_tenant("acme").status == "provisioning"


def test_cancel_leaves_the_tenant_failed_and_only_active_runs_cancel(catalog: Catalog) -> None:
    run = catalog.open_onboarding(Spec(), requested_by="a", steps=STEPS).run
    cancelled = catalog.cancel_run(run.id)
    assert cancelled.status == "cancelled"
    assert {s.status for s in cancelled.steps} == {"cancelled"}
    assert catalog.get_tenant("acme").status == "failed"
    with pytest.raises(RunStateError, match="only a pending or running run can be cancelled"):
        catalog.cancel_run(run.id)


def test_offboarding_waits_for_an_active_onboarding(catalog: Catalog) -> None:
    run = catalog.open_onboarding(Spec(), requested_by="a", steps=STEPS).run
    with pytest.raises(RunConflictError, match=r"has a run in progress \(onboard run") as caught:
        catalog.open_offboarding("acme", requested_by="a", keep_database=False, steps=STEPS)
    assert caught.value.active_run_id == run.id
    catalog.finish_run(run.id, "succeeded")
    assert catalog.get_tenant("acme").status == "active"
    off = catalog.open_offboarding("acme", requested_by="a", keep_database=True, steps=STEPS)
    assert off.created
    assert off.run.options == {"keep_database": True}
    assert catalog.get_tenant("acme").status == "offboarding"
    repeated = catalog.open_offboarding("acme", requested_by="a", keep_database=True,
                                        steps=STEPS)
    assert repeated.run.id == off.run.id
    with pytest.raises(RunConflictError, match="being offboarded"):
        catalog.open_onboarding(Spec(), requested_by="a", steps=STEPS)
    catalog.finish_run(off.run.id, "succeeded")
    assert catalog.get_tenant("acme").status == "offboarded"
    reonboarded = catalog.open_onboarding(Spec(display_name="Acme again"), requested_by="a",
                                          steps=STEPS)
    assert reonboarded.created
    assert catalog.get_tenant("acme").display_name == "Acme again"


def test_missing_tenant_and_run_are_named(catalog: Catalog) -> None:
    with pytest.raises(TenantNotFoundError, match="no tenant with slug 'ghost'"):
        catalog.get_tenant("ghost")
    with pytest.raises(RunNotFoundError, match="no run with ID 'nope'"):
        catalog.get_run("nope")
    with pytest.raises(TenantNotFoundError):
        catalog.open_offboarding("ghost", requested_by="a", keep_database=False, steps=STEPS)


def test_hostname_lookup_ignores_offboarded_tenants(catalog: Catalog) -> None:
    run = catalog.open_onboarding(Spec(), requested_by="a", steps=STEPS).run
    tenant = catalog.tenant_for_hostname("Portal.Acme.Test.")
    assert tenant is not None
    assert tenant.slug == "acme"
    catalog.finish_run(run.id, "succeeded")
    off = catalog.open_offboarding("acme", requested_by="a", keep_database=False, steps=STEPS)
    catalog.finish_run(off.run.id, "succeeded")
    assert catalog.tenant_for_hostname("portal.acme.test") is None


def test_workers_are_live_until_unheard_of_or_signed_off(catalog: Catalog) -> None:
    catalog.worker_seen("worker-a", host="host-1", pid=100)
    catalog.worker_seen("worker-b", host="host-2", pid=200)
    assert catalog.live_workers(dt.timedelta(minutes=1)) == {"worker-a", "worker-b"}
    assert catalog.live_workers(dt.timedelta(seconds=-1)) == set()  # nobody seen in the future

    catalog.worker_seen("worker-a", host="host-3", pid=300)  # the ID reused by a new process
    catalog.worker_left("worker-a", pid=100)  # the old process signing off removes nothing
    assert catalog.live_workers(dt.timedelta(minutes=1)) == {"worker-a", "worker-b"}
    catalog.worker_left("worker-a", pid=300)
    assert catalog.live_workers(dt.timedelta(minutes=1)) == {"worker-b"}


def test_a_step_success_starts_the_next_step_in_the_same_write(catalog: Catalog) -> None:
    run = catalog.open_onboarding(Spec(), requested_by="a", steps=STEPS).run
    assert catalog.step_started(run.id, "register") == 1
    assert catalog.step_succeeded(run.id, "register", {"tenant_id": "t"}, {},
                                  then_start="create_database",
                                  then_resolved={"name": "tenant_acme"}) == 1
    step = catalog.get_run(run.id).step("create_database")
    assert (step.status, step.attempts) == ("running", 1)
    assert step.started_at is not None
    assert [(a.number, a.outcome, a.resolved) for a in step.history] == [
        (1, "running", {"name": "tenant_acme"})]
    # The previous step ran again (its checkpoint lost in a crash): no second count.
    assert catalog.step_succeeded(run.id, "register", {"tenant_id": "t"}, {},
                                  then_start="create_database",
                                  then_resolved={"name": "tenant_acme"}) == 1
    again = catalog.get_run(run.id).step("create_database")
    assert again.attempts == 1
    assert len(again.history) == 1


def test_no_next_step_starts_once_the_run_is_cancelled(catalog: Catalog) -> None:
    run = catalog.open_onboarding(Spec(), requested_by="a", steps=STEPS).run
    catalog.step_started(run.id, "register")
    catalog.cancel_run(run.id)
    assert catalog.step_succeeded(run.id, "register", {"tenant_id": "t"}, {},
                                  then_start="create_database") is None
    after = catalog.get_run(run.id)
    assert after.step("create_database").status == "cancelled"
    assert after.step("create_database").attempts == 0


def test_the_last_step_closes_the_run_in_its_write(catalog: Catalog) -> None:
    run = catalog.open_onboarding(Spec(), requested_by="a", steps=STEPS).run
    for step in STEPS:
        catalog.step_started(run.id, step.name)
        catalog.step_succeeded(run.id, step.name, {}, {}, closes_run=step == STEPS[-1])
    closed = catalog.get_run(run.id)
    assert closed.status == "succeeded"
    assert closed.finished_at is not None
    assert catalog.get_tenant("acme").status == "active"
    # A closed run stays as it is.
    assert catalog.close_run(run.id, "failed", error="late", failed_step="register") == (
        "succeeded")
    assert catalog.get_run(run.id).status == "succeeded"


def test_run_progress_reads_what_a_segment_needs(catalog: Catalog) -> None:
    run = catalog.open_onboarding(Spec(), requested_by="a", steps=STEPS,
                                  options={"dns": "platform"}).run
    catalog.step_started(run.id, "register")
    catalog.step_succeeded(run.id, "register", {"tenant_id": "t"}, {})
    progress = catalog.run_progress(run.id)
    assert (progress.status, progress.segment, progress.kind) == ("running", 0, "onboard")
    assert progress.workflow_id == run.workflow_id
    assert progress.options == {"dns": "platform"}
    assert progress.spec == catalog.get_tenant("acme").spec_fields()
    assert progress.outputs == {"register": {"tenant_id": "t"}}
    with pytest.raises(RunNotFoundError):
        catalog.run_progress("no-such-run")
