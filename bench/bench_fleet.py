"""A fleet migration against a plain loop: tenants/s of ``tenantops fleet migrate`` (durable
child runs, canary, batches, the conductor) and of the same three-revision migration applied
in a plain loop with no durability (the provider's connection and `MigrationSource.upgrade`,
one tenant after the other), in the same run, on fresh tenant databases each.

1. *embedded*: ``--sqlite`` SQLite tenant databases (default 1,000) for each side;
2. *postgres*: ``--postgres`` databases (default 200) for each side on the server of
   ``TENANTOPS_TEST_POSTGRES_URL`` (made with their owner roles, dropped at the end), the
   fleet at ``--concurrency`` (default 8).

Tenants are inserted straight into the catalog (as `bench_api.py` does) with their databases
made directly, so only the migration is timed. The catalog and the DBOS system database are
on SQLite for the embedded side and on the same PostgreSQL server for the PostgreSQL side (a
deployment whose tenants are on PostgreSQL keeps its catalog there too: several workers share
it, and SQLite takes one writer at a time); ``--sqlite-catalog`` keeps them on SQLite there too.

Run: .venv/bin/python bench/bench_fleet.py [--sqlite 1000] [--postgres 200] [--concurrency 8]
Goals (issue 15): fleet / plain-loop time at most 1.3 on SQLite; on PostgreSQL with
concurrency 8, a fleet rate at least 3 x the plain loop's.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sqlite3
import sys
import tempfile
import time
import uuid
from contextlib import closing
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REVISIONS = {
    "0001_users.sql": "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL);",
    "0002_orders.sql": "CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER);",
    "0003_email_index.sql": "CREATE INDEX users_email ON users (email);",
}


POLLS = {"queue": 0.05, "fleet": 0.05}
"""The engine's queue poll and the conductor's; ``--default-polls`` keeps the settings'
defaults (0.2 s and 0.25 s) instead."""


def settings_for(data_dir: Path, migrations: Path, postgres: str | None,
                 concurrency: int, control: dict[str, str] | None = None) -> Any:
    from tenantops.config import Settings

    providers: dict[str, Any] = {"dns": {"port": 0}, "webhost": {"port": 0, "app_port": 0}}
    if postgres:
        providers["database"] = {"name": "postgres", "postgres": {
            "admin_url": postgres, "connection_limit": 5}}
    engine: dict[str, Any] = {"worker_concurrency": max(8, concurrency),
                              "queue_polling_seconds": POLLS["queue"]}
    catalog: dict[str, Any] = {}
    if control:
        engine["system_database_url"] = control["system"]
        catalog["url"] = control["catalog"]
    return Settings(
        data_dir=data_dir, log_level="WARNING", dev_mode=True, catalog=catalog,
        engine=engine,
        providers=providers, migrations={"folder": migrations, "on_onboarding": False},
        fleet={"poll_seconds": POLLS["fleet"], "canary": 1, "concurrency": concurrency,
               "max_failures": 0},
        certificates={"schedule": False})


def seed_catalog(settings: Any, slugs: list[str]) -> None:
    from sqlalchemy import insert

    from tenantops.catalog import Catalog
    from tenantops.catalog.models import TenantRow

    catalog = Catalog.from_settings(settings)
    catalog.migrate()
    now = dt.datetime.now(dt.timezone.utc)
    with catalog.engine.begin() as connection:
        connection.execute(insert(TenantRow), [{
            "id": uuid.uuid4().hex, "slug": slug, "display_name": slug,
            "custom_domain": f"app.{slug}.example.com", "plan": "standard",
            "admin_email": f"admin@{slug}.example.com", "tags": {}, "status": "active",
            "created_at": now, "updated_at": now, "registered_at": now,
            "database_name": f"tenant_{slug.replace('-', '_')}",
            "database_login": f"{slug.replace('-', '_')}_app", "dns_records": {}}
            for slug in slugs])
    catalog.close()


def make_sqlite(directory: Path, names: list[str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        with closing(sqlite3.connect(directory / f"{name}.sqlite")) as db:
            db.execute("CREATE TABLE tenantops_meta (key TEXT PRIMARY KEY, value TEXT)")
            db.commit()


def make_postgres(url: str, slugs: list[str]) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(url, autocommit=True) as admin:
        for slug in slugs:
            role, db = sql.Identifier(f"{slug}_app"), sql.Identifier(f"tenant_{slug}")
            admin.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(role))
            admin.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(role))
            admin.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(db, role))


def drop_postgres(url: str, slugs: list[str]) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(url, autocommit=True) as admin:
        for slug in slugs:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(f"tenant_{slug}")))
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(
                sql.Identifier(f"{slug}_app")))


def control_databases(url: str, tag: str) -> dict[str, str]:
    """A fresh catalog and DBOS system database on the server of ``url``."""
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    names = {"catalog": f"bench_catalog_{tag}", "system": f"bench_dbos_{tag}"}
    with psycopg.connect(url, autocommit=True) as admin:
        for name in names.values():
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base = make_url(url).set(drivername="postgresql+psycopg")
    return {key: base.set(database=name).render_as_string(hide_password=False)
            for key, name in names.items()}


def drop_control(url: str, control: dict[str, str]) -> None:
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    with psycopg.connect(url, autocommit=True) as admin:
        for database in control.values():
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(str(make_url(database).database))))


def plain_loop(engine: Any, slugs: list[str]) -> float:
    """The same migrations, one tenant after the other, no runs, no catalog."""
    from tenantops.provisioning.providers.database import DatabaseSchema
    from tenantops.provisioning.run_requests import migration_source

    source = migration_source(engine.settings)
    head = source.resolve(None)
    provider = engine.providers.database
    started = time.perf_counter()
    for slug in slugs:
        ident = slug.replace("-", "_")
        schema = DatabaseSchema(f"tenant_{ident}", f"{ident}_app", str(source.folder),
                                source.kind, head)
        with provider.schema_connection(schema) as connection:
            source.upgrade(connection, head)
    return time.perf_counter() - started


def fleet(engine: Any, slugs: list[str]) -> float:
    from tenantops.provisioning.fleet import FleetRequest, FleetRuns, Selection, wait_for_fleet

    runs = FleetRuns(engine)
    started = time.perf_counter()
    created = runs.create(FleetRequest("migrate", Selection(tenants=tuple(slugs))),
                          requested_by="bench")
    done = wait_for_fleet(runs, created.id, timeout=3600, poll=0.05)
    took = time.perf_counter() - started
    if done.status != "succeeded" or done.counts.succeeded != len(slugs):
        raise SystemExit(f"the fleet ended {done.status}: {done.counts.as_dict()} "
                         f"{done.stop_reason or ''}")
    return took


def measure(label: str, count: int, concurrency: int, postgres: str | None, *,
            control_on_postgres: bool = False) -> tuple[float, float]:
    from tenantops.provisioning import Engine

    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as folder:
        root = Path(folder)
        migrations = root / "migrations"
        migrations.mkdir()
        for name, body in REVISIONS.items():
            (migrations / name).write_text(body)
        tag = uuid.uuid4().hex[:6]
        loop_slugs = [f"bl{tag}{i:05d}" for i in range(count)]
        fleet_slugs = [f"bf{tag}{i:05d}" for i in range(count)]
        control = control_databases(postgres, tag) if postgres and control_on_postgres \
            else None
        settings = settings_for(root / "data", migrations, postgres, concurrency, control)
        if postgres:
            make_postgres(postgres, loop_slugs + fleet_slugs)
        else:
            make_sqlite(root / "data" / "databases",
                        [f"tenant_{s}" for s in loop_slugs + fleet_slugs])
        seed_catalog(settings, fleet_slugs)
        engine = Engine(settings)
        engine.start()
        try:
            loop_seconds = plain_loop(engine, loop_slugs)
            fleet_seconds = fleet(engine, fleet_slugs)
        finally:
            engine.stop()
            if postgres:
                drop_postgres(postgres, loop_slugs + fleet_slugs)
            if postgres and control:
                engine.catalog.close()
                drop_control(postgres, control)
    loop_rate, fleet_rate = count / loop_seconds, count / fleet_seconds
    print(f"{label}: {count} tenants x 3 revisions; plain loop {loop_rate:.1f} tenants/s "
          f"({loop_seconds:.1f} s); fleet (concurrency {concurrency}) {fleet_rate:.1f} "
          f"tenants/s ({fleet_seconds:.1f} s); time ratio fleet/loop "
          f"{fleet_seconds / loop_seconds:.2f}; rate ratio fleet/loop "
          f"{fleet_rate / loop_rate:.2f}", flush=True)
    return loop_seconds, fleet_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sqlite", type=int, default=1000)
    parser.add_argument("--postgres", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--default-polls", action="store_true",
                        help="the settings' default queue and conductor polls, not 0.05 s")
    parser.add_argument("--sqlite-catalog", action="store_true",
                        help="keep the catalog and DBOS on SQLite for the PostgreSQL side")
    args = parser.parse_args()
    if args.default_polls:
        from tenantops.config import EngineSettings, FleetSettings

        POLLS.update(queue=EngineSettings().queue_polling_seconds,
                     fleet=FleetSettings().poll_seconds)
    if args.sqlite:
        loop, fleet_time = measure("embedded (SQLite)", args.sqlite, args.concurrency, None)
        verdict = "meets" if fleet_time / loop <= 1.3 else "misses"
        print(f"  goal: time ratio <= 1.3: {verdict} it")
    url = os.environ.get("TENANTOPS_TEST_POSTGRES_URL")
    if args.postgres and url:
        where = "SQLite" if args.sqlite_catalog else "PostgreSQL"
        loop, fleet_time = measure(f"PostgreSQL (catalog and DBOS on {where})", args.postgres,
                                   args.concurrency, url,
                                   control_on_postgres=not args.sqlite_catalog)
        verdict = "meets" if loop / fleet_time >= 3 else "misses"
        print(f"  goal: rate ratio >= 3 at concurrency 8: {verdict} it")
    elif args.postgres:
        print("PostgreSQL: skipped, TENANTOPS_TEST_POSTGRES_URL is not set")


if __name__ == "__main__":
    main()
