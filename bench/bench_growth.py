"""Growth on paper, from measurement: the catalog's and the DBOS system database's size per
tenant and per run, and the rows written per step, on PostgreSQL.

Onboards ``--tenants`` tenants, then offboards ``--offboard`` of them (a second run each),
with the embedded providers; reads each table's size (``pg_total_relation_size``, indexes and
TOAST included) and the rows each table inserted, updated and deleted
(``pg_stat_user_tables``) before and after. The baseline is the empty, migrated databases.
Needs ``TENANTOPS_TEST_POSTGRES_URL`` (fresh databases are created and dropped).

Run: .venv/bin/python -m bench.bench_growth [--tenants 200] [--offboard 50]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.bench_workers import databases
from tenantops.config import Settings
from tenantops.provisioning import Engine, TenantSpec, onboarding_plan

_SIZES = text("""
    SELECT c.relname, pg_total_relation_size(c.oid), coalesce(s.n_tup_ins, 0),
           coalesce(s.n_tup_upd, 0), coalesce(s.n_tup_del, 0), coalesce(s.n_live_tup, 0)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
    WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
""")

Table = dict[str, tuple[int, int, int, int, int]]


def tables(url: str) -> Table:
    engine = create_engine(make_url(url).set(drivername="postgresql+psycopg"))
    try:
        with engine.connect() as connection:
            return {row[0]: tuple(int(v) for v in row[1:])  # type: ignore[misc]
                    for row in connection.execute(_SIZES)}
    finally:
        engine.dispose()


def spec(i: int) -> TenantSpec:
    slug = f"g{i:05d}"
    return TenantSpec(slug=slug, display_name=f"Tenant {i}", custom_domain=f"app.{slug}.test",
                      admin_email=f"admin@{slug}.test")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tenants", type=int, default=200)
    parser.add_argument("--offboard", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, databases() as (catalog, system):
        settings = Settings(
            data_dir=Path(tmp), log_level="WARNING", dev_mode=True,
            catalog={"url": catalog},
            engine={"system_database_url": system, "worker_concurrency": 8,
                    "queue_polling_seconds": 0.05},
            providers={"dns": {"port": 0, "propagation_poll_seconds": 0.05},
                       "webhost": {"port": 0, "app_port": 0}})
        engine = Engine(settings)
        engine.start()
        try:
            time.sleep(2)  # statistics are flushed at most once a second per backend
            before = {"catalog": tables(catalog), "system": tables(system)}
            runs = [engine.onboard(spec(i), requested_by="bench").id
                    for i in range(args.tenants)]
            for run in runs:
                engine.wait(run, timeout=1800, poll=0.2)
            off = [engine.offboard(spec(i).slug, requested_by="bench").id
                   for i in range(args.offboard)]
            for run in off:
                engine.wait(run, timeout=1800, poll=0.2)
            steps = sum(len(engine.get_run(r).steps) for r in runs + off)
        finally:
            engine.stop()
        time.sleep(2)
        after = {"catalog": tables(catalog), "system": tables(system)}
    run_count = args.tenants + args.offboard
    print(f"{args.tenants} tenants onboarded, {args.offboard} of them offboarded: {run_count} "
          f"runs, {steps} steps ({len(onboarding_plan().steps)} per onboarding); PostgreSQL")
    for database in ("catalog", "system"):
        grown = sum(after[database][t][0] - before[database].get(t, (0,) * 5)[0]
                    for t in after[database])
        written = sum(sum(after[database][t][1:4]) - sum(before[database].get(t, (0,) * 5)[1:4])
                      for t in after[database])
        print(f"{database}: {grown / 1024:.0f} KiB more ({grown / run_count / 1024:.1f} KiB per "
              f"run, {grown / args.tenants / 1024:.1f} KiB per tenant); rows written "
              f"(inserted + updated + deleted) {written / steps:.2f} per step")
        for table, (size, ins, upd, dele, live) in sorted(
                after[database].items(), key=lambda item: -item[1][0]):
            b = before[database].get(table, (0, 0, 0, 0, 0))
            if size - b[0] or ins - b[1] or upd - b[2] or dele - b[3]:
                print(f"  {table}: {(size - b[0]) / 1024:.0f} KiB, {live} rows; per step "
                      f"{(ins - b[1]) / steps:.2f} inserted, {(upd - b[2]) / steps:.2f} "
                      f"updated, {(dele - b[3]) / steps:.2f} deleted")


if __name__ == "__main__":
    main()
