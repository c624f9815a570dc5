"""A move of a tenant whose database holds about ``--megabytes`` (50) MB, between two real
PostgreSQL 15 servers: the one scripts/services/postgres.sh runs
(``TENANTOPS_TEST_POSTGRES_URL``) and a second cluster this script starts in a temporary
folder on a free port (as the tests do).

Printed: the database's size; the bare copy, ``pg_dump --format=custom --compress=0 |
pg_restore --single-transaction`` of the same database into an empty one on the other server
(the tools and flags the move uses), run once before and once after the move, in the same
process; then the move (`Engine.move`, grace period 0): its copy step, its write freeze (from
the start of ``freeze_writes`` to the end of ``open_target``: the tenant's login cannot sign
in meanwhile) and its total (every step of the run, the old copy's removal included); and
the ratio of the move's total to the mean bare copy.

Run with the test PostgreSQL up and TENANTOPS_TEST_POSTGRES_URL exported (the line
scripts/services/postgres.sh prints):
     .venv/bin/python bench/bench_move.py [--megabytes 50]
Goals (issue 14): freeze at most 5 s; total at most 1.5 x the bare copy.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.provisioning.faults import postgres_cluster

from tenantops.catalog import Run
from tenantops.config import Settings
from tenantops.provisioning import Engine, TenantSpec
from tenantops.provisioning.placement import database_of
from tenantops.provisioning.providers.database.pg_copy import find_tools
from tenantops.provisioning.providers.database.postgres import PostgresDatabases

ROW_BYTES = 280  # with the index and the tuple headers: about --megabytes MB in all


def fill(engine: Engine, slug: str, megabytes: int) -> None:
    """Rows of about ``ROW_BYTES`` bytes, written as the tenant's own login."""
    provider = engine.providers.database
    assert isinstance(provider, PostgresDatabases)
    rows = megabytes * 1024 * 1024 // ROW_BYTES
    with provider.connect(database_of(slug, engine.catalog.placement_of(slug))) as db:
        db.execute("CREATE TABLE events (id bigserial PRIMARY KEY, account int NOT NULL, "
                   "payload text NOT NULL)")
        db.execute("INSERT INTO events (account, payload) SELECT n %% 1000, "
                   "repeat(md5(n::text), 5) FROM generate_series(1, %s) n", (rows,))
        db.execute("CREATE INDEX ON events (account)")


def size_mb(url: str, database: str) -> float:
    with psycopg.connect(url, autocommit=True) as admin:
        row = admin.execute("SELECT pg_database_size(%s)", (database,)).fetchone()
    return int(row[0]) / 1e6 if row else 0.0


def bare_copy(source_url: str, database: str, target_url: str) -> float:
    """pg_dump | pg_restore into a fresh database on the target; seconds."""
    scratch = f"bench_bare_{secrets.token_hex(3)}"
    dump, restore = find_tools(None)
    with psycopg.connect(target_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(
            sql.Identifier(scratch)))
    started = time.monotonic()
    try:
        dumping = subprocess.Popen(
            [str(dump), "--format=custom", "--compress=0", "--no-acl", "--no-owner",
             f"--dbname={psycopg.conninfo.make_conninfo(source_url, dbname=database)}"],
            stdout=subprocess.PIPE)
        restoring = subprocess.run(
            [str(restore), "--no-acl", "--no-owner", "--exit-on-error",
             "--single-transaction",
             f"--dbname={psycopg.conninfo.make_conninfo(target_url, dbname=scratch)}"],
            stdin=dumping.stdout, check=True)
        if dumping.stdout is not None:
            dumping.stdout.close()
        if dumping.wait() or restoring.returncode:
            raise SystemExit("the bare copy failed")
        return time.monotonic() - started
    finally:
        with psycopg.connect(target_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(scratch)))


def span(run: Run, first: str, last: str) -> float:
    steps = {s.name: s for s in run.steps}
    start = min(a.started_at for a in steps[first].history)
    end = max(a.finished_at or a.started_at for a in steps[last].history)
    return (end - start).total_seconds()


def total(run: Run) -> float:
    attempts = [a for s in run.steps for a in s.history]
    end = max(a.finished_at or a.started_at for a in attempts)
    return (end - min(a.started_at for a in attempts)).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megabytes", type=int, default=50)
    args = parser.parse_args()
    main_url = os.environ.get("TENANTOPS_TEST_POSTGRES_URL")
    if not main_url:
        raise SystemExit("TENANTOPS_TEST_POSTGRES_URL is not set: start the test server with "
                         "'export \"$(scripts/services/postgres.sh)\"'")
    with postgres_cluster() as second, tempfile.TemporaryDirectory() as data:
        settings = Settings(
            data_dir=Path(data), dev_mode=True,
            engine={"queue_polling_seconds": 0.05},
            providers={"dns": {"port": 0, "propagation_poll_seconds": 0.05},
                       "webhost": {"port": 0, "app_port": 0},
                       "database": {"name": "postgres", "move_grace_seconds": 0, "servers": [
                           {"name": "main", "admin_url": main_url},
                           {"name": "second", "admin_url": second.url()}]}},
        )
        slug = f"bench-{secrets.token_hex(3)}"
        database = f"tenant_{slug.replace('-', '_')}"
        with Engine(settings) as engine:
            spec = TenantSpec(slug=slug, display_name="Bench", custom_domain=f"app.{slug}.test",
                              admin_email=f"admin@{slug}.test")
            onboarded = engine.wait(engine.onboard(spec, requested_by="bench").id, timeout=300)
            if onboarded.status != "succeeded":
                raise SystemExit(f"onboarding failed: {onboarded.error}")
            try:
                fill(engine, slug, args.megabytes)
                print(f"tenant database {database} on main: "
                      f"{size_mb(main_url, database):.1f} MB")
                before = bare_copy(main_url, database, second.url())
                print(f"bare pg_dump | pg_restore main -> second:  {before:6.2f} s")
                moved = engine.wait(engine.move(slug, server="second", grace_seconds=0,
                                                requested_by="bench").id, timeout=1800)
                if moved.status != "succeeded":
                    raise SystemExit(f"the move failed at {moved.failed_step}: {moved.error}")
                after = bare_copy(second.url(), database, main_url)
                print(f"bare pg_dump | pg_restore second -> main:  {after:6.2f} s")
                copy = span(moved, "copy_data", "copy_data")
                freeze = span(moved, "freeze_writes", "open_target")
                whole = total(moved)
                bare = (before + after) / 2
                print(f"move: copy step {copy:6.2f} s, write freeze {freeze:6.2f} s "
                      f"(goal <= 5 s), total {whole:6.2f} s")
                print(f"move total / bare copy = {whole / bare:4.2f} (goal <= 1.5); "
                      f"measured {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC")
            finally:
                engine.wait(engine.offboard(slug, requested_by="bench").id, timeout=300)


if __name__ == "__main__":
    main()
