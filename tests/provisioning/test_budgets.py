"""Rate budgets: a provider's calls stay within the budget configured for it, across every
worker, so a throttled service never answers 429 (docs/engine.md, "Rate budgets").

The referee is a real HTTP server that counts requests per one-second window and answers
429 above its limit (`RateLimitedServer`); every call of the budgeted provider is a request
to it (`ServerCalls`), as calls to Keycloak or ARM would be.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from pydantic import ValidationError

from tenantops.catalog import Catalog
from tenantops.config import Settings, load_settings
from tenantops.errors import TransientProviderError
from tenantops.provisioning import Engine

from ..catalog.postgres import postgres_database
from .conftest import EngineFactory, spec_for
from .rate_limited import RateLimitedServer, ServerCalls
from .test_crash import CONFIG as CRASH_CONFIG
from .test_crash import REPO, wait_all

pytestmark = pytest.mark.integration

LIMIT = 5  # the server's requests per second
BUDGET = {"organization": {"providers": ["organization"], "calls": 4, "per_seconds": 1.0}}


def test_the_server_answers_429_above_its_limit_in_one_window() -> None:
    with RateLimitedServer(LIMIT, clock=lambda: 100.5) as server:
        calls = ServerCalls(server.url, {"organization"})
        for _ in range(LIMIT):
            calls.request()
        for _ in range(3):
            with pytest.raises(TransientProviderError, match="429 Too Many Requests") as caught:
                calls.request()
            assert caught.value.retry_after == 1.0
    assert server.refused() == 3


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_reservations_are_spaced_by_the_budget_interval(tmp_path: Path, backend: str) -> None:
    with ExitStack() as stack:
        url = (f"sqlite:///{tmp_path / 'catalog.sqlite'}" if backend == "sqlite"
               else stack.enter_context(postgres_database()))
        catalog = Catalog(url)
        stack.callback(catalog.close)
        catalog.migrate()
        started = time.monotonic()
        waits = [catalog.reserve_call("arm", interval=0.5) for _ in range(6)]
        elapsed = time.monotonic() - started
        assert waits[0] == 0.0
        # Slot n is n intervals after the first: the wait covers what the calls' own time
        # has not.
        assert waits[-1] >= 5 * 0.5 - elapsed - 0.01, (waits, elapsed)
        assert waits == sorted(waits)
        burst = [catalog.reserve_call("keycloak", interval=60.0, burst=3) for _ in range(4)]
        assert burst[:3] == [0.0, 0.0, 0.0]
        assert burst[3] > 50.0
        (arm, keycloak, unused) = catalog.budget_states(["arm", "keycloak", "unused"])
        assert (arm.reserved, keycloak.reserved, unused.reserved) == (6, 4, 0)
        assert keycloak.backlog_seconds > 50.0
        assert unused.backlog_seconds == 0.0
        assert unused.updated_at is None


def test_onboardings_keep_to_the_budget_and_the_server_never_answers_429(
        make_engine: EngineFactory) -> None:
    with RateLimitedServer(LIMIT) as server:
        engine = make_engine(ServerCalls(server.url, {"organization"}),
                             engine={"budgets": BUDGET})
        runs = [engine.onboard(spec_for(f"budget{i}"), requested_by="budget-test")
                for i in range(10)]
        finished = [engine.wait(run.id, timeout=180) for run in runs]
        assert [run.status for run in finished] == ["succeeded"] * len(runs), [
            (run.tenant_slug, run.error) for run in finished]
        organization_calls = 2 * len(runs)  # create_organization, invite_admin
        assert len(server.seen) == organization_calls
        assert server.refused() == 0
        assert server.busiest_window() <= LIMIT
        [(name, config, state)] = engine.budgets()
        assert (name, config.calls, state.reserved) == ("organization", 4, organization_calls)


def test_without_a_budget_the_same_onboardings_meet_429s(make_engine: EngineFactory) -> None:
    """The control: the server is a real referee, and the budget is what keeps it quiet."""
    with RateLimitedServer(LIMIT) as server:
        engine = make_engine(ServerCalls(server.url, {"organization"}),
                             engine={"worker_concurrency": 16, "retry_initial_seconds": 1.0,
                                     "retry_max_seconds": 2.0})
        runs = [engine.onboard(spec_for(f"unbudgeted{i}"), requested_by="budget-test")
                for i in range(16)]
        finished = [engine.wait(run.id, timeout=180) for run in runs]
        assert [run.status for run in finished] == ["succeeded"] * len(runs)
        # Sixteen runs reach their organization steps together: more than 5 in a second.
        assert server.refused() > 0
        assert any(s.attempts > 1 for run in finished for s in run.steps
                   if s.name in ("create_organization", "invite_admin"))


def test_a_long_wait_for_the_budget_frees_the_slot_and_shows_on_the_step(
        make_engine: EngineFactory) -> None:
    slow = {"organization": {"providers": ["organization:local"], "calls": 1,
                             "per_seconds": 2.0}}
    engine = make_engine(engine={"budgets": slow, "long_wait_seconds": 1.0})
    runs = [engine.onboard(spec_for(f"slow{i}"), requested_by="budget-test") for i in range(3)]
    seen_waiting = False
    deadline = time.monotonic() + 120
    while not all(engine.get_run(run.id).finished for run in runs):
        assert time.monotonic() < deadline, "the runs did not finish within 120 s"
        for run in runs:
            for step in engine.get_run(run.id).steps:
                if step.status == "waiting" and step.message and "rate budget" in step.message:
                    assert "rate budget 'organization' (1 calls per 2 s" in step.message
                    seen_waiting = True
        time.sleep(0.05)
    assert seen_waiting, "no step showed that it waits for the budget"
    finished = [engine.get_run(run.id) for run in runs]
    assert [run.status for run in finished] == ["succeeded"] * 3
    # The six organization calls took 2 s slots each: some run continued in a later segment.
    assert max(run.segment for run in finished) > 0
    # Waiting for the budget is no attempt: every step ran once.
    assert {(s.name, s.attempts) for run in finished for s in run.steps} == {
        (s.name, 1) for s in finished[0].steps}


@pytest.mark.parametrize(("budgets", "message"), [
    ({"Bad Name": {"providers": ["dns"], "calls": 1}}, "budget name 'Bad Name'"),
    ({"x": {"providers": ["mail"], "calls": 1}}, "'mail' is not a provider kind"),
    ({"x": {"providers": [], "calls": 1}}, "at least 1 item"),
    ({"x": {"providers": ["dns"], "calls": 0}}, "greater than or equal to 1"),
    ({"a": {"providers": ["dns"], "calls": 1}, "b": {"providers": ["dns"], "calls": 2}},
     "provider 'dns' is in budgets 'a' and 'b'"),
])
def test_bad_budget_settings_are_refused_naming_the_field(
        budgets: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(engine={"budgets": budgets})


# -- two worker processes on PostgreSQL share one budget --------------------------------------

CONFIG = CRASH_CONFIG.replace("[engine]\n", """[engine]
system_database_url = "{system}"
""") + """
[engine.budgets.organization]
providers = ["organization"]
calls = 4
per_seconds = 1.0

