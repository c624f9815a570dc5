"""Server time of every dashboard page at 100 tenants / 1,000 runs and at 10,000 tenants /
100,000 runs, as ratios, and searches against the plain lists they filter.

The catalog is seeded straight through SQL (a few statements per 5,000 rows): tenants, and
runs spread over the last 60 days (newest first: 1 in 1,000 still running, 6 % failed at a
step, 2 % cancelled, the rest succeeded), each with six steps and one attempt per step run
(``--steps`` changes that), plus one lifecycle event per run. Pages are requested in process
(Starlette's test client: no network, no browser), signed in through App Service
Authentication's principal header so no identity provider is needed. Each figure is the
median of ``--requests`` requests after a warm-up. The overview's trends are computed off
the request (`TrendCache`); their computation is timed on its own, and the overview is timed
with them cached, as a person sees it.

Run: .venv/bin/python bench/bench_dashboard.py [--requests 20] [--runs 100000] [--postgres]
(``--postgres``: the catalogs are throwaway databases on ``TENANTOPS_TEST_POSTGRES_URL``,
scripts/services/postgres.sh; else SQLite files.)
Goals (issue 18): every page at 10,000 tenants / 100,000 runs takes at most 100 ms of server
time, and a search at most 2 times the plain list it filters.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url

from tenantops.api import create_app
from tenantops.catalog.models import EventRow, RunRow, StepAttemptRow, StepRow, TenantRow
from tenantops.config import Settings
from tenantops.dashboard._app import Dashboard
from tenantops.dashboard._overview import compute_trends
from tenantops.provisioning import Engine

GOAL_MS = 100.0
GOAL_SEARCH_RATIO = 2.0
TENANT_ID = "8d6f5c2a-1b3e-4f70-9a6c-2e4b7d9f0a15"
API_CLIENT_ID = "5f9d1b7c-2a4e-4c1d-9b3a-7e6f0a1c2d3e"
STATUSES = ("active", "active", "active", "active", "suspended", "failed", "offboarded")
STEPS = [("register_tenant", "catalog:sqlite"), ("create_database", "database:sqlite"),
         ("create_cname_record", "dns:zone-file"), ("bind_hostname", "webhost:local-edge"),
         ("issue_certificate", "webhost:local-edge"), ("create_organization", "organization:local"),
         ("invite_admin", "organization:local"), ("activate_tenant", "catalog:sqlite")]
CHUNK = 5000


def principal_header() -> str:
    claims = [("oid", str(uuid.uuid4())), ("tid", TENANT_ID), ("appid", API_CLIENT_ID),
              ("name", "Bench Reader"), ("roles", "Tenants.Read")]
    body = {"auth_typ": "aad", "claims": [{"typ": t, "val": v} for t, v in claims],
            "role_typ": "roles"}
    return base64.b64encode(json.dumps(body).encode()).decode()


def chunks(rows: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch


def seed(engine: Engine, tenants: int, runs: int, steps: int) -> str:
    """Tenants and runs as the module docstring says; returns a failed run's ID."""
    now = dt.datetime.now(dt.timezone.utc)
    tenant_ids = [uuid.uuid4().hex for _ in range(tenants)]
    tenant_rows = ({
        "id": tenant_ids[i], "slug": f"tenant-{i:05d}", "display_name": f"Tenant {i}",
        "custom_domain": f"app.tenant-{i:05d}.example.com", "plan": "standard",
        "admin_email": f"admin@tenant-{i:05d}.example.com", "tags": {},
        "status": STATUSES[i % len(STATUSES)], "created_at": now - dt.timedelta(days=90),
        "updated_at": now, "dns_records": {},
        "certificate_expires_at": now + dt.timedelta(days=(i % 120) + 1),
        "certificate_thumbprint": f"{i:040X}",
    } for i in range(tenants))
    plan = STEPS[:steps]
    span = dt.timedelta(days=60)
    failed_run = ""
    run_rows: list[dict[str, Any]] = []
    step_rows: list[dict[str, Any]] = []
    attempt_rows: list[dict[str, Any]] = []
    event_rows: list[dict[str, Any]] = []
    active_every = 100
    with engine.catalog.engine.begin() as connection:
        for batch in chunks(tenant_rows):
            connection.execute(insert(TenantRow), batch)

        def flush() -> None:
            for table, rows in ((RunRow, run_rows), (StepRow, step_rows),
                                (StepAttemptRow, attempt_rows), (EventRow, event_rows)):
                if rows:
                    connection.execute(insert(table), rows)
                    rows.clear()

        for n in range(runs):
            run_id = uuid.uuid4().hex
            tenant = n % tenants
            created = now - span * (runs - n) / runs
            # The newest run of every 100th tenant is still running (one active per tenant).
            active = n >= runs - tenants and tenant % active_every == 0
            roll = n % 50
            status = ("running" if active else "failed" if roll < 3
                      else "cancelled" if roll == 3 else "succeeded")
            stop_at = (n % len(plan)) if status in ("failed", "running", "cancelled") \
                else len(plan)
            moment = created + dt.timedelta(seconds=1)
            for position, (name, provider) in enumerate(plan):
                seconds = 0.5 + (n * 7 + position * 13) % 40 / 4
                finished: dt.datetime | None
                if position < stop_at:
                    step_status, finished = "succeeded", moment + dt.timedelta(seconds=seconds)
                elif position == stop_at and status != "cancelled":
                    step_status = "failed" if status == "failed" else "running"
                    finished = moment + dt.timedelta(seconds=seconds) \
                        if status == "failed" else None
                else:
                    step_status, finished = "pending", None
                ran = step_status != "pending"
                step_rows.append({
                    "run_id": run_id, "position": position, "name": name, "provider": provider,
                    "action": "ensure", "status": step_status, "attempts": 1 if ran else 0,
                    "started_at": moment if ran else None, "finished_at": finished,
                    "error": "quota exceeded" if step_status == "failed" else None,
                    "message": None, "outputs": {}, "pending_since": None})
                if ran:
                    attempt_rows.append({
                        "run_id": run_id, "step": name, "number": 1, "execution": 0,
                        "started_at": moment, "finished_at": finished,
                        "outcome": step_status, "error": "quota exceeded"
                        if step_status == "failed" else None, "message": None,
                        "resolved": {"name": name}})
                    moment = finished or moment
            run_rows.append({
                "id": run_id, "tenant_id": tenant_ids[tenant],
                "kind": "offboard" if n % 25 == 0 else "onboard", "status": status,
                "options": {}, "requested_by": "ops@contoso.test",
                "workflow_id": f"tenantops/tenant-{tenant:05d}/onboard/{run_id}",
                "created_at": created, "started_at": created + dt.timedelta(seconds=1),
                "finished_at": None if active else moment,
                "error": "create_database failed: quota exceeded" if status == "failed"
                else None, "failed_step": plan[stop_at][0] if status == "failed" else None,
                "retries": 0, "segment": 0})
            event_rows.append({
                "id": uuid.uuid4().hex, "type": "com.tenantops.run.requested",
                "subject": f"tenants/tenant-{tenant:05d}", "tenant_slug": f"tenant-{tenant:05d}",
                "run_id": run_id, "actor": "ops@contoso.test", "request_id": None,
                "time": created, "data": {"kind": "onboard"}})
            if status == "failed":
                failed_run = run_id
            if len(run_rows) >= CHUNK:
                flush()
        flush()
    return failed_run


