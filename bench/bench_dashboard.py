"""Server time of the dashboard's tenants page with 100 and with 10,000 tenants, as a ratio.

The tenants are inserted straight into the catalog (one SQL statement per 1,000 rows); the
page is requested in process (Starlette's test client: no network, no browser), signed in
through App Service Authentication's principal header so no identity provider is needed.
Each figure is the median of ``--requests`` requests after a warm-up. Besides the default
page (newest 25), the last page and a search are timed, for information.

Run: .venv/bin/python bench/bench_dashboard.py [--requests 40]
Goal (issue 8): the 10,000-tenant page takes at most 2 times the 100-tenant page (pagination
keeps it flat).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import insert

from tenantops.api import create_app
from tenantops.catalog.models import TenantRow
from tenantops.config import Settings
from tenantops.provisioning import Engine

GOAL_RATIO = 2.0
TENANT_ID = "8d6f5c2a-1b3e-4f70-9a6c-2e4b7d9f0a15"
API_CLIENT_ID = "5f9d1b7c-2a4e-4c1d-9b3a-7e6f0a1c2d3e"
STATUSES = ("active", "active", "active", "provisioning", "failed", "offboarded")


def principal_header() -> str:
    claims = [("oid", str(uuid.uuid4())), ("tid", TENANT_ID), ("appid", API_CLIENT_ID),
              ("name", "Bench Reader"), ("roles", "Tenants.Read")]
    body = {"auth_typ": "aad", "claims": [{"typ": t, "val": v} for t, v in claims],
            "role_typ": "roles"}
    return base64.b64encode(json.dumps(body).encode()).decode()


def insert_tenants(engine: Engine, count: int) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    rows = []
    for i in range(count):
        created = now - dt.timedelta(minutes=count - i)
        rows.append({
            "id": uuid.uuid4().hex, "slug": f"tenant-{i:05d}", "display_name": f"Tenant {i}",
            "custom_domain": f"app.tenant-{i:05d}.example.com", "plan": "standard",
            "admin_email": f"admin@tenant-{i:05d}.example.com", "tags": {},
            "status": STATUSES[i % len(STATUSES)], "created_at": created,
            "updated_at": created, "dns_records": {},
        })
    with engine.catalog.engine.begin() as connection:
        for start in range(0, count, 1000):
            connection.execute(insert(TenantRow), rows[start:start + 1000])


def median_ms(client: TestClient, path: str, requests: int) -> float:
    for _ in range(5):
        assert client.get(path).status_code == 200
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(path)
        times.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text[:500]
    return statistics.median(times) * 1000


def measure(count: int, requests: int, root: Path) -> dict[str, float]:
    settings = Settings(
        data_dir=root / f"data-{count}", log_level="WARNING",
        auth={"authority": "https://login.microsoftonline.com",
              "tenant_id": TENANT_ID, "client_id": API_CLIENT_ID,
              "trust_easy_auth_principal": True},
        dashboard={"session_secret": "bench-" + "0123456789" * 4})
    engine = Engine(settings)
    engine.catalog.migrate()
    insert_tenants(engine, count)
    pages = -(-count // settings.dashboard.page_size)
    try:
        with TestClient(create_app(settings, engine=engine), base_url="https://bench.local",
                        headers={"X-MS-CLIENT-PRINCIPAL": principal_header()}) as client:
            return {
                "first page": median_ms(client, "/", requests),
                "last page": median_ms(client, f"/?page={pages}", requests),
                "search": median_ms(client, "/?q=tenant-0004&status=active", requests),
            }
    finally:
        engine.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tenantops-bench-dashboard-") as tmp:
        small = measure(100, args.requests, Path(tmp))
        large = measure(10_000, args.requests, Path(tmp))
    print(f"tenants page, median of {args.requests} requests (server time, in process)")
    print(f"{'':12}{'100 tenants':>14}{'10,000 tenants':>17}{'ratio':>8}")
    for name in small:
        print(f"{name:12}{small[name]:>11.2f} ms{large[name]:>14.2f} ms"
              f"{large[name] / small[name]:>8.2f}")
    ratio = large["first page"] / small["first page"]
    verdict = "meets" if ratio <= GOAL_RATIO else "MISSES"
    print(f"first-page ratio {ratio:.2f}: {verdict} the goal of at most {GOAL_RATIO:.0f}")


if __name__ == "__main__":
    main()
