"""The fault suite: the experiments of issue 20, kept as tests (``pytest -m faults``).

Each test runs real worker processes through one fault while onboardings are in flight and
asserts the engine's promises: every run ends succeeded (or failed with the cause, then
succeeds on ``retry``), every resource exists exactly once, no step of a run is executed by
two workers at once, and the time to recover is printed. PostgreSQL faults use a cluster the
test starts itself on a free port (the shared server is never stopped); the outage lasts
``OUTAGE_SECONDS``, the issue's minute.
"""

from __future__ import annotations

import datetime as dt
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tenantops.api.schemas import WorkersOut
from tenantops.catalog import Run
from tenantops.config import load_settings
from tenantops.provisioning import Engine

from .conftest import spec_for
from .faults import (
    FaultWorker,
    PostgresCluster,
    SmallDisk,
    assert_all_succeeded,
    assert_each_resource_exists_once,
    assert_no_step_ran_twice_at_once,
    postgres_cluster,
    wait_all,
    wait_until,
    worker_config,
)
from .middleware import CallLog

pytestmark = [pytest.mark.integration, pytest.mark.faults]

TENANTS = 8
OUTAGE_SECONDS = 60.0


@pytest.fixture
def cluster() -> Iterator[PostgresCluster]:
    with postgres_cluster() as started:
        yield started


def requester_for(worker: FaultWorker) -> Engine:
    """An engine that only requests and reads (not started), as the API is."""
    return Engine(load_settings(worker.config))


def onboard(engine: Engine, prefix: str) -> list[Run]:
    return [engine.onboard(spec_for(f"{prefix}{i}"), requested_by="fault-suite")
            for i in range(TENANTS)]


def steps_done(engine: Engine, runs: list[Run]) -> int:
    return sum(1 for run in runs for step in engine.get_run(run.id).steps
               if step.status == "succeeded")


def report(fault: str, seconds: float, detail: str = "") -> None:
    print(f"\nFAULT {fault}: recovered in {seconds:.1f} s{detail}")


def check_outcome(engine: Engine, runs: list[Run], data: Path, workers: list[FaultWorker],
                  **kwargs: object) -> None:
    finished = [engine.get_run(run.id) for run in runs]
    assert_all_succeeded(finished)
    assert_each_resource_exists_once(data, engine, [r.tenant_slug for r in finished],
                                     **kwargs)  # type: ignore[arg-type]
    calls = [call for worker in workers for call in CallLog(worker.calls).read()]
    frozen = [(worker.pid, began, ended) for worker in workers if worker.process
              for began, ended in worker.frozen]
    repeated = assert_no_step_ran_twice_at_once(calls, frozen)
    print(f"{len(calls)} provider call events; {repeated} steps done again after the fault")


@pytest.mark.parametrize("outage", [0.0, OUTAGE_SECONDS], ids=["restarted", "stopped-60s"])
def test_postgres_restarted_or_stopped_mid_run(
    tmp_path: Path, cluster: PostgresCluster, outage: float,
) -> None:
    data = tmp_path / "data"
    worker = FaultWorker(tmp_path / "worker", worker_config(
        data, catalog=cluster.create_database("catalog"),
        system=cluster.create_database("engine"), executor="faults-pg"))
    requester = requester_for(worker)
    try:
        worker.start()
        runs = onboard(requester, "pg")
        wait_until(lambda: steps_done(requester, runs) >= 10, "ten steps done")
        cluster.stop("fast")
        time.sleep(outage)  # the fault itself: the database is away this long
        cluster.start()
        back = time.monotonic()
        finished = wait_all(requester, runs, timeout=180)
        recovered = time.monotonic() - back
        check_outcome(requester, finished, data, [worker])
        report(f"PostgreSQL {'restarted' if not outage else f'stopped {outage:.0f} s'}",
               recovered, " (from the database's return to the last run finished)")
    finally:
        worker.stop()
        requester.stop()


