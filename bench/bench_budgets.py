"""Onboarding many tenants against a rate budget: the budgeted provider's calls go at the
budget's rate, and its server, which answers 429 above its own limit, never has to.

Every organization call (two per onboarding) is a request to a real local HTTP server that
counts requests per one-second window and answers 429 above ``--server-limit``
(`tests.provisioning.rate_limited`). The engine has ``engine.budgets.organization`` at
``--budget`` calls per second. Printed: the calls' rate from the first to the last (the
figure) against the budget (the baseline), their ratio (goal: close to 1, never above), the
429s (goal: 0), the busiest second; then the control, the same server and a share of the
tenants with no budget, which meets 429s.

Run: .venv/bin/python -m bench.bench_budgets [--tenants 1000] [--budget 20]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from tests.provisioning.rate_limited import RateLimitedServer, ServerCalls

from tenantops.config import Settings
from tenantops.provisioning import Engine, TenantSpec


def spec(i: int, prefix: str) -> TenantSpec:
    slug = f"{prefix}{i:04d}"
    return TenantSpec(slug=slug, display_name=f"Tenant {i}", custom_domain=f"app.{slug}.test",
                      admin_email=f"admin@{slug}.test")


def onboard(folder: Path, tenants: int, budget: float | None, server_limit: int,
            concurrency: int) -> tuple[RateLimitedServer, float, int, int]:
    """(the server, wall seconds, failed runs, calls reserved) for ``tenants`` onboardings."""
    budgets = {} if budget is None else {"organization": {
        "providers": ["organization"], "calls": int(budget), "per_seconds": 1.0}}
    settings = Settings(
        data_dir=folder, log_level="WARNING", dev_mode=True,
        engine={"worker_concurrency": concurrency, "queue_polling_seconds": 0.05,
                "budgets": budgets, "retry_initial_seconds": 1.0},
        providers={"dns": {"port": 0, "propagation_poll_seconds": 0.05},
                   "webhost": {"port": 0, "app_port": 0}})
    with RateLimitedServer(server_limit) as server:
        engine = Engine(settings, middleware=[ServerCalls(server.url, {"organization"})])
        engine.start()
        try:
            started = time.perf_counter()
            runs = [engine.onboard(spec(i, "b"), requested_by="bench").id
                    for i in range(tenants)]
            finished = [engine.wait(run, timeout=7200, poll=0.5) for run in runs]
            wall = time.perf_counter() - started
            reserved = sum(state.reserved for _, _, state in engine.budgets())
        finally:
            engine.stop()
    return server, wall, sum(run.status != "succeeded" for run in finished), reserved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--budget", type=float, default=20.0, help="calls per second")
    parser.add_argument("--server-limit", type=int, default=25,
                        help="requests per second the server answers before 429")
    parser.add_argument("--concurrency", type=int, default=16, help="worker_concurrency")
    parser.add_argument("--control-tenants", type=int, default=100,
                        help="tenants onboarded with no budget, the control")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server, wall, failed, reserved = onboard(Path(tmp) / "budget", args.tenants,
                                                 args.budget, args.server_limit,
                                                 args.concurrency)
        times = sorted(s.at for s in server.seen)
        span = times[-1] - times[0]
        rate = (len(times) - 1) / span if span > 0 else float("inf")
        print(f"budget: {args.tenants} tenants, organization calls budgeted at "
              f"{args.budget:g}/s, server limit {args.server_limit}/s, worker_concurrency "
              f"{args.concurrency}: finished in {wall:.0f} s ({failed} failed)")
        print(f"  {len(times)} calls ({reserved} reserved) in {span:.1f} s from first to last: "
              f"{rate:.2f}/s = {rate / args.budget:.3f} x the budget (goal: close to 1, at "
              f"most 1); 429s: {server.refused()} (goal 0); busiest second "
              f"{server.busiest_window()} calls")
        control, c_wall, c_failed, _ = onboard(Path(tmp) / "control", args.control_tenants,
                                               None, args.server_limit, args.concurrency)
        print(f"control, no budget: {args.control_tenants} tenants in {c_wall:.0f} s "
              f"({c_failed} failed): {len(control.seen)} calls, 429s: {control.refused()}, "
              f"busiest second {control.busiest_window()} calls")


if __name__ == "__main__":
    main()
