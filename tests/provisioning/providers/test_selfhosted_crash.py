"""The engine's crash test on the self-hosted providers, with PostgreSQL as the engine's and
the catalog's database: a worker process is SIGKILLed at random points while it onboards
tenants, and restarted; every run finishes and every resource exists exactly once."""

from __future__ import annotations

import json
import os
import random
import selectors
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tenantops.catalog import Catalog
from tenantops.provisioning.engine import Engine
from tenantops.provisioning.spec import TenantSpec
from tests.support.processes import READY_SECONDS

from .selfhosted import scratch_databases, selfhosted_providers, selfhosted_settings
from .servers import (
    SmtpSink,
    dns_settings,
    dns_zone,
    keycloak_admin,
    keycloak_settings,
    point_realm_smtp_at,
    postgres_url,
    unique_slug,
)

pytestmark = pytest.mark.integration

TENANTS = 8
KILLS = 5
ROOT = Path(__file__).resolve().parents[3]


class Worker:
    """``crash_worker`` in a subprocess; `kill` is SIGKILL, nothing graceful."""

    def __init__(self, settings_file: Path, calls: Path, log: Path) -> None:
        self._args = [sys.executable, "-m", "tests.provisioning.providers.crash_worker",
                      str(settings_file), str(calls)]
        self._log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = READY_SECONDS) -> None:
        with open(self._log, "ab") as log:
            self.process = subprocess.Popen(self._args, cwd=ROOT, stdout=subprocess.PIPE,
                                            stderr=log, env=os.environ.copy())
        assert self.process.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(self.process.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if selector.select(timeout=0.5) and b"worker started" in self.process.stdout.readline():
                selector.close()
                return
            if self.process.poll() is not None:
                break
        selector.close()
        pytest.fail(f"the crash worker did not start; see {self._log}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture
def keycloak() -> Iterator[httpx.Client]:
    with keycloak_admin(keycloak_settings()) as client:
        yield client


@pytest.fixture
def smtp(keycloak: httpx.Client) -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.start()
    point_realm_smtp_at(keycloak, sink.port)
    yield sink
    sink.stop()


def server_state(specs: list[TenantSpec], keycloak: httpx.Client) -> dict[str, Any]:
    """Each tenant's resources as the servers themselves report them."""
    names = [f"tenant_{s.slug}" for s in specs]
    with psycopg.connect(postgres_url()) as admin:
        databases = Counter(row[0] for row in admin.execute(
            "SELECT datname FROM pg_database WHERE datname = ANY(%s)", (names,)))
        logins = Counter(row[0] for row in admin.execute(
            "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)",
            ([f"{s.slug}_app" for s in specs],)))
    page = keycloak.get("/organizations", params={"max": "1000",
                                                  "briefRepresentation": "false"})
    page.raise_for_status()
    aliases = Counter(o["alias"] for o in page.json())
    port = str(dns_settings("knot").rfc2136.port)
    records: dict[str, list[str]] = {}
    for spec in specs:
        for name, rdtype in ((spec.custom_domain, "CNAME"),
                             (f"asuid.{spec.custom_domain}", "TXT")):
            answer = subprocess.run(["kdig", "+short", "+tcp", "-p", port, "@127.0.0.1",
                                     name, rdtype], capture_output=True, text=True, check=True)
            records[f"{rdtype} {name}"] = answer.stdout.split()
    return {
        "databases": {s.slug: databases[f"tenant_{s.slug}"] for s in specs},
        "logins": {s.slug: logins[f"{s.slug}_app"] for s in specs},
        "organizations": {s.slug: aliases[s.slug] for s in specs},
        "records": records,
    }


def test_sigkill_at_random_points_leaves_every_resource_exactly_once(
    tmp_path: Path, keycloak: httpx.Client, smtp: SmtpSink,
) -> None:
    rng = random.Random(int(os.environ.get("TENANTOPS_CRASH_SEED", "0")) or None)
    with scratch_databases("catalog", "engine") as (catalog_db, engine_db):
        settings = selfhosted_settings(tmp_path / "data", catalog_db=catalog_db,
                                       engine_db=engine_db, dns_server="knot",
                                       executor_id="crash-worker")
        settings_file = tmp_path / "settings.json"
        settings_file.write_text(settings.model_dump_json())
        calls = tmp_path / "calls.log"
        worker = Worker(settings_file, calls, tmp_path / "worker.log")
        catalog = Catalog.from_settings(settings)
        providers = selfhosted_providers(settings, catalog)
        requester = Engine(settings, catalog=catalog, providers=providers)  # never started
        specs = [TenantSpec(slug=slug, display_name=f"Crash {slug}",
                            custom_domain=f"{slug}.{dns_zone('knot')}",
                            admin_email=f"admin@{slug}.example.net")
                 for slug in (unique_slug("crash") for _ in range(TENANTS))]
        try:
            worker.start()
            runs = [requester.onboard(spec, requested_by="crash-test") for spec in specs]
            for _ in range(KILLS):
                time.sleep(rng.uniform(0.1, 1.5))
                worker.kill()
                worker.start()
            finished = [requester.wait(run.id, timeout=180) for run in runs]

            assert [(r.status, r.error) for r in finished] == [("succeeded", None)] * TENANTS
            state = server_state(specs, keycloak)
            assert state["databases"] == {s.slug: 1 for s in specs}
            assert state["logins"] == {s.slug: 1 for s in specs}
            assert state["organizations"] == {s.slug: 1 for s in specs}
            site = providers.webhost.site()
            for spec in specs:
                assert state["records"][f"CNAME {spec.custom_domain}"] == [
                    f"{site.default_hostname}."]
                assert state["records"][f"TXT asuid.{spec.custom_domain}"] == [
                    f'"{site.verification_id}"']
                smtp.wait_for(spec.admin_email)
            # Idempotent providers answer "unchanged" when a step runs again after a crash,
            # so a resource reported created twice would have been made twice.
            logged = [json.loads(line) for line in calls.read_text().splitlines()]
            created = Counter(c["resource"] for c in logged if c["changed"]
                              and c["verb"] == "ensure")
            assert [k for k, n in created.items() if n > 1] == []

            offboarded = [requester.wait(
                requester.offboard(spec.slug, requested_by="crash-test").id, timeout=120)
                for spec in specs]
            assert [r.status for r in offboarded] == ["succeeded"] * TENANTS
            gone = server_state(specs, keycloak)
            assert set(gone["databases"].values()) == {0}
            assert set(gone["logins"].values()) == {0}
            assert set(gone["organizations"].values()) == {0}
            assert all(values == [] for values in gone["records"].values())
        finally:
            worker.kill()
            requester.stop()
            catalog.close()
            organizations = providers.organization
            assert hasattr(organizations, "close")
            organizations.close()