def test_provider_server_down_beyond_the_retry_budget_then_retry_finishes(
    tmp_path: Path, cluster: PostgresCluster,
) -> None:
    data = tmp_path / "data"
    worker = FaultWorker(tmp_path / "worker", worker_config(data, max_attempts=3, extra=f"""
[providers.database]
name = "postgres"

[providers.database.postgres]
admin_url = "{cluster.url()}"
connect_timeout_seconds = 2
"""))
    requester = requester_for(worker)
    try:
        worker.start()
        runs = onboard(requester, "down")
        cluster.stop("fast")
        failed = wait_all(requester, runs, timeout=120)
        stopped = [run for run in failed if run.status == "failed"]
        assert stopped, "every run created its database before the server stopped"
        for run in stopped:
            assert run.failed_step == "create_database"
            assert run.error is not None
            assert "create_database failed 3 times in a row" in run.error
            assert "could not connect to PostgreSQL" in run.error
            assert "will retry" not in run.error
        cluster.start()
        back = time.monotonic()
        for run in stopped:
            requester.retry(run.id)
        finished = wait_all(requester, runs, timeout=120)
        recovered = time.monotonic() - back

        def databases() -> list[str]:
            with psycopg.connect(cluster.url()) as connection:
                return [name for (name,) in connection.execute(
                    "SELECT datname FROM pg_database WHERE datname LIKE 'tenant_%'")]

        check_outcome(requester, finished, data, [worker], databases=databases)
        report("a provider's server down past the retry budget", recovered,
               f" (from its return, {len(stopped)} runs retried, to the last run finished)")
    finally:
        worker.stop()
        requester.stop()


def test_the_data_folder_disk_full_then_freed(tmp_path: Path) -> None:
    disk = SmallDisk(tmp_path / "data")
    worker = FaultWorker(tmp_path / "worker", worker_config(disk.folder))
    requester = requester_for(worker)
    try:
        worker.start()
        runs = onboard(requester, "full")
        wait_until(lambda: steps_done(requester, runs) >= 10, "ten steps done")
        disk.fill(worker.pid)
        wait_until(lambda: "disk" in worker.log_text() or "File too large" in
                   worker.log_text(), "the worker met the full disk", timeout=60)
        stuck_before = [run.id for run in runs if not requester.get_run(run.id).finished]
        time.sleep(3.0)  # the fault itself: the disk stays full a while
        disk.free(worker.pid)
        freed = time.monotonic()
        finished = wait_all(requester, runs, timeout=120)
        recovered = time.monotonic() - freed
        retried = [run for run in finished if run.status == "failed"]
        for run in retried:  # a step whose own write failed fails with the cause
            assert run.error is not None
            assert "No space left on device" in run.error or "disk" in run.error
            requester.retry(run.id)
        finished = wait_all(requester, runs, timeout=120)
        log = worker.log_text()
        check_outcome(requester, finished, disk.folder, [worker])
        assert stuck_before, "every run finished before the disk filled"
        if "stopped on this worker" in log:
            assert "(the worker could not write to its database:" in log
        report("the data folder's disk full, then freed", recovered,
               f" (from freeing, to the last run finished; {disk.how}; "
               f"{log.count('stopped on this worker')} workflows resumed, "
               f"{len(retried)} runs retried)")
    finally:
        worker.stop()
        requester.stop()
        disk.close()


def held_by(engine: Engine, executor: str) -> list[str]:
    return [w.workflow_id for w in engine._dbos().list_workflows(
        status="PENDING", executor_id=executor, load_input=False, load_output=False)]


def test_a_frozen_worker_is_taken_over_and_runs_nothing_twice(
    tmp_path: Path, cluster: PostgresCluster,
) -> None:
    data = tmp_path / "data"
    catalog, system = cluster.create_database("catalog"), cluster.create_database("engine")
    first = FaultWorker(tmp_path / "a", worker_config(
        data, catalog=catalog, system=system, executor="faults-a", timeout=4, issuance=2.0))
    second = FaultWorker(tmp_path / "b", worker_config(
        data, catalog=catalog, system=system, executor="faults-b", timeout=4, issuance=2.0))
    requester = requester_for(first)
    try:
        first.start()
        runs = onboard(requester, "frozen")
        wait_until(lambda: steps_done(requester, runs) >= 6, "six steps done")
        second.start()
        first.freeze_between_calls()
        frozen_at = time.monotonic()
        held = held_by(requester, "faults-a")
        assert held, "the first worker held no run when it froze"
        taken = wait_until(lambda: all(f"taking over {w} from worker faults-a" in
                                       second.log_text() for w in held),
                           "the second worker took over every run", timeout=60)
        finished = wait_all(requester, runs, timeout=120)
        recovered = time.monotonic() - frozen_at
        first.thaw()
        wait_until(lambda: requester.catalog.live_workers(dt.timedelta(seconds=4)) == {
            "faults-a", "faults-b"}, "the thawed worker beat again")
        owners = {w.executor_id for w in requester._dbos().list_workflows(
            workflow_ids=held, load_input=False, load_output=False)}
        assert owners == {"faults-b"}
        check_outcome(requester, finished, data, [first, second])
        report("a worker frozen (SIGSTOP)", recovered,
               f" (from the freeze to the last run finished; its {len(held)} runs taken over "
               f"{taken:.1f} s after the freeze; worker_timeout_seconds = 4)")
    finally:
        first.stop()
        second.stop()
        requester.stop()


