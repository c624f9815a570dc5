"""What one more tenant costs as the fleet grows: the time to request one onboarding, and the
peak memory of a worker, with 100, 2,000 and 10,000 tenants in the catalog.

For each fleet size, in a fresh data folder:

1. the catalog gets ``N`` tenants, each onboarded by one run of 12 succeeded steps (inserted
   straight into the tables, as `bench_api.py` does);
2. *request*: a process that only requests (an API without a worker, ``Engine`` not started)
   times onboardings of new tenants, each ``Engine.onboard``: the catalog's checks and
   inserts, and the enqueue on DBOS's system database (``--requests`` in ``--rounds``
   rounds, every fleet once per round, so a change of the machine's load touches all);
3. *worker*: a fresh worker process (``Engine`` started: migrations, DBOS recovery, the
   reconciliation that enqueues every active run) executes those onboardings; its peak
   resident memory (``VmHWM``) is read when they have all succeeded.

The baseline is the 100-tenant fleet of the same run; the goals are ratios to it.
``--baseline-src PATH`` measures another checkout too (``git worktree add --detach
/tmp/tenantops-main main``, then ``--baseline-src /tmp/tenantops-main/src``), every process
with that checkout first on ``PYTHONPATH``.

Run: .venv/bin/python bench/bench_scale.py [--sizes 100,2000,10000] [--requests 30]
Goals (issue 19): request time and worker peak memory with 10,000 tenants at most 1.2 x
those with 100.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: bench.*
from bench.bench_api import seed

GOAL = 1.2


def settings_for(data_dir: Path) -> Any:
    from tenantops.config import Settings

    extra: dict[str, Any] = {}
    if "dev_mode" in Settings.model_fields:  # since custom domains: .test needs dev mode
        extra["dev_mode"] = True
    return Settings(
        data_dir=data_dir, log_level="WARNING", **extra,
        engine={"worker_concurrency": 4, "queue_polling_seconds": 0.05},
        providers={"dns": {"port": 0, "propagation_poll_seconds": 0.05},
                   "webhost": {"port": 0, "app_port": 0}},
    )


def spec(i: int) -> Any:
    from tenantops.provisioning import TenantSpec

    slug = f"new{i:04d}"
    return TenantSpec(slug=slug, display_name=f"New {i}", custom_domain=f"app.{slug}.test",
                      admin_email=f"admin@{slug}.test")


def prepare(data_dir: Path, tenants: int) -> None:
    """Child process: seed the fleet."""
    seed(data_dir, tenants)
    print("RESULT {}")


def request(data_dir: Path, first: int, count: int) -> None:
    """Child process: time ``count`` onboarding requests, of new tenants ``first``..."""
    from tenantops.provisioning import Engine

    engine = Engine(settings_for(data_dir))
    try:
        engine.onboard(spec(9000 + first), requested_by="bench")  # warm: client, statements
        times = []
        for i in range(first, first + count):
            started = time.perf_counter()
            engine.onboard(spec(i), requested_by="bench")
            times.append((time.perf_counter() - started) * 1000)
    finally:
        engine.stop()
    print("RESULT " + json.dumps({"request_ms": times}))


def work(data_dir: Path) -> None:
    """Child process: a worker that executes the requested onboardings; its peak memory."""
    from tenantops.provisioning import Engine

    engine = Engine(settings_for(data_dir))
    engine.start()
    try:
        runs = [r for r in engine.catalog.active_runs() if r.tenant_slug.startswith("new")]
        for run in runs:
            finished = engine.wait(run.id, timeout=600)
            if finished.status != "succeeded":
                raise SystemExit(f"run {run.id} of {run.tenant_slug} ended {finished.status}")
        status = Path("/proc/self/status").read_text()
        peak_kb = int(next(x for x in status.splitlines() if x.startswith("VmHWM:")).split()[1])
    finally:
        engine.stop()
    print("RESULT " + json.dumps({"peak_mb": peak_kb / 1024, "runs": len(runs)}))


def child(args: list[str], src: str | None) -> dict[str, Any]:
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    out = subprocess.run([sys.executable, __file__, *args], env=env, capture_output=True,
                         text=True)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{out.stderr[-3000:]}")
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
    result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
    return result


def measure(name: str, src: str | None, sizes: list[int], requests: int, rounds: int) -> None:
    """Seed every fleet, time the requests in interleaved rounds (each round every fleet
    once, in a rotating order), then run one worker per fleet."""
    per_round = max(1, requests // rounds)
    with tempfile.TemporaryDirectory() as tmp:
        folders = {size: Path(tmp) / str(size) for size in sizes}
        for size, folder in folders.items():
            child(["--prepare", str(folder), str(size)], src)
        times: dict[int, list[float]] = {size: [] for size in sizes}
        for round_ in range(rounds):
            for size in sizes[round_ % len(sizes):] + sizes[:round_ % len(sizes)]:
                times[size] += child(["--request", str(folders[size]),
                                      str(round_ * per_round), str(per_round)],
                                     src)["request_ms"]
        peaks = {size: child(["--work", str(folders[size])], src)["peak_mb"] for size in sizes}
    print(f"\n{name}: {per_round * rounds} onboarding requests per fleet size in {rounds} "
          "interleaved rounds")
    print(f"{'tenants':>8} {'request ms (median)':>20} {'x base':>7} {'worker peak MB':>15} "
          f"{'x base':>7}")
    base_ms, base_mb = statistics.median(times[sizes[0]]), peaks[sizes[0]]
    for size in sizes:
        ms = statistics.median(times[size])
        print(f"{size:8} {ms:20.2f} {ms / base_ms:7.2f} {peaks[size]:15.1f} "
              f"{peaks[size] / base_mb:7.2f}")
    ms_ratio = statistics.median(times[sizes[-1]]) / base_ms
    mb_ratio = peaks[sizes[-1]] / base_mb
    for what, ratio in (("request time", ms_ratio), ("worker peak memory", mb_ratio)):
        verdict = "meets" if ratio <= GOAL else "misses"
        print(f"{what}: {sizes[-1]} tenants = {ratio:.2f} x {sizes[0]} tenants, {verdict} the "
              f"goal of at most {GOAL}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,2000,10000",
                        help="fleet sizes, the first is the baseline")
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--baseline-src", help="the src folder of another tenantops checkout")
    parser.add_argument("--prepare", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--request", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--work", nargs=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prepare:
        prepare(Path(args.prepare[0]), int(args.prepare[1]))
    elif args.request:
        request(Path(args.request[0]), int(args.request[1]), int(args.request[2]))
    elif args.work:
        work(Path(args.work[0]))
    else:
        sizes = [int(x) for x in args.sizes.split(",")]
        if args.baseline_src:
            measure(f"baseline ({args.baseline_src})", args.baseline_src, sizes, args.requests,
                    args.rounds)
        measure("this checkout", None, sizes, args.requests, args.rounds)


if __name__ == "__main__":
    main()