[catalog]
url = "{catalog}"
"""


@pytest.fixture
def databases() -> Iterator[tuple[str, str]]:
    with ExitStack() as stack:
        yield stack.enter_context(postgres_database()), stack.enter_context(postgres_database())


def test_two_workers_on_postgresql_share_the_budget(
        tmp_path: Path, databases: tuple[str, str]) -> None:
    data = tmp_path / "data"
    config = tmp_path / "tenantops.toml"
    config.write_text(CONFIG.format(data=data, catalog=databases[0], system=databases[1]))
    processes: list[subprocess.Popen[bytes]] = []
    with RateLimitedServer(LIMIT) as server, ExitStack() as stack:
        requester = Engine(load_settings(config))
        stack.callback(requester.stop)
        for name in ("worker-a", "worker-b"):
            ready = tmp_path / f"{name}.ready"
            log = open(tmp_path / f"{name}.log", "ab")  # noqa: SIM115 - owned by the process
            process = subprocess.Popen(
                [sys.executable, "-m", "tests.provisioning.budget_worker", str(config),
                 str(ready), server.url, name],
                cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=log, stderr=log)
            log.close()
            processes.append(process)
            stack.callback(_stop, process)
            deadline = time.monotonic() + 60
            while not ready.exists():
                assert process.poll() is None, (tmp_path / f"{name}.log").read_text()[-3000:]
                assert time.monotonic() < deadline, f"{name} did not start within 60 s"
                time.sleep(0.05)
        runs = [requester.onboard(spec_for(f"shared{i}"), requested_by="budget-test")
                for i in range(12)]
        finished = wait_all(requester, runs, timeout=240)
        assert [run.status for run in finished] == ["succeeded"] * len(runs), [
            (run.tenant_slug, run.status, run.error) for run in finished]
        assert len(server.seen) == 2 * len(runs)
        assert {s.worker for s in server.seen} == {"worker-a", "worker-b"}
        assert server.refused() == 0
        assert server.busiest_window() <= LIMIT
        [(_, _, state)] = requester.budgets()
        assert state.reserved == 2 * len(runs)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
