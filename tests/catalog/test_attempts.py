"""Every attempt of every step is recorded, and attempt, step and run durations are defined
once (`tenantops.catalog.durations`) and agree with each other across a retry; tested with an
injected clock, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from tenantops.api.schemas import RunOut
from tenantops.catalog import Catalog, Run, StepTemplate, attempt_seconds, run_seconds, step_seconds

from .test_repository import Spec

T0 = dt.datetime(2026, 12, 6, 9, 0, tzinfo=dt.timezone.utc)
STEPS = [StepTemplate("create_database", "database:sqlite", "ensure"),
         StepTemplate("create_cname_record", "dns:zone-file", "ensure")]


class Clock:
    """Seconds after T0, moved by the test."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __call__(self) -> dt.datetime:
        return T0 + dt.timedelta(seconds=self.seconds)

    def at(self, seconds: float) -> Clock:
        self.seconds = seconds
        return self


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def timed(catalog_url: str, clock: Clock) -> Iterator[Catalog]:
    catalog = Catalog(catalog_url, clock=clock)
    catalog.migrate()
    yield catalog
    catalog.close()


def failed_then_retried(catalog: Catalog, clock: Clock) -> Run:
    """create_database: a transient fault at 2 s, tried again at 5 s, done at 6 s;
    create_cname_record: fails at 7 s; the run waits failed for an hour, is retried, and
    the step succeeds from 3610 s to 3611 s."""
    run = catalog.open_onboarding(Spec(), requested_by="ops", steps=STEPS).run
    db = {"name": "tenant_acme", "login": "acme_app", "secret": "acme-database-password",
          "password": "s3cr3t-value"}
    cname = {"name": "portal.acme.test", "type": "CNAME", "value": "app.example.net"}
    assert catalog.step_started(run.id, "create_database", resolved=db) == 1
    clock.at(2)
    catalog.step_waiting(run.id, "create_database", status="retrying", message="503 busy")
    clock.at(5)
    assert catalog.step_started(run.id, "create_database", resolved=db) == 2
    clock.at(6)
    catalog.step_succeeded(run.id, "create_database", {"database": "tenant_acme"}, {})
    assert catalog.step_started(run.id, "create_cname_record", resolved=cname) == 1
    clock.at(7)
    catalog.step_failed(run.id, "create_cname_record", "zone refused the update")
    catalog.finish_run(run.id, "failed", error="zone refused the update",
                       failed_step="create_cname_record")
    clock.at(3607)
    catalog.reopen_run(run.id)
    clock.at(3610)
    assert catalog.step_started(run.id, "create_cname_record", resolved=cname) == 2
    clock.at(3611)
    catalog.step_succeeded(run.id, "create_cname_record", {"record": "portal.acme.test"}, {})
    catalog.finish_run(run.id, "succeeded")
    return catalog.get_run(run.id)


def test_each_attempt_is_recorded_with_times_outcome_error_and_resolved_values(
    timed: Catalog, clock: Clock,
) -> None:
    run = failed_then_retried(timed, clock)
    database, cname = run.steps
    assert [(a.number, a.execution, a.outcome, a.error) for a in database.history] == [
        (1, 0, "retrying", "503 busy"), (2, 0, "succeeded", None)]
    assert [(a.number, a.execution, a.outcome, a.error) for a in cname.history] == [
        (1, 0, "failed", "zone refused the update"), (2, 1, "succeeded", None)]
    assert [a.started_at for a in cname.history] == [T0 + dt.timedelta(seconds=6),
                                                     T0 + dt.timedelta(seconds=3610)]
    assert cname.resolved == {"name": "portal.acme.test", "type": "CNAME",
                              "value": "app.example.net"}


def test_durations_of_attempts_steps_and_the_run_agree_across_a_retry(
    timed: Catalog, clock: Clock,
) -> None:
    run = failed_then_retried(timed, clock)
    now = clock.at(9999)()
    database, cname = run.steps
    assert [attempt_seconds(a, now) for a in database.history] == [2.0, 1.0]
    assert step_seconds(database, now) == 6.0  # backoff between its attempts included
    assert step_seconds(cname, now) == 2.0     # 1 s in each execution; the hour failed is not
    assert run_seconds(run, now) == 8.0        # 7 s in the first execution, 1 s in the retry

    shown = RunOut.of(run, now)
    assert shown.duration_seconds == 8.0
    assert [s.duration_seconds for s in shown.steps] == [6.0, 2.0]
    assert [a.duration_seconds for a in shown.steps[1].history] == [1.0, 1.0]


def test_a_retried_step_reads_pending_without_its_old_error_which_stays_in_its_history(
    timed: Catalog, clock: Clock,
) -> None:
    run = timed.open_onboarding(Spec(), requested_by="ops", steps=STEPS).run
    timed.step_started(run.id, "create_database")
    clock.at(1)
    timed.step_failed(run.id, "create_database", "disk full")
    timed.finish_run(run.id, "failed", error="disk full", failed_step="create_database")

    reopened = timed.reopen_run(run.id).step("create_database")

    assert (reopened.status, reopened.error, reopened.message) == ("pending", None, None)
    assert [(a.outcome, a.error) for a in reopened.history] == [("failed", "disk full")]


def test_a_running_attempt_counts_until_now_and_one_its_worker_abandoned_is_interrupted(
    timed: Catalog, clock: Clock,
) -> None:
    run = timed.open_onboarding(Spec(), requested_by="ops", steps=STEPS).run
    timed.step_started(run.id, "create_database")
    assert step_seconds(timed.get_run(run.id).step("create_database"), clock.at(4)()) == 4.0
    clock.at(10)  # the worker died; another one starts the step again
    timed.step_started(run.id, "create_database")
    step = timed.get_run(run.id).step("create_database")

    assert [a.outcome for a in step.history] == ["interrupted", "running"]
    assert attempt_seconds(step.history[0], clock.at(12)()) is None
    assert step_seconds(step, clock.at(12)()) == 12.0


def test_secret_named_values_are_redacted_when_shown(timed: Catalog, clock: Clock) -> None:
    run = failed_then_retried(timed, clock)

    shown = RunOut.of(run, clock())
    resolved = shown.steps[0].resolved
    assert resolved is not None
    assert resolved["password"] == "[redacted]"
    assert resolved["secret"] == "acme-database-password"  # a secret's name, not its value
    assert "s3cr3t-value" not in shown.model_dump_json()