def median_ms(client: TestClient, path: str, requests: int) -> float:
    for _ in range(3):
        first = client.get(path)
        if first.status_code != 200:
            raise SystemExit(f"{path} answered {first.status_code}: {first.text[:500]}")
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(path)
        times.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise SystemExit(f"{path} answered {response.status_code}")
    return statistics.median(times) * 1000


@contextmanager
def catalog_url(postgres: bool) -> Iterator[str | None]:
    """A throwaway PostgreSQL database's URL, or None (SQLite in the data folder)."""
    if not postgres:
        yield None
        return
    server = os.environ.get("TENANTOPS_TEST_POSTGRES_URL")
    if not server:
        raise SystemExit("set TENANTOPS_TEST_POSTGRES_URL (scripts/services/postgres.sh)")
    admin = create_engine(make_url(server).set(drivername="postgresql+psycopg"),
                          isolation_level="AUTOCOMMIT")
    name = f"bench_dashboard_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def measure(tenants: int, runs: int, steps: int, requests: int, root: Path,
            postgres: bool) -> dict[str, float]:
    with catalog_url(postgres) as url:
        return measure_on(tenants, runs, steps, requests, root, url)


def measure_on(tenants: int, runs: int, steps: int, requests: int, root: Path,
               url: str | None) -> dict[str, float]:
    settings = Settings(
        data_dir=root / f"data-{runs}", log_level="WARNING",
        catalog={"url": url},
        auth={"authority": "https://login.microsoftonline.com",
              "tenant_id": TENANT_ID, "client_id": API_CLIENT_ID,
              "trust_easy_auth_principal": True,
              # No App Service here: the bench sends the header itself.
              "trust_easy_auth_principal_outside_app_service": True},
        dashboard={"session_secret": "bench-" + "0123456789" * 4})
    engine = Engine(settings)
    engine.catalog.migrate()
    started = time.perf_counter()
    failed = seed(engine, tenants, runs, steps)
    if url is not None:
        # What autovacuum does soon after a bulk load; the planner needs the tables' sizes.
        with engine.catalog.engine.begin() as connection:
            connection.execute(text("ANALYZE"))
    print(f"  seeded {tenants:,} tenants and {runs:,} runs in "
          f"{time.perf_counter() - started:.1f} s", flush=True)
    try:
        app = create_app(settings, engine=engine)
        with TestClient(app, base_url="https://bench.local",
                        headers={"X-MS-CLIENT-PRINCIPAL": principal_header()}) as client:
            dashboard: Dashboard = app.state.dashboard
            started = time.perf_counter()
            compute_trends(engine.catalog, dt.datetime.now(dt.timezone.utc))
            trends_ms = (time.perf_counter() - started) * 1000
            dashboard.trends.refresh()
            started = time.perf_counter()
            for _ in range(requests):
                engine.catalog.run_reports.active()
            active_ms = (time.perf_counter() - started) * 1000 / requests
            slug = f"tenant-{(tenants // 2):05d}"
            figures = {
                "overview": median_ms(client, "/", requests),
                "runs": median_ms(client, "/runs", requests),
                "runs, failed": median_ms(client, "/runs?status=failed", requests),
                "runs, by step": median_ms(client, "/runs?step=create_database", requests),
                "runs, by tenant": median_ms(client, "/runs?tenant=nant-0004", requests),
                "runs, last page": median_ms(
                    client, f"/runs?page={-(-runs // settings.dashboard.page_size)}", requests),
                "a run": median_ms(client, f"/runs/{failed}", requests),
                "tenants": median_ms(client, "/tenants", requests),
                "tenants, search": median_ms(client, "/tenants?q=tenant-0004", requests),
                "a tenant": median_ms(client, f"/tenants/{slug}", requests),
                "events": median_ms(client, "/events", requests),
                "trends (off request)": trends_ms,
                "change check (tick)": active_ms,
            }
            return figures
    finally:
        engine.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=6, choices=range(1, len(STEPS) + 1))
    parser.add_argument("--postgres", action="store_true",
                        help="catalogs on TENANTOPS_TEST_POSTGRES_URL instead of SQLite")
    args = parser.parse_args()
    large_tenants = max(100, args.runs // 10)
    with tempfile.TemporaryDirectory(prefix="tenantops-bench-dashboard-") as tmp:
        print("baseline", flush=True)
        small = measure(100, 1000, args.steps, args.requests, Path(tmp), args.postgres)
        print("large", flush=True)
        large = measure(large_tenants, args.runs, args.steps, args.requests, Path(tmp),
                        args.postgres)
    where = "PostgreSQL" if args.postgres else "SQLite"
    print(f"\ndashboard server time on {where}, median of {args.requests} requests (in process)")
    head = f"{large_tenants:,} / {args.runs:,}"
    print(f"{'tenants / runs':24}{'100 / 1,000':>14}{head:>20}{'ratio':>8}")
    for name in small:
        print(f"{name:24}{small[name]:>11.2f} ms{large[name]:>17.2f} ms"
              f"{large[name] / small[name]:>8.2f}")
    pages = {k: v for k, v in large.items() if "(" not in k}
    slowest = max(pages, key=lambda k: pages[k])
    verdict = "meets" if pages[slowest] <= GOAL_MS else "MISSES"
    print(f"slowest page at scale: {slowest}, {pages[slowest]:.1f} ms: {verdict} the goal of "
          f"at most {GOAL_MS:.0f} ms")
    for search, plain in (("tenants, search", "tenants"), ("runs, by tenant", "runs")):
        ratio = large[search] / large[plain]
        verdict = "meets" if ratio <= GOAL_SEARCH_RATIO else "MISSES"
        print(f"{search} / {plain} at scale: {ratio:.2f}: {verdict} the goal of at most "
              f"{GOAL_SEARCH_RATIO:.0f}")


if __name__ == "__main__":
    main()
