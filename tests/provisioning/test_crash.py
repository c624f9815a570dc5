"""Crash safety: a worker killed with SIGKILL at random moments, restarted each time,
finishes every onboarding with every resource made exactly once."""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import dns.name
import dns.rdatatype
import pytest

from tenantops.catalog import Run
from tenantops.config import load_settings
from tenantops.provisioning import Engine
from tenantops.provisioning.providers.dns.zones import ZoneFiles
from tenantops.provisioning.providers.webhost.state import EdgeState
from tests.support.processes import READY_SECONDS

from .conftest import settled_workflows, spec_for
from .middleware import CallLog

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
TENANTS = 20
KILLS = 6

CONFIG = """\
data_dir = "{data}"
log_level = "WARNING"
dev_mode = true

[engine]
queue_polling_seconds = 0.05
retry_initial_seconds = 0.01
retry_max_seconds = 0.05
worker_concurrency = 8

[providers.dns]
port = 0
propagation_poll_seconds = 0.05

[providers.webhost]
port = 0
app_port = 0
issuance_delay_seconds = 0.4
"""


class Worker:
    """One worker process at a time, started and killed on demand."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.config = folder / "tenantops.toml"
        self.calls = folder / "calls.jsonl"
        self.ready = folder / "ready.json"
        self.process: subprocess.Popen[bytes] | None = None
        self.killed_pids: set[int] = set()

    def start(self) -> None:
        self.ready.unlink(missing_ok=True)
        log = open(self.folder / "worker.log", "ab")  # noqa: SIM115 - owned by the process
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.provisioning.crash_worker", str(self.config),
             str(self.calls), str(self.ready)],
            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=log, stderr=log,
        )
        log.close()
        deadline = time.monotonic() + READY_SECONDS
        while not self.ready.exists():
            assert self.process.poll() is None, (self.folder / "worker.log").read_text()[-3000:]
            assert time.monotonic() < deadline, f"the worker did not start within {READY_SECONDS} s"
            time.sleep(0.05)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.killed_pids.add(self.process.pid)
        self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
            self.process = None


def wait_all(engine: Engine, runs: list[Run], timeout: float) -> list[Run]:
    deadline = time.monotonic() + timeout
    while True:
        current = [engine.get_run(run.id) for run in runs]
        if all(run.finished for run in current) or time.monotonic() > deadline:
            return current
        time.sleep(0.2)


def test_sigkilled_worker_finishes_every_onboarding_exactly_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    worker = Worker(tmp_path)
    worker.config.write_text(CONFIG.format(data=data))
    settings = load_settings(worker.config)
    worker.start()
    requester = Engine(settings)  # not started: requests go through the system database
    try:
        runs = [requester.onboard(spec_for(f"crash{i:02d}"), requested_by="crash-test")
                for i in range(TENANTS)]
        chance = random.Random(20261130)
        kills_mid_work = 0
        for _ in range(KILLS):
            time.sleep(chance.uniform(0.2, 1.2))
            unfinished = sum(1 for run in runs if not requester.get_run(run.id).finished)
            worker.kill()
            kills_mid_work += unfinished > 0
            worker.start()
        finished = wait_all(requester, runs, timeout=180)
        worker.stop()

        assert kills_mid_work >= 3, "too few kills landed while onboardings were running"
        assert [run.status for run in finished] == ["succeeded"] * TENANTS, [
            (run.tenant_slug, run.error) for run in finished if run.status != "succeeded"]
        for run in finished:
            assert {step.status for step in run.steps} == {"succeeded"}
        assert {t.status for t in requester.catalog.list_tenants()} == {"active"}

        assert_each_resource_exists_once(data, requester)
        assert_no_succeeded_step_ran_again(requester, finished, CallLog(worker.calls).read(),
                                           worker.killed_pids)
    finally:
        worker.stop()
        requester.stop()


def assert_each_resource_exists_once(data: Path, engine: Engine) -> None:
    zones = ZoneFiles(data / "dns")
    assert len(zones.names()) == TENANTS
    for i in range(TENANTS):
        zone = zones.load(f"crash{i:02d}.test")
        assert zone is not None
        cname = zone.get_rdataset(dns.name.from_text(f"app.crash{i:02d}.test"),
                                  dns.rdatatype.CNAME)
        txt = zone.get_rdataset(dns.name.from_text(f"asuid.app.crash{i:02d}.test"),
                                dns.rdatatype.TXT)
        assert cname is not None
        assert txt is not None
        assert (len(cname), len(txt)) == (1, 1)
    databases = sorted((data / "databases").glob("*.sqlite"))
    assert len(databases) == TENANTS
    # Each tenant's login password and its app's connection URL, once each.
    assert len(list((data / "secrets").iterdir())) == 2 * TENANTS
    edge = EdgeState(data / "edge")
    bindings = edge.bindings()
    assert len(bindings) == TENANTS
    assert {b.ssl_state for b in bindings} == {"SniEnabled"}
    assert len(list((data / "edge" / "certificates").glob("*.pem"))) == TENANTS
    for binding in bindings:
        certificate = edge.certificate(binding.hostname)
        assert certificate is not None
        assert certificate.thumbprint == binding.thumbprint
        tenant = engine.catalog.get_tenant(binding.tenant)
        assert tenant.certificate_thumbprint == binding.thumbprint
    organizations = engine.catalog.organizations.list()
    assert len(organizations) == TENANTS
    assert {(len(o.domains), len(o.invitations)) for o in organizations} == {(1, 1)}
    workflows = list(settled_workflows(engine, "tenantops/crash").values())
    assert len(workflows) == TENANTS
    assert {w.status for w in workflows} == {"SUCCESS"}


def assert_no_succeeded_step_ran_again(
    engine: Engine, runs: list[Run], calls: list[dict[str, Any]], killed: set[int],
) -> None:
    """A provider call starts after its step's checkpoint never; a step's provider work
    repeats only when the worker that did it was killed before checkpointing it."""
    begins: dict[tuple[str, str], list[float]] = collections.defaultdict(list)
    completions: dict[tuple[str, str], list[int]] = collections.defaultdict(list)
    for call in calls:
        key = (call["run"], call["step"])
        if call["event"] == "begin":
            begins[key].append(call["t"])
        elif call["event"] == "end" and not call["pending"]:
            completions[key].append(call["pid"])
    repeated = 0
    for run in runs:
        checkpoints: dict[str, int] = {}
        for step in engine._dbos().list_workflow_steps(run.workflow_id):
            output, completed = step["output"], step["completed_at_epoch_ms"]
            if step["function_name"] == "tenantops.execute_step" and isinstance(output, dict) \
                    and output["state"] == "succeeded" and completed is not None:
                checkpoints[output["step"]] = completed
        assert len(checkpoints) == len(run.steps)
        for step_name, checkpoint_ms in checkpoints.items():
            key = (run.id, step_name)
            assert completions[key], f"{key} succeeded without a provider call"
            late = [t for t in begins[key] if t * 1000 > checkpoint_ms + 1]
            assert late == [], f"{step_name} of {run.tenant_slug} ran after it had succeeded"
            *earlier, _last = completions[key]
            assert set(earlier) <= killed, (
                f"{step_name} of {run.tenant_slug} completed twice without a crash between")
            repeated += len(earlier)
    # Kills land between a provider call and its checkpoint only rarely; just report it.
    print(f"{len(calls)} call events; {repeated} provider calls repeated after a kill")
