"""A worker that dies for good (a scaled-in instance) has its runs taken over by a live worker.

Two worker processes with their own executor IDs share a PostgreSQL catalog and DBOS system
database, as in a scaled-out deployment. DBOS alone recovers a worker's workflows only when
a worker with the same executor ID starts again; here the first is killed and never comes
back, and the second must finish its runs.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from tenantops.catalog import Run
from tenantops.config import load_settings
from tenantops.provisioning import Engine

from ..catalog.postgres import postgres_database
from .conftest import spec_for
from .middleware import CallLog
from .test_crash import CONFIG as CRASH_CONFIG
from .test_crash import Worker, assert_no_succeeded_step_ran_again, wait_all

pytestmark = pytest.mark.integration

TENANTS = 6
TIMEOUT_SECONDS = 3.0

# The crash test's worker settings, plus the shared PostgreSQL databases and an identity.
CONFIG = CRASH_CONFIG.replace("[engine]\n", """[engine]
system_database_url = "{system}"
executor_id = "{executor}"
worker_timeout_seconds = {timeout}
""") + """
[catalog]
url = "{catalog}"
"""


@pytest.fixture
def databases() -> Iterator[tuple[str, str]]:
    with ExitStack() as stack:
        yield stack.enter_context(postgres_database()), stack.enter_context(postgres_database())


def worker(folder: Path, data: Path, databases: tuple[str, str], executor: str) -> Worker:
    folder.mkdir()
    started = Worker(folder)
    started.config.write_text(CONFIG.format(data=data, catalog=databases[0],
                                            system=databases[1], executor=executor,
                                            timeout=TIMEOUT_SECONDS))
    return started


def wait_until(condition: Callable[[], object], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {timeout:.0f} s"
        time.sleep(0.05)


def held_by(engine: Engine, executor: str) -> list[str]:
    return [w.workflow_id for w in engine._dbos().list_workflows(
        status="PENDING", executor_id=executor, load_input=False, load_output=False)]


@dataclass
class Pair:
    first: Worker  # executor worker-a, started
    second: Worker  # executor worker-b, not started yet
    requester: Engine  # not started: requests only

    def onboard(self, prefix: str) -> list[Run]:
        return [self.requester.onboard(spec_for(f"{prefix}{i}"), requested_by="takeover-test")
                for i in range(TENANTS)]


@pytest.fixture
def pair(tmp_path: Path, databases: tuple[str, str]) -> Iterator[Pair]:
    data = tmp_path / "data"
    first = worker(tmp_path / "a", data, databases, "worker-a")
    started = Pair(first, worker(tmp_path / "b", data, databases, "worker-b"),
                   Engine(load_settings(first.config)))
    try:
        first.start()
        yield started
    finally:
        started.second.stop()
        started.first.stop()
        started.requester.stop()


def test_a_live_worker_finishes_the_runs_of_a_worker_that_died(pair: Pair) -> None:
    requester = pair.requester
    runs = pair.onboard("moved")
    wait_until(lambda: any(requester.get_run(run.id).status == "running" for run in runs),
               "worker-a started no run")
    # A live worker is never taken for dead: nothing of worker-a's is taken over.
    assert requester.take_over_orphaned_runs() == []
    pair.first.kill()
    orphaned = held_by(requester, "worker-a")
    assert orphaned, "worker-a held no unfinished workflow when it was killed"

    pair.second.start()
    finished = wait_all(requester, runs, timeout=120)
    assert [run.status for run in finished] == ["succeeded"] * TENANTS, [
        (run.tenant_slug, run.status, run.error) for run in finished]
    assert held_by(requester, "worker-a") == []
    statuses = requester._dbos().list_workflows(workflow_ids=orphaned, load_input=False,
                                                load_output=False)
    assert {(w.status, w.executor_id) for w in statuses} == {("SUCCESS", "worker-b")}
    log = (pair.second.folder / "worker.log").read_text()
    for workflow_id in orphaned:
        assert f"taking over {workflow_id} from worker worker-a" in log

    calls = CallLog(pair.first.calls).read() + CallLog(pair.second.calls).read()
    assert_no_succeeded_step_ran_again(requester, finished, calls, pair.first.killed_pids)


def test_a_stopped_worker_hands_its_runs_over_at_the_next_beat(pair: Pair) -> None:
    requester = pair.requester
    runs = pair.onboard("handed")
    wait_until(lambda: held_by(requester, "worker-a"), "worker-a started no run")
    pair.first.stop()  # SIGTERM: a clean stop, which signs the worker off
    assert held_by(requester, "worker-a"), "worker-a finished everything before it stopped"
    assert requester.catalog.live_workers(dt.timedelta(hours=1)) == set()
    pair.second.start()
    finished = wait_all(requester, runs, timeout=120)
    assert [run.status for run in finished] == ["succeeded"] * TENANTS, [
        (run.tenant_slug, run.status, run.error) for run in finished]
