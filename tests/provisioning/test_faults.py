"""Faults: flaky providers, a provider that refuses until fixed, and cancellation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tenantops.errors import RunStateError, TransientProviderError
from tenantops.provisioning.providers.base import Outcome, ProviderCall

from .conftest import EngineFactory, spec_for
from .middleware import CallLog, Gate, Outage, TransientFaults


def test_thirty_percent_transient_failures_still_onboard_everyone(
    make_engine: EngineFactory,
) -> None:
    faults = TransientFaults(rate=0.3, seed=1234)
    engine = make_engine(faults, engine={"max_attempts": 15})
    runs = [engine.onboard(spec_for(f"flaky-{i}"), requested_by="ops") for i in range(10)]
    finished = [engine.wait(run.id, timeout=120) for run in runs]
    assert [run.status for run in finished] == ["succeeded"] * 10, [r.error for r in finished]
    assert faults.injected > 20
    attempts = sum(step.attempts for run in finished for step in run.steps)
    assert attempts >= 10 * 12 + faults.injected, "every injected fault costs one attempt"
    assert all(step.error is None for run in finished for step in run.steps)
    assert {t.status for t in engine.catalog.list_tenants()} == {"active"}


def test_transient_failures_give_up_after_max_attempts_with_the_last_error(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine(TransientFaults(rate=1.0), engine={"max_attempts": 3})
    run = engine.wait(engine.onboard(spec_for("hopeless"), requested_by="ops").id)
    assert run.status == "failed"
    assert run.failed_step == "register_tenant"
    assert run.error is not None
    assert run.error.startswith(
        "register_tenant failed 3 times in a row, the most engine.max_attempts allows; "
        "last error: catalog:sqlite answered HTTP 503 Service Unavailable (injected)")
    assert run.step("register_tenant").attempts == 3


def test_the_final_error_after_the_last_attempt_promises_no_further_retry(
    make_engine: EngineFactory,
) -> None:
    """Providers end transient messages with "will retry"; once the engine gives up, the
    run's error (and the step's) must say what to do instead."""

    def refuse(call: ProviderCall, proceed: Callable[[], Outcome]) -> Outcome:
        raise TransientProviderError(
            f"could not reach {call.provider.label} (connection reset); will retry")

    engine = make_engine(refuse, engine={"max_attempts": 2})
    run = engine.wait(engine.onboard(spec_for("givenup"), requested_by="ops").id)

    assert run.status == "failed"
    assert run.error == (
        "register_tenant failed 2 times in a row, the most engine.max_attempts allows; last "
        "error: could not reach catalog:sqlite (connection reset); once the cause is fixed, "
        "retry the run")
    assert run.step("register_tenant").error == run.error
    assert "will retry" not in run.error


def test_permanent_failure_then_retry_continues_from_the_failed_step(
    make_engine: EngineFactory, tmp_path: Path,
) -> None:
    outage = Outage("database", "quota exceeded: the subscription allows 10 databases; "
                                "raise the quota or delete unused databases")
    calls = CallLog(tmp_path / "calls.jsonl")
    engine = make_engine(calls, outage)
    run = engine.wait(engine.onboard(spec_for("blocked"), requested_by="ops").id)

    assert run.status == "failed"
    assert run.failed_step == "create_database"
    assert run.error is not None
    assert "quota exceeded: the subscription allows 10 databases" in run.error
    assert "database:sqlite" in run.error
    statuses = [s.status for s in run.steps]
    assert statuses[:4] == ["succeeded", "succeeded", "succeeded", "failed"]
    assert set(statuses[4:]) == {"pending"}
    assert run.step("create_database").error == run.error.split("create_database failed: ")[1]
    assert engine.catalog.get_tenant("blocked").status == "failed"
    with pytest.raises(RunStateError, match="is failed; only a pending or running run"):
        engine.cancel(run.id)

    outage.fix()
    retried = engine.retry(run.id)
    assert retried.status == "pending"
    run = engine.wait(run.id)

    assert run.status == "succeeded", run.error
    assert run.retries == 1
    assert engine.catalog.get_tenant("blocked").status == "active"
    ended = [(c["step"], c["event"]) for c in calls.read() if c["event"] != "begin"]
    assert ended.count(("register_tenant", "end")) == 1, "a succeeded step ran again"
    assert ended.count(("store_database_secret", "end")) == 1, "a succeeded step ran again"
    assert ended.count(("create_database", "error")) == 1
    assert ended.count(("create_database", "end")) == 1
    with pytest.raises(RunStateError, match="is succeeded; only a failed or cancelled run"):
        engine.retry(run.id)


def test_cancel_stops_a_run_and_retry_resumes_it(make_engine: EngineFactory) -> None:
    gate = Gate("dns")
    engine = make_engine(gate)
    run = engine.onboard(spec_for("halted"), requested_by="ops")
    assert gate.entered.wait(20)

    cancelled = engine.cancel(run.id)
    gate.open()

    assert cancelled.status == "cancelled"
    assert engine.catalog.get_tenant("halted").status == "failed"
    status = engine._dbos().retrieve_workflow(run.workflow_id).get_status()
    assert status.status == "CANCELLED"
    run_after = engine.get_run(run.id)
    assert run_after.status == "cancelled"
    assert run_after.step("activate_tenant").status == "cancelled"

    engine.retry(run.id)
    finished = engine.wait(run.id)
    assert finished.status == "succeeded", finished.error
    assert engine.catalog.get_tenant("halted").status == "active"


def test_retry_does_not_redo_a_step_that_was_pending_before_it_succeeded(
    make_engine: EngineFactory, tmp_path: Path,
) -> None:
    outage = Outage("organization", "organization service refused: realm 'tenants' is "
                                    "read-only; make it writable")
    calls = CallLog(tmp_path / "calls.jsonl")
    engine = make_engine(calls, outage, providers={"webhost": {"issuance_delay_seconds": 0.2}})
    run = engine.wait(engine.onboard(spec_for("latecert"), requested_by="ops").id)
    assert run.status == "failed"
    assert run.failed_step == "create_organization"
    assert run.step("issue_certificate").attempts >= 2
    before = len(calls.read())

    outage.fix()
    engine.retry(run.id)
    assert engine.wait(run.id).status == "succeeded"

    rerun = {c["step"] for c in calls.read()[before:]}
    assert rerun == {"create_organization", "invite_admin", "activate_tenant"}
