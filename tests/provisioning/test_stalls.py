"""No run stuck forever: a workflow that dies while its run is active in the catalog is
noticed by the worker's check of active runs, the cause is shown on the run's step, and the
run continues by itself (here in-process; the fault suite kills databases and disks)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from tenantops.provisioning.engine import current_step
from tenantops.provisioning.providers.base import Outcome, ProviderCall

from .conftest import EngineFactory, spec_for
from .faults import wait_until
from .middleware import CallLog


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
    statuses = {w.workflow_id: w.status for w in engine._dbos().list_workflows(
        workflow_id_prefix=run.workflow_id, load_input=False, load_output=False)}
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
        wait_until(lambda: "stopped" in (
            engine.get_run(run.id).step("create_database").message or ""),
            "the step shows why the run stopped")
        step = engine.get_run(run.id).step("create_database")
        assert step.status == "retrying"
        assert step.message == ("the run's workflow stopped (the worker could not write to "
                                "its database: disk full); it continues from this step")
    finally:
        gate.set()
    assert engine.wait(run.id, timeout=60).status == "succeeded"
