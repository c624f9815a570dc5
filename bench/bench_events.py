"""What lifecycle events cost, and how fast the dispatcher delivers them.

Two measurements in one run, on SQLite in a temporary folder:

- *catalog*: ``--runs`` onboardings opened, started and finished in the catalog (the three
  transactions that write run.requested, run.started and tenant.onboarded), alternating in
  rounds with the same transactions with the event writes replaced by nothing (the baseline);
  prints the median time per run of each and their ratio;
- *delivery*: the events of those runs routed and delivered by one dispatcher
  (``--concurrency``) to a loopback receiver that verifies every signature; prints events per
  second, and the median time from an event's commit to its acceptance when events arrive one
  at a time (``--poll`` seconds between the dispatcher's looks).

Run: .venv/bin/python bench/bench_events.py [--runs 300] [--concurrency 8] [--poll 0.05]
"""

from __future__ import annotations

import argparse
import base64
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from standardwebhooks.webhooks import Webhook

import tenantops.catalog.events as catalog_events
from tenantops.catalog import Catalog
from tenantops.config import Settings
from tenantops.events import EventDispatcher
from tenantops.provisioning import TenantSpec

SECRET = "whsec_" + base64.b64encode(b"bench-events-secret-of-32-bytes!").decode()


def spec(slug: str) -> TenantSpec:
    return TenantSpec(slug=slug, display_name=slug, custom_domain=f"app.{slug}.test",
                      admin_email=f"admin@{slug}.test")


def one_run(catalog: Catalog, slug: str) -> None:
    run = catalog.open_onboarding(spec(slug), requested_by="bench", steps=[]).run
    with catalog.database.write() as c:  # what StepStore.started does for the first step
        c.exec_driver_sql("UPDATE runs SET status = 'running' WHERE id = ?", (run.id,))
        catalog_events.run_started(c, run.id)
    catalog.finish_run(run.id, "succeeded")


@contextmanager
def events_off() -> Iterator[None]:
    original = catalog_events._run_event
    catalog_events._run_event = lambda *args, **kwargs: ""
    try:
        yield
    finally:
        catalog_events._run_event = original


def measure_catalog(catalog: Catalog, runs: int) -> tuple[float, float]:
    timed: dict[bool, list[float]] = {True: [], False: []}
    for index in range(runs):
        for with_events in (True, False):
            slug = f"{'e' if with_events else 'b'}{index:05d}"
            start = time.perf_counter()
            if with_events:
                one_run(catalog, slug)
            else:
                with events_off():
                    one_run(catalog, slug)
            timed[with_events].append(time.perf_counter() - start)
    return statistics.median(timed[True]), statistics.median(timed[False])


@contextmanager
def receiver() -> Iterator[tuple[str, list[tuple[str, float]]]]:
    accepted: list[tuple[str, float]] = []
    lock = threading.Lock()
    verifier = Webhook(SECRET)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            verifier.verify(body, {k.lower(): v for k, v in self.headers.items()})
            with lock:
                accepted.append((self.headers["webhook-id"], time.monotonic()))
            self.send_response(204)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", accepted
    finally:
        server.shutdown()
        server.server_close()


def drained(catalog: Catalog) -> bool:
    counts = catalog.events.counts()
    return counts["pending"] == 0 and counts["unrouted"] == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--poll", type=float, default=0.05)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, receiver() as (url, accepted):
        catalog = Catalog(f"sqlite:///{Path(folder) / 'catalog.sqlite'}")
        catalog.migrate()
        with_events, baseline = measure_catalog(catalog, args.runs)
        print(f"catalog: {with_events * 1000:.2f} ms per run with events, "
              f"{baseline * 1000:.2f} ms without (ratio {with_events / baseline:.2f}; "
              f"3 events per run, median of {args.runs} alternating runs)")

        settings = Settings(events={
            "webhooks": [{"name": "bench", "url": url, "secret": SECRET}],
            "poll_seconds": args.poll, "concurrency": args.concurrency})
        dispatcher = EventDispatcher(settings, catalog, executor_id="bench")
        total = catalog.events.counts()["unrouted"]
        start = time.monotonic()
        while not drained(catalog):
            dispatcher.run_once()
        elapsed = time.monotonic() - start
        print(f"delivery: {total} events in {elapsed:.2f} s ({total / elapsed:.0f} events/s, "
              f"{args.concurrency} at once, tenants side by side)")

        dispatcher.start()
        latencies = []
        try:
            for index in range(20):
                before = len(accepted)
                committed = time.monotonic()
                run = catalog.open_onboarding(spec(f"l{index:03d}"), requested_by="bench",
                                              steps=[]).run
                while len(accepted) == before:
                    time.sleep(0.001)
                latencies.append(accepted[before][1] - committed)
                catalog.cancel_run(run.id)
                while not drained(catalog):
                    time.sleep(0.005)
        finally:
            dispatcher.stop()
        print(f"commit to acceptance: median {statistics.median(latencies) * 1000:.0f} ms "
              f"(poll {args.poll} s)")
        catalog.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
