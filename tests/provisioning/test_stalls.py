"""No run stuck forever: a workflow that dies while its run is active in the catalog is
noticed by the worker's check of active runs, the cause is shown on the run's step, and the
run continues by itself (here in-process; the fault suite kills databases and disks)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from tenantops.errors import RunStateError
from tenantops.provisioning import onboarding_plan
from tenantops.provisioning.engine import current_step
from tenantops.provisioning.providers.base import Outcome, ProviderCall

from .conftest import EngineFactory, settled_workflows, spec_for
from .faults import wait_until
from .middleware import CallLog, Gate


class DiesOnce:
    """Raises an error the engine does not expect (not a provider's) on the first call of
    one step: the workflow dies with it, as it does when its database write fails."""

    def __init__(self, step: str, error: Exception) -> None:
        self.step = step
        self.error = error
        self.died = threading.Event()

    def __call__(self, call: ProviderCall, proceed: Callable[[], Outcome]) -> Outcome:
        current = current_step()
        if current is not None and current.step == self.step and not self.died.is_set():
            self.died.set()
            raise self.error
        return proceed()


def test_a_workflow_that_died_is_continued_and_the_step_shows_why(
    make_engine: EngineFactory, tmp_path: Path,
) -> None:
    calls = CallLog(tmp_path / "calls.jsonl")
    dies = DiesOnce("create_database", OSError(28, "No space left on device"))
    engine = make_engine(calls, dies, engine={"check_runs_seconds": 0.2})
    run = engine.onboard(spec_for("phoenix"), requested_by="ops")
    assert dies.died.wait(20)

    finished = engine.wait(run.id, timeout=60)
    assert finished.status == "succeeded", finished.error
    assert finished.segment == 1, "the run continued in a new segment"
    statuses = {wid: w.status for wid, w in settled_workflows(engine, run.workflow_id).items()}
    assert statuses == {run.workflow_id: "ERROR", f"{run.workflow_id}/1": "SUCCESS"}
    done = [c["step"] for c in calls.read() if c["event"] == "end" and not c["pending"]]
    assert len(done) == len(set(done)), "a step that had succeeded ran again"


def test_the_cause_is_shown_on_the_step_until_the_run_moves(
    make_engine: EngineFactory,
) -> None:
    gate = threading.Event()

    def hold_second_try(call: ProviderCall, proceed: Callable[[], Outcome]) -> Outcome:
        current = current_step()
        if current is not None and current.step == "create_database" and dies.died.is_set():
            gate.wait(20)
        return proceed()

    dies = DiesOnce("create_database", OSError(28, "No space left on device"))
    engine = make_engine(dies, hold_second_try, engine={"check_runs_seconds": 0.2})
    run = engine.onboard(spec_for("shown"), requested_by="ops")
    try:
        # Held in its second try, the step keeps the cause as its error until it succeeds.
        wait_until(lambda: "stopped" in (
            engine.get_run(run.id).step("create_database").error or ""),
            "the step shows why the run stopped")
        step = engine.get_run(run.id).step("create_database")
        assert step.status in ("retrying", "running")
        assert step.error == ("the run's workflow stopped (the worker could not write to "
                              "its database: disk full); it continues from this step")
    finally:
        gate.set()
    assert engine.wait(run.id, timeout=60).status == "succeeded"


def test_retry_continues_a_running_run_that_has_no_workflow(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine()
    # A run registered without its workflow: its requester died before enqueueing it, and no
    # worker has checked the active runs since.
    opened = engine.catalog.open_onboarding(
        spec_for("orphan"), requested_by="ops",
        steps=onboarding_plan().templates(engine.providers))
    continued = engine.retry(opened.run.id)
    assert continued.segment == 1
    finished = engine.wait(opened.run.id, timeout=60)
    assert finished.status == "succeeded", finished.error


def test_retry_refuses_a_run_whose_workflow_is_live_and_says_where(
    make_engine: EngineFactory,
) -> None:
    gate = Gate("database")
    engine = make_engine(gate)
    run = engine.onboard(spec_for("busy"), requested_by="ops")
    assert gate.entered.wait(20)
    try:
        with pytest.raises(RunStateError) as refused:
            engine.retry(run.id)
    finally:
        gate.open()
    assert str(refused.value) == (
        f"run {run.id} is running; only a failed or cancelled run can be retried (its "
        f"workflow {run.workflow_id} is PENDING on worker local): cancel it first, or wait; "
        "a run whose workflow stops is continued by a worker within 30 s")
    assert engine.wait(run.id).status == "succeeded"
