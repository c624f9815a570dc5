"""Workers add up: tenants per minute with 1, 2 and 4 worker processes sharing one PostgreSQL
catalog and DBOS system database, every provider call ``--latency`` ms slow (as a cloud
API's), and the same runs finishing when one of the workers is killed mid-run.

Each setting onboards ``--rounds`` x workers x ``--concurrency`` tenants (the same number of
rounds per worker slot, so the ramp and the tail weigh alike); the baseline is one worker in
the same run, and each ratio is against it. Needs ``TENANTOPS_TEST_POSTGRES_URL`` (a server
where this user may create databases; each setting gets fresh ones, dropped after).

Run: .venv/bin/python bench/bench_workers.py [--latency 500] [--concurrency 8] [--rounds 4]
Goals (issue 19): 2 workers >= 1.8 x one worker's tenants/min, 4 workers >= 3.2 x; a killed
worker's runs finished by the others.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tenantops.config import load_settings
from tenantops.provisioning import Engine, TenantSpec
from tenantops.provisioning.providers.base import Outcome, ProviderCall

GOALS = {2: 1.8, 4: 3.2}
CONFIG = """\
data_dir = "{data}"
log_level = "WARNING"
dev_mode = true

[engine]
system_database_url = "{system}"
worker_concurrency = {concurrency}
queue_polling_seconds = 0.2
worker_timeout_seconds = 10

[catalog]
url = "{catalog}"

[providers.dns]
port = 0
propagation_poll_seconds = 0.05

[providers.webhost]
port = 0
app_port = 0
"""


class Latency:
    """Middleware: every provider call ``seconds`` slower."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __call__(self, call: ProviderCall, proceed: Callable[[], Outcome]) -> Outcome:
        time.sleep(self.seconds)
        return proceed()


def serve(config: Path, ready: Path, latency: float) -> None:
    """A worker process of this bench (``--serve``)."""
    from tenantops.provisioning.worker import serve as serve_worker

    serve_worker(load_settings(config), middleware=[Latency(latency)], ready_file=ready)


@contextmanager
def databases() -> Iterator[tuple[str, str]]:
    server = os.environ.get("TENANTOPS_TEST_POSTGRES_URL")
    if not server:
        raise SystemExit("set TENANTOPS_TEST_POSTGRES_URL (scripts/services/postgres.sh)")
    admin = create_engine(make_url(server).set(drivername="postgresql+psycopg"),
                          isolation_level="AUTOCOMMIT")
    names = [f"bench_workers_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    try:
        with admin.connect() as connection:
            for name in names:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield tuple(make_url(server).set(database=name).render_as_string(  # type: ignore[misc]
            hide_password=False) for name in names)
    finally:
        with admin.connect() as connection:
            for name in names:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def spec(i: int, prefix: str) -> TenantSpec:
    slug = f"{prefix}{i:04d}"
    return TenantSpec(slug=slug, display_name=f"Tenant {i}", custom_domain=f"app.{slug}.test",
                      admin_email=f"admin@{slug}.test")


def measure(workers: int, concurrency: int, rounds: int, latency: float,
            kill_one: bool) -> tuple[float, int, int]:
    """(wall seconds, tenants, failed) for ``workers`` processes; with ``kill_one``, the
    first worker is killed (SIGKILL) once a quarter of the runs have finished."""
    tenants = rounds * workers * concurrency
    with tempfile.TemporaryDirectory() as tmp, databases() as (catalog, system):
        folder = Path(tmp)
        config = folder / "tenantops.toml"
        config.write_text(CONFIG.format(data=folder / "data", system=system, catalog=catalog,
                                        concurrency=concurrency))
        requester = Engine(load_settings(config))
        requester.catalog.migrate()
        processes = []
        try:
            for n in range(workers):
                ready = folder / f"ready-{n}"
                processes.append(subprocess.Popen(
                    [sys.executable, __file__, "--serve", str(config), str(ready),
                     str(latency)], stdout=subprocess.DEVNULL,
                    stderr=open(folder / f"worker-{n}.log", "ab")))  # noqa: SIM115
                while not ready.exists():
                    if processes[-1].poll() is not None:
                        raise SystemExit((folder / f"worker-{n}.log").read_text()[-2000:])
                    time.sleep(0.05)
            started = time.perf_counter()
            runs = [requester.onboard(spec(i, "w"), requested_by="bench").id
                    for i in range(tenants)]
            killed = not kill_one
            while True:
                finished = [r for r in runs if requester.get_run(r).finished]
                if not killed and len(finished) >= tenants // 4:
                    processes[0].send_signal(signal.SIGKILL)
                    processes[0].wait()
                    killed = True
                if len(finished) == tenants:
                    break
                if time.perf_counter() - started > 1800:
                    raise SystemExit(f"{tenants - len(finished)} runs unfinished after 30 min")
                time.sleep(0.5)
            wall = time.perf_counter() - started
            failed = sum(requester.get_run(r).status != "succeeded" for r in runs)
        finally:
            for process in processes:
                if process.poll() is None:
                    process.terminate()
                    process.wait(60)
            requester.stop()
    return wall, tenants, failed


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(Path(sys.argv[2]), Path(sys.argv[3]), float(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--latency", type=float, default=500.0, metavar="MS")
    parser.add_argument("--concurrency", type=int, default=8, help="worker_concurrency")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    latency = args.latency / 1000
    rates: dict[int, float] = {}
    for workers in (1, 2, 4):
        wall, tenants, failed = measure(workers, args.concurrency, args.rounds, latency, False)
        rates[workers] = tenants / wall * 60
        ratio = rates[workers] / rates[1]
        goal = GOALS.get(workers)
        verdict = (f"; goal >= {goal}: {'met' if ratio >= goal else 'NOT met'}" if goal else
                   " (the baseline)")
        print(f"{workers} worker(s), worker_concurrency {args.concurrency}, provider calls "
              f"{args.latency:g} ms: {tenants} tenants in {wall:.1f} s = "
              f"{rates[workers]:.0f}/min ({failed} failed); {ratio:.2f} x one worker{verdict}",
              flush=True)
    wall, tenants, failed = measure(4, args.concurrency, args.rounds, latency, True)
    print(f"4 workers, one killed (SIGKILL) after a quarter of the runs: {tenants} tenants in "
          f"{wall:.1f} s = {tenants / wall * 60:.0f}/min, {failed} failed "
          f"({'every run finished' if failed == 0 else 'NOT every run succeeded'})")


if __name__ == "__main__":
    main()
