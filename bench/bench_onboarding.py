"""Onboardings per minute with the embedded providers, and the engine's overhead: the time a
run takes divided by the time spent inside its providers.

Three measurements in one run:

- *load*: ``--tenants`` onboardings requested at once, ``--concurrency`` executing together
  (throughput, and the overhead ratio while runs compete for the cores);
- *one at a time*: ``--sequential`` onboardings with one run executing at a time (the
  overhead ratio without contention);
- *baseline*: the plan's provider calls made directly, no engine, catalog or workflow.

What the engine adds per step: two catalog transactions (step running, step finished) and a
DBOS checkpoint, plus queue polling and the durable sleeps of pending steps.

Run: .venv/bin/python bench/bench_onboarding.py [--tenants 500] [--concurrency 8]
Goals (issue 4): 500 tenants in under 2 minutes on 2 cores; overhead ratio at most 1.5.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from tenantops.config import Settings
from tenantops.provisioning import Engine, StepInputs, TenantSpec, current_step, onboarding_plan
from tenantops.provisioning.providers.base import Outcome, Pending, ProviderCall

GOAL_SECONDS_FOR_500 = 120.0
GOAL_OVERHEAD = 1.5


class ProviderClock:
    """Middleware adding up the time spent inside provider calls, per run."""

    def __init__(self) -> None:
        self.per_run: dict[str, float] = defaultdict(float)
        self._lock = threading.Lock()

    def __call__(self, call: ProviderCall, proceed: Callable[[], Outcome]) -> Outcome:
        started = time.perf_counter()
        try:
            return proceed()
        finally:
            elapsed = time.perf_counter() - started
            step = current_step()
            with self._lock:
                self.per_run[step.run_id if step else ""] += elapsed


def settings_for(data_dir: Path, concurrency: int) -> Settings:
    return Settings(
        data_dir=data_dir, log_level="WARNING",
        engine={"worker_concurrency": concurrency, "queue_polling_seconds": 0.05},
        providers={"dns": {"port": 0, "propagation_poll_seconds": 0.05},
                   "webhost": {"port": 0, "app_port": 0}},
    )


def spec(i: int, prefix: str) -> TenantSpec:
    slug = f"{prefix}{i:04d}"
    return TenantSpec(slug=slug, display_name=f"Tenant {i}", custom_domain=f"app.{slug}.test",
                      admin_email=f"admin@{slug}.test")


def baseline(engine: Engine, count: int) -> float:
    """Seconds per tenant for the plan's provider calls made directly (no engine)."""
    engine.catalog.migrate()
    started = time.perf_counter()
    for i in range(count):
        tenant = spec(i, "base")
        engine.catalog.open_onboarding(tenant, requested_by="bench", steps=[])
        inputs = StepInputs(tenant, engine.providers, engine.settings)
        outputs: dict[str, dict[str, object]] = {}
        for step in onboarding_plan().steps:
            inputs = StepInputs(tenant, engine.providers, engine.settings, outputs)
            provider = engine.providers.of_kind(step.kind)
            outcome: Outcome = Pending("", 0)
            while isinstance(outcome, Pending):
                outcome = provider.ensure(step.build(inputs))
            outputs[step.name] = dict(outcome.outputs)
    return (time.perf_counter() - started) / count


def onboard_all(folder: Path, count: int, concurrency: int, prefix: str
                ) -> tuple[float, float, float, int]:
    """Onboard ``count`` tenants; (wall seconds, summed run seconds, summed provider
    seconds, failures)."""
    clock = ProviderClock()
    engine = Engine(settings_for(folder, concurrency), middleware=[clock])
    engine.start()
    try:
        started = time.perf_counter()
        runs = [engine.onboard(spec(i, prefix), requested_by="bench").id for i in range(count)]
        finished = [engine.wait(run_id, timeout=1800, poll=0.2) for run_id in runs]
        wall = time.perf_counter() - started
    finally:
        engine.stop()
    run_seconds = sum(
        (run.finished_at - run.started_at).total_seconds()
        for run in finished if run.finished_at and run.started_at
    )
    provider_seconds = sum(clock.per_run[run.id] for run in finished)
    failed = sum(1 for run in finished if run.status != "succeeded")
    return wall, run_seconds, provider_seconds, failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tenants", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=8, help="runs at once")
    parser.add_argument("--sequential", type=int, default=50,
                        help="tenants onboarded one at a time, for the uncontended overhead")
    parser.add_argument("--baseline", type=int, default=50, help="tenants in the baseline")
    args = parser.parse_args()
    steps = len(onboarding_plan().steps)

    with tempfile.TemporaryDirectory() as tmp:
        wall, run_s, provider_s, failed = onboard_all(
            Path(tmp) / "load", args.tenants, args.concurrency, "t")
        _, seq_run_s, seq_provider_s, seq_failed = onboard_all(
            Path(tmp) / "sequential", args.sequential, 1, "s")
        direct = Engine(settings_for(Path(tmp) / "baseline", 1))
        services = direct.providers.services()
        for service in services:
            service.start()
        try:
            per_tenant_direct = baseline(direct, args.baseline)
        finally:
            for service in services:
                service.stop()
            direct.catalog.close()

    per_minute = args.tenants / wall * 60
    overhead_load = run_s / provider_s
    overhead_sequential = seq_run_s / seq_provider_s
    print(f"machine: {os.cpu_count()} cores; {steps} steps per onboarding; SQLite catalog "
          "and engine; embedded providers")
    print(f"load: {args.tenants} tenants, {args.concurrency} runs at once: all finished in "
          f"{wall:.1f} s = {per_minute:.0f} tenants/minute ({failed} failed)")
    print(f"  per run {run_s / args.tenants * 1000:.0f} ms, of which "
          f"{provider_s / args.tenants * 1000:.0f} ms inside providers: overhead ratio "
          f"{overhead_load:.2f} (runs share {os.cpu_count()} cores and the GIL)")
    print(f"  wall time / summed provider time: {wall / provider_s:.2f}")
    print(f"one at a time: {args.sequential} tenants ({seq_failed} failed): per run "
          f"{seq_run_s / args.sequential * 1000:.0f} ms, of which "
          f"{seq_provider_s / args.sequential * 1000:.0f} ms inside providers: overhead ratio "
          f"{overhead_sequential:.2f}")
    print(f"baseline: the same provider calls made directly, no engine: "
          f"{per_tenant_direct * 1000:.0f} ms per tenant")
    scaled = wall * 500 / args.tenants
    print(f"goals: 500 tenants in < {GOAL_SECONDS_FOR_500:.0f} s: "
          f"{'met' if scaled < GOAL_SECONDS_FOR_500 else 'NOT met'} ({scaled:.0f} s); "
          f"overhead ratio <= {GOAL_OVERHEAD}: "
          f"{'met' if overhead_sequential <= GOAL_OVERHEAD else 'NOT met'} "
          f"({overhead_sequential:.2f} one at a time, {overhead_load:.2f} under load)")


if __name__ == "__main__":
    main()
