"""Waiting holds no thread: long waits (a Pending, a Retry-After) end the run's workflow
segment and a delayed workflow continues it; the pending window and Retry-After are kept.

The engine's wait seam (`DurableWaits`) records every wait the engine decides on and
shortens it, so a test sees "Retry-After said 7 s, the engine waited 7 s" without waiting.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

from tenantops.provisioning import Engine
from tenantops.provisioning.engine import DurableWaits, WaitCause

from .conftest import EngineFactory, settled_workflows, spec_for
from .middleware import CallLog, PendingFor, Throttled


class RecordedWaits(DurableWaits):
    """Records (step, cause, seconds asked) and waits ``actual`` seconds at most instead."""

    def __init__(self, actual: float = 0.05) -> None:
        self.actual_seconds = actual
        self.asked: list[tuple[str, WaitCause, float]] = []
        self._lock = threading.Lock()

    def actual(self, seconds: float, *, run_id: str, step: str, cause: WaitCause) -> float:
        with self._lock:
            self.asked.append((step, cause, round(seconds, 3)))
        return min(seconds, self.actual_seconds)

    def of(self, step: str) -> list[tuple[WaitCause, float]]:
        with self._lock:
            return [(cause, seconds) for name, cause, seconds in self.asked if name == step]


def workflows_of(engine: Engine, workflow_id: str) -> dict[str, Any]:
    return {w.workflow_id: w for w in engine._dbos().list_workflows(
        workflow_id_prefix=workflow_id, load_input=False)}


def wait_until(condition: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {timeout:.0f} s"
        time.sleep(0.05)


def test_a_long_wait_frees_the_worker_slot_for_another_run(make_engine: EngineFactory) -> None:
    waits = RecordedWaits(actual=1.5)
    engine = make_engine(PendingFor("wait_for_dns", retry_after=3600, times=1), waits=waits,
                         engine={"worker_concurrency": 1, "long_wait_seconds": 10})
    slow = engine.onboard(spec_for("slow"), requested_by="ops")
    wait_until(lambda: engine.get_run(slow.id).segment == 1, "the slow run handed over")
    # One slot: the second run can only finish if the waiting one holds none.
    fast = engine.wait(engine.onboard(spec_for("fast"), requested_by="ops").id, timeout=60)
    assert fast.status == "succeeded", fast.error
    assert not engine.get_run(slow.id).finished

    finished = engine.wait(slow.id, timeout=60)
    assert finished.status == "succeeded", finished.error
    assert finished.segment == 1
    assert waits.of("wait_for_dns")[0] == ("pending", 3600.0)
    workflows = settled_workflows(engine, slow.workflow_id)
    assert {wid: (w.status, w.output) for wid, w in workflows.items()} == {
        slow.workflow_id: ("SUCCESS", "waiting"),
        f"{slow.workflow_id}/1": ("SUCCESS", "succeeded"),
    }


def test_short_waits_sleep_inside_the_workflow(make_engine: EngineFactory) -> None:
    waits = RecordedWaits(actual=0.05)
    engine = make_engine(PendingFor("wait_for_dns", retry_after=2, times=2), waits=waits,
                         engine={"long_wait_seconds": 10})
    run = engine.wait(engine.onboard(spec_for("short"), requested_by="ops").id)
    assert run.status == "succeeded", run.error
    assert run.segment == 0
    assert waits.of("wait_for_dns") == [("pending", 2.0), ("pending", 2.0)]
    assert list(workflows_of(engine, run.workflow_id)) == [run.workflow_id]


def test_retry_after_delays_the_next_attempt_and_is_capped(make_engine: EngineFactory) -> None:
    waits = RecordedWaits(actual=0.05)
    engine = make_engine(
        Throttled("create_database", retry_after=7, times=2),
        Throttled("create_organization", retry_after=600, times=1),
        waits=waits, engine={"long_wait_seconds": 5, "retry_after_max_seconds": 30,
                             "retry_initial_seconds": 0.01, "retry_max_seconds": 0.05})
    run = engine.wait(engine.onboard(spec_for("throttled"), requested_by="ops").id, timeout=90)

    assert run.status == "succeeded", run.error
    # Never sooner than Retry-After (the backoff alone would be 0.01-0.05 s) ...
    assert waits.of("create_database") == [("retry-after", 7.0), ("retry-after", 7.0)]
    # ... and never longer than engine.retry_after_max_seconds.
    assert waits.of("create_organization") == [("retry-after", 30.0)]
    # Each wait was longer than long_wait_seconds: a segment each, the failures carried.
    assert run.segment == 3
    assert run.step("create_database").attempts == 3


def test_pending_window_expires_with_the_reason_and_retry_opens_a_new_one(
    make_engine: EngineFactory,
) -> None:
    waiting = PendingFor("wait_for_dns", retry_after=0.2, timeout_seconds=1.0,
                         reason="still missing: TXT asuid.app.window.test")
    engine = make_engine(waiting, engine={"pending_timeout_seconds": 3600})
    run = engine.wait(engine.onboard(spec_for("window"), requested_by="ops").id)

    assert run.status == "failed"
    assert run.failed_step == "wait_for_dns"
    assert run.error is not None
    assert run.error.startswith("wait_for_dns failed: still pending after 1 s, the longest "
                                "allowed (1 s): still missing: TXT asuid.app.window.test")
    first_calls = waiting.calls
    assert 4 <= first_calls <= 8, "looked again every 0.2 s for 1 s"

    waiting.times = first_calls + 2  # the records appear after two more looks
    engine.retry(run.id)
    finished = engine.wait(run.id)
    assert finished.status == "succeeded", finished.error
    assert waiting.calls == first_calls + 3


def test_a_waiting_run_survives_a_restart_of_its_worker(make_engine: EngineFactory) -> None:
    waits = RecordedWaits(actual=2.0)
    first = make_engine(PendingFor("issue_certificate", retry_after=900, times=1), waits=waits)
    run = first.onboard(spec_for("restart"), requested_by="ops")
    wait_until(lambda: first.get_run(run.id).segment == 1, "the run handed over")
    first.stop()

    second = make_engine()
    finished = second.wait(run.id, timeout=60)
    assert finished.status == "succeeded", finished.error
    assert finished.segment == 1


def test_cancel_a_waiting_run_then_retry_it(make_engine: EngineFactory, tmp_path: Any) -> None:
    calls = CallLog(tmp_path / "calls.jsonl")
    waits = RecordedWaits(actual=30.0)
    engine = make_engine(calls, PendingFor("wait_for_dns", retry_after=3600, times=1),
                         waits=waits)
    run = engine.onboard(spec_for("parked"), requested_by="ops")
    wait_until(lambda: engine.get_run(run.id).segment == 1, "the run handed over")
    delayed = f"{run.workflow_id}/1"
    wait_until(lambda: workflows_of(engine, delayed).get(delayed) is not None,
               "the continuation was enqueued")
    assert workflows_of(engine, delayed)[delayed].status == "DELAYED"

    cancelled = engine.cancel(run.id)
    assert cancelled.status == "cancelled"
    assert workflows_of(engine, delayed)[delayed].status == "CANCELLED"

    retried = engine.retry(run.id)
    assert retried.segment == 2
    finished = engine.wait(run.id, timeout=60)
    assert finished.status == "succeeded", finished.error
    done = [c["step"] for c in calls.read() if c["event"] == "end" and not c["pending"]]
    assert len(done) == len(set(done)), "a step that succeeded ran again"



def test_the_last_look_is_at_the_end_of_the_pending_window(make_engine: EngineFactory) -> None:
    """A provider that asks to look again in a day, with a window of 3 s: the engine looks
    again when the window ends (not a day later), then fails the step with the reason."""
    waits = RecordedWaits(actual=3.0)
    waiting = PendingFor("wait_for_dns", retry_after=86400, timeout_seconds=3.0,
                         reason="still missing: CNAME app.late.test")
    engine = make_engine(waiting, waits=waits, engine={"long_wait_seconds": 1})
    run = engine.wait(engine.onboard(spec_for("late"), requested_by="ops").id, timeout=60)

    assert run.status == "failed"
    assert run.error is not None
    # The delayed continuation starts within DBOS's one-second poll of delayed workflows.
    assert re.match(r"wait_for_dns failed: still pending after [345] s, the longest allowed "
                    r"\(3 s\): still missing: CNAME app\.late\.test; once that is done, retry "
                    r"the run", run.error), run.error
    asked = waits.of("wait_for_dns")
    assert len(asked) == 1
    assert asked[0][0] == "pending"
    assert 2.5 <= asked[0][1] <= 3.0, "the wait was cut to what was left of the window"
    assert waiting.calls == 2
    assert run.segment == 1


def test_a_long_pending_wait_is_looked_at_less_often_as_it_grows(
    make_engine: EngineFactory,
) -> None:
    """A customer's records may take days: polled every 60 s that would be ten thousand
    segments a week. After a while the engine looks every tenth of the time waited so far
    (up to engine.pending_poll_max_seconds), never sooner than the provider asks."""
    waits = RecordedWaits(actual=0.05)
    waiting = PendingFor("wait_for_dns", retry_after=0.05, times=60)
    engine = make_engine(waiting, waits=waits,
                         engine={"pending_poll_max_seconds": 0.3, "long_wait_seconds": 10})
    run = engine.wait(engine.onboard(spec_for("patient"), requested_by="ops").id, timeout=90)

    assert run.status == "succeeded", run.error
    asked = [seconds for _, seconds in waits.of("wait_for_dns")]
    assert asked[0] == 0.05, "the provider's own interval while the wait is young"
    assert max(asked) == 0.3, "stretched, up to engine.pending_poll_max_seconds"
    assert asked == sorted(asked), "the interval only grows"