def test_a_worker_with_a_skewed_clock_takes_over_nothing(
    tmp_path: Path, cluster: PostgresCluster,
) -> None:
    data = tmp_path / "data"
    catalog, system = cluster.create_database("catalog"), cluster.create_database("engine")
    healthy = FaultWorker(tmp_path / "a", worker_config(
        data, catalog=catalog, system=system, executor="faults-true", timeout=20,
        issuance=4.0, concurrency=4))
    skewed = FaultWorker(tmp_path / "b", worker_config(
        data, catalog=catalog, system=system, executor="faults-ahead", timeout=20,
        issuance=4.0, concurrency=4), skew="+600")
    requester = requester_for(healthy)
    try:
        healthy.start()
        skewed.start()
        started = time.monotonic()
        runs = onboard(requester, "skew")
        wait_until(lambda: held_by(requester, "faults-true"), "the healthy worker runs")
        wait_until(lambda: "this worker's clock is 6" in skewed.log_text(),
                   "the skewed worker noticed its clock")
        finished = wait_all(requester, runs, timeout=120)
        took = time.monotonic() - started
        workers = {w.executor_id: w for w in requester.catalog.workers()}
        listed = WorkersOut.of(list(workers.values()), 20, 5)
        flags = {w.executor_id: (w.alive, w.clock_skewed) for w in listed.workers}
        offset = workers["faults-ahead"].clock_offset_seconds
        assert offset is not None
        assert 590 < offset < 610, offset
        assert flags == {"faults-true": (True, False), "faults-ahead": (True, True)}
        for worker in workers.values():  # by the database's clock: never seen in the future
            assert worker.seen_seconds_ago >= 0
            assert worker.last_seen <= dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=5)
        assert "taking over" not in skewed.log_text()
        calls = CallLog(skewed.calls).read()
        assert {c["pid"] for c in calls} == {skewed.pid}, "the skewed worker ran no step"
        check_outcome(requester, finished, data, [healthy, skewed])
        report("a worker 10 minutes ahead", 0.0,
               f" (nothing to recover: it took over no run, ran {len(calls) // 2} provider "
               f"calls itself; all {TENANTS} runs finished in {took:.1f} s)")
    finally:
        healthy.stop()
        skewed.stop()
        requester.stop()


def test_a_second_worker_on_one_embedded_folder_is_refused_then_takes_over(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    first = FaultWorker(tmp_path / "a", worker_config(data))
    second = FaultWorker(tmp_path / "b", worker_config(data))
    requester = requester_for(first)
    try:
        first.start()
        refused = second.launch()
        assert refused.wait(timeout=60) == 1
        message = second.log_text()
        assert (f"another worker (pid {first.pid} on {socket.gethostname()} since "
                in message)
        assert "is already running on the data folder" in message
        assert "give them a shared PostgreSQL (catalog.url and engine.system_database_url)" \
            in message
        second.process = None

        runs = onboard(requester, "twin")
        wait_until(lambda: steps_done(requester, runs) >= 10, "ten steps done")
        first.kill()
        killed = time.monotonic()
        second.start()
        finished = wait_all(requester, runs, timeout=120)
        recovered = time.monotonic() - killed
        check_outcome(requester, finished, data, [first, second])
        report("two processes on one embedded folder", recovered,
               " (the second refused; after the first was killed, from the kill to the last "
               "run finished by the second)")
    finally:
        first.stop()
        second.stop()
        requester.stop()
