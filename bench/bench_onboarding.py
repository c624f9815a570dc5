"""Onboardings per minute with the embedded providers, and the engine's overhead: the time a
run takes divided by the time spent inside its providers.

Four measurements in one run:

- *load*: ``--tenants`` onboardings requested at once, ``--concurrency`` executing together
  (throughput, and the overhead ratio while runs compete for the cores);
- *one at a time*: ``--sequential`` onboardings with one run executing at a time (the
  overhead ratio without contention);
- *DBOS alone*: the same provider calls, each one a DBOS step of a DBOS workflow, without
  tenantops' catalog recording (the floor for any engine with one DBOS step per provider
  action), alternating with the one-at-a-time runs in the same process;
- *baseline*: the plan's provider calls made directly, no engine, catalog or workflow.

What the engine adds per step: two catalog transactions (step running, step finished) and a
DBOS checkpoint (DBOS reads, then writes, the step's row), plus queue polling and the durable
sleeps of pending steps.

Run: .venv/bin/python bench/bench_onboarding.py [--tenants 500] [--concurrency 8] [--latency MS]
Goals (issue 4): 500 tenants in under 2 minutes on 2 cores; overhead ratio at most 1.5.

``--telemetry N`` measures only what tracing costs: N onboardings with telemetry on (spans
and metrics exported by OTLP/HTTP to a collector in this process) alternating with N with it
off, on one engine; goal (issue 16): at most 5 % slower.
"""

from __future__ import annotations

import argparse
import http.server
import os
import resource
import statistics
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dbos import DBOS, SetWorkflowID

from tenantops import telemetry
from tenantops.catalog import Run
from tenantops.config import Settings, TelemetrySettings
from tenantops.provisioning import Engine, StepInputs, TenantSpec, current_step, onboarding_plan
from tenantops.provisioning.engine import run_workflow
from tenantops.provisioning.plan import PlanStep, onboarding_options, plan_for
from tenantops.provisioning.providers.base import Outcome, Pending, ProviderCall

GOAL_SECONDS_FOR_500 = 120.0
GOAL_OVERHEAD = 1.5
GOAL_TELEMETRY = 1.05
GOAL_VS_DBOS = 1.1
GOAL_OWN_MS_PER_STEP = 0.5
WARM_UP = 5


class Latency:
    """Middleware making every provider call wait ``seconds`` more, like a network call to
    a cloud API would (``--latency``); counted as time inside providers."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __call__(self, call: ProviderCall, proceed: Callable[[], Outcome]) -> Outcome:
        time.sleep(self.seconds)
        return proceed()


class ProviderClock:
    """Middleware adding up the time spent inside provider calls, per run: wall time, and
    the CPU time of the calling thread."""

    def __init__(self) -> None:
        self.per_run: dict[str, float] = defaultdict(float)
        self.cpu_per_run: dict[str, float] = defaultdict(float)
        self._lock = threading.Lock()

    def __call__(self, call: ProviderCall, proceed: Callable[[], Outcome]) -> Outcome:
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            return proceed()
        finally:
            elapsed, used = time.perf_counter() - started, time.thread_time() - cpu
            step = current_step()
            with self._lock:
                self.per_run[step.run_id if step else ""] += elapsed
                self.cpu_per_run[step.run_id if step else ""] += used


def settings_for(data_dir: Path, concurrency: int) -> Settings:
    """The defaults, but the queue is polled every 50 ms when runs execute together (so a
    free slot is filled quickly); one at a time keeps the default 200 ms (the wait between
    runs is not part of a run's time, and a faster poll only takes CPU from the run)."""
    polling = 0.05 if concurrency > 1 else 0.2
    return Settings(
        data_dir=data_dir, log_level="WARNING", dev_mode=True,  # the tenants' domains are .test
        engine={"worker_concurrency": concurrency, "queue_polling_seconds": polling},
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
        outputs: dict[str, dict[str, Any]] = {}
        for step in onboarding_plan().steps:
            outputs[step.name] = _complete(
                step, StepInputs(tenant, engine.providers, engine.settings, outputs))
    return (time.perf_counter() - started) / count


def _complete(step: PlanStep, inputs: StepInputs) -> dict[str, Any]:
    provider = inputs.providers.of_kind(step.kind)
    outcome: Outcome = Pending("", 0)
    while isinstance(outcome, Pending):
        outcome = provider.ensure(step.build(inputs))
    return dict(outcome.outputs)


_dbos_only: dict[str, Any] = {}


@DBOS.step(name="bench.provider_call")
def _dbos_only_step(step: PlanStep, inputs: StepInputs) -> dict[str, Any]:
    return _complete(step, inputs)  # DBOS checkpoints the result, not the arguments


@DBOS.workflow(name="bench.dbos_only")
def _dbos_only_workflow(slug: str) -> float:
    """One onboarding's provider calls, one DBOS step each; returns its seconds."""
    engine: Engine = _dbos_only["engine"]
    tenant = spec(int(slug.removeprefix("floor")), "floor")
    started = time.perf_counter()
    outputs: dict[str, dict[str, Any]] = {}
    for step in onboarding_plan().steps:
        inputs = StepInputs(tenant, engine.providers, engine.settings, outputs)
        outputs[step.name] = _dbos_only_step(step, inputs)
    return time.perf_counter() - started


@dataclass(frozen=True)
class Timed:
    """One run timed: wall seconds and this thread's CPU seconds, in all and inside
    providers."""

    run: float
    providers: float
    run_cpu: float
    providers_cpu: float

    @property
    def overhead(self) -> float:
        return self.run - self.providers

    @property
    def overhead_cpu(self) -> float:
        return self.run_cpu - self.providers_cpu


def dbos_only(engine: Engine, clock: ProviderClock, i: int) -> Timed:
    """Onboarding tenant ``i`` with a bare DBOS workflow on the started engine's DBOS: no
    catalog recording, no tenantops engine."""
    _dbos_only["engine"] = engine
    outside, outside_cpu = clock.per_run[""], clock.cpu_per_run[""]  # calls outside runs
    opened = engine.catalog.open_onboarding(spec(i, "floor"), requested_by="bench", steps=[])
    engine.catalog.cancel_run(opened.run.id)  # the tenant's record only: no run to reconcile
    started, cpu = time.perf_counter(), time.thread_time()
    _dbos_only_workflow(f"floor{i:04d}")
    return Timed(time.perf_counter() - started, clock.per_run[""] - outside,
                 time.thread_time() - cpu, clock.cpu_per_run[""] - outside_cpu)


def engine_run(engine: Engine, clock: ProviderClock, i: int) -> tuple[Timed, bool]:
    """Onboarding tenant ``i`` with the engine's workflow called directly on this thread, as
    `dbos_only` calls its workflow (and whether it succeeded): the run is registered as
    `Engine.onboard` does, but not enqueued, so neither side waits for the queue's poll and
    both are timed the same way, from the workflow's start to its end (loading the run and
    closing it included)."""
    tenant = spec(i, "s")
    options = onboarding_options(tenant, engine.settings, engine.providers)
    opened = engine.catalog.open_onboarding(
        tenant, requested_by="bench", steps=plan_for("onboard", options).templates(
            engine.providers), options=options)
    started, cpu = time.perf_counter(), time.thread_time()
    with SetWorkflowID(opened.run.workflow_id):
        run_workflow(opened.run.id, 0)
    timed = Timed(time.perf_counter() - started, clock.per_run[opened.run.id],
                  time.thread_time() - cpu, clock.cpu_per_run[opened.run.id])
    return timed, engine.get_run(opened.run.id).status == "succeeded"


def onboard_all(folder: Path, count: int, concurrency: int
                ) -> tuple[float, float, float, int]:
    """Onboard ``count`` tenants requested at once; (wall seconds, summed run seconds,
    summed provider seconds, failures)."""
    clock = ProviderClock()
    engine = Engine(settings_for(folder, concurrency), middleware=[clock])
    engine.start()
    try:
        started = time.perf_counter()
        runs = [engine.onboard(spec(i, "t"), requested_by="bench").id for i in range(count)]
        finished = [engine.wait(run_id, timeout=1800, poll=0.2) for run_id in runs]
        wall = time.perf_counter() - started
    finally:
        engine.stop()
    return (wall, _run_seconds(finished), sum(clock.per_run[run.id] for run in finished),
            sum(1 for run in finished if run.status != "succeeded"))


@dataclass
class Paired:
    """One-at-a-time figures: the engine's runs and DBOS alone's, in pairs measured back to
    back."""

    engine: list[Timed] = field(default_factory=list)
    dbos: list[Timed] = field(default_factory=list)
    failed: int = 0

    def ratio(self, engine: bool) -> float:
        """Summed run time / summed time inside providers."""
        runs = self.engine if engine else self.dbos
        return sum(t.run for t in runs) / sum(t.providers for t in runs)

    def median(self, engine: bool, what: str) -> float:
        values: list[float] = [getattr(t, what) for t in (self.engine if engine else self.dbos)]
        return statistics.median(values)

    def tenantops_per_step(self, steps: int, *, cpu: bool) -> tuple[float, float, float]:
        """tenantops' own seconds per step: over the pairs, (the engine's time outside
        providers - DBOS alone's) / steps; median and quartiles. By wall time, or by the
        CPU time of the thread running both (which other work on a shared machine barely
        moves)."""
        what = "overhead_cpu" if cpu else "overhead"
        differences = [(getattr(e, what) - getattr(d, what)) / steps
                       for e, d in zip(self.engine, self.dbos, strict=True)]
        q1, median, q3 = statistics.quantiles(differences, n=4)
        return median, q1, q3


def one_at_a_time(folder: Path, count: int, latency: float = 0.0) -> Paired:
    """``count`` onboardings by the engine, one at a time, each paired with the same calls
    as a bare DBOS workflow (alternating which goes first, after a few of each to warm up, so
    drift in the machine's speed hits both alike). Both workflows are called on this thread
    and timed from start to end, so the engine's per-run work (loading the run, closing it)
    counts."""
    clock = ProviderClock()
    settings = settings_for(folder, 1).model_copy(deep=True)
    settings.engine.check_runs_seconds = 3600  # no worker check enqueues the runs called here
    engine = Engine(settings, middleware=[clock, Latency(latency)] if latency else [clock])
    engine.start()
    paired = Paired()
    try:
        for i in range(-WARM_UP, count):
            number = i + WARM_UP
            if i % 2 == 0:
                timed, succeeded = engine_run(engine, clock, number)
                floor = dbos_only(engine, clock, number)
            else:
                floor = dbos_only(engine, clock, number)
                timed, succeeded = engine_run(engine, clock, number)
            if i >= 0:
                paired.failed += not succeeded
                paired.engine.append(timed)
                paired.dbos.append(floor)
    finally:
        engine.stop()
    return paired


def waits_scaling(folder: Path, count: int, latency: float, concurrency: int,
                  wait: float) -> tuple[float, int, int]:
    """``count`` onboardings whose provider calls each take ``latency`` s and whose
    certificate is pending for ``wait`` s (longer than ``engine.long_wait_seconds``, so the
    run waits in a delayed workflow, holding no slot); (wall seconds, failures, peak RSS
    in MiB of this process)."""
    settings = settings_for(folder, concurrency).model_copy(deep=True)
    settings.engine.long_wait_seconds = 1.0
    settings.providers.webhost.issuance_delay_seconds = wait
    engine = Engine(settings, middleware=[Latency(latency)])
    engine.start()
    try:
        started = time.perf_counter()
        runs = [engine.onboard(spec(i, f"w{concurrency}x"), requested_by="bench").id
                for i in range(count)]
        finished = [engine.wait(run_id, timeout=3600, poll=0.2) for run_id in runs]
        wall = time.perf_counter() - started
    finally:
        engine.stop()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    return wall, sum(1 for run in finished if run.status != "succeeded"), peak


class _Sink(http.server.BaseHTTPRequestHandler):
    """An OTLP/HTTP collector that accepts and discards every export."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def traced_one_at_a_time(folder: Path, count: int, latency: float = 0.0
                         ) -> tuple[float, float, float, float, int]:
    """``count`` onboardings with telemetry off and ``count`` with it on (spans and metrics
    exported by OTLP/HTTP to a local collector), in pairs after a warm-up, which one goes
    first alternating, so drift in the machine's speed hits both alike; (median seconds per
    run off, on, median CPU seconds of this process per run off, on, failures). Medians, not
    means: other work on the machine lands as spikes in single runs; CPU time, because wall
    time on a shared machine also measures the other work."""
    sink = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    settings = TelemetrySettings(otlp_endpoint=f"http://127.0.0.1:{sink.server_address[1]}",
                                 metric_interval_seconds=5)
    tracer_provider, meter_provider = telemetry.build_providers(settings)
    # The engine traces provider calls itself (a no-op while telemetry is off).
    engine = Engine(settings_for(folder, 1), middleware=[Latency(latency)] if latency else [])
    engine.start()
    seconds: dict[bool, list[float]] = {False: [], True: []}
    cpu: dict[bool, list[float]] = {False: [], True: []}
    failed = 0

    def onboard(i: int) -> tuple[Run, float]:
        started = time.process_time()
        with telemetry.request_span("POST", "/api/tenants", {}, request_id=f"{i:032x}",
                                    client=None):
            run_id = engine.onboard(spec(i, "o"), requested_by="bench").id
        run = engine.wait(run_id, timeout=600, poll=0.02)
        return run, time.process_time() - started

    try:
        for i in range(-WARM_UP, count):
            for traced in (i % 2 == 0, i % 2 != 0):  # which goes first alternates too
                number = 2 * (i + WARM_UP) + traced
                if traced:
                    with telemetry.using(tracer_provider, meter_provider):
                        run, used = onboard(number)
                else:
                    run, used = onboard(number)
                if i >= 0:
                    failed += run.status != "succeeded"
                    seconds[traced].append(_run_seconds([run]))
                    cpu[traced].append(used)
    finally:
        engine.stop()
        tracer_provider.shutdown()
        meter_provider.shutdown()
        sink.shutdown()
        sink.server_close()
    return (statistics.median(seconds[False]), statistics.median(seconds[True]),
            statistics.median(cpu[False]), statistics.median(cpu[True]), failed)


def _run_seconds(runs: list[Run]) -> float:
    return sum((run.finished_at - run.started_at).total_seconds()
               for run in runs if run.finished_at and run.started_at)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tenants", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=8, help="runs at once")
    parser.add_argument("--sequential", type=int, default=50,
                        help="tenants onboarded one at a time, for the uncontended overhead")
    parser.add_argument("--baseline", type=int, default=50, help="tenants in the baseline")
    parser.add_argument("--latency", type=float, default=0.0, metavar="MS",
                        help="also measure one at a time with every provider call made MS "
                        "milliseconds slower, like calls to a cloud API")
    parser.add_argument("--scaling-rounds", type=int, default=8,
                        help="with --latency: tenants onboarded at worker_concurrency 8 and "
                        "64, this many times the concurrency (the same number of rounds, so "
                        "the ramp and the tail weigh alike), each waiting --scaling-wait s "
                        "for its certificate")
    parser.add_argument("--scaling-wait", type=float, default=5.0, metavar="SECONDS")
    parser.add_argument("--telemetry", type=int, default=0, metavar="N",
                        help="only measure the cost of telemetry: N onboardings with tracing "
                        "on (OTLP/HTTP to a local collector) alternating with N with it off")
    args = parser.parse_args()
    steps = len(onboarding_plan().steps)
    if args.telemetry:
        with tempfile.TemporaryDirectory() as tmp:
            off, on, cpu_off, cpu_on, failed = traced_one_at_a_time(
                Path(tmp) / "telemetry", args.telemetry, args.latency / 1000)
        ratio = on / off
        slower = f", provider calls {args.latency:g} ms slower" if args.latency else ""
        print(f"telemetry: {args.telemetry} onboardings each way, one at a time{slower} "
              f"({failed} failed), spans and metrics exported by OTLP/HTTP when on:")
        print(f"  median run {off * 1000:.1f} ms off, {on * 1000:.1f} ms on: ratio "
              f"{ratio:.3f} (goal <= {GOAL_TELEMETRY}: "
              f"{'met' if ratio <= GOAL_TELEMETRY else 'NOT met'})")
        print(f"  median CPU of this process per run {cpu_off * 1000:.1f} ms off, "
              f"{cpu_on * 1000:.1f} ms on: ratio {cpu_on / cpu_off:.3f} (less sensitive to "
              "other work on the machine)")
        return
    if args.latency:
        tenants = {c: args.scaling_rounds * c for c in (8, 64)}
        with tempfile.TemporaryDirectory() as tmp:
            scaling = {c: waits_scaling(Path(tmp) / f"c{c}", tenants[c],
                                        args.latency / 1000, c, args.scaling_wait)
                       for c in (8, 64)}
        rates = {c: tenants[c] / wall * 60 for c, (wall, _, _) in scaling.items()}
        for c, (wall, failed, peak) in scaling.items():
            print(f"waits: {tenants[c]} tenants, provider calls {args.latency:g} ms, "
                  f"certificates pending {args.scaling_wait:g} s, worker_concurrency {c}: "
                  f"{wall:.1f} s = {rates[c]:.0f} tenants/minute ({failed} failed; peak RSS "
                  f"{peak} MiB)")
        print(f"  64 vs 8: {rates[64] / rates[8]:.2f} times the throughput (linear: 8; goal "
              f">= 0.8 x linear = 6.4; {rates[64] / rates[8] / 8:.2f} x linear)")

    with tempfile.TemporaryDirectory() as tmp:
        wall, run_s, provider_s, failed = onboard_all(Path(tmp) / "load", args.tenants,
                                                      args.concurrency)
        sequential = one_at_a_time(Path(tmp) / "sequential", args.sequential)
        slow = (one_at_a_time(Path(tmp) / "slow", args.sequential, args.latency / 1000)
                if args.latency else None)
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
    overhead_sequential = sequential.ratio(engine=True)
    floor_ratio = sequential.ratio(engine=False)
    own, own_q1, own_q3 = sequential.tenantops_per_step(steps, cpu=False)
    own_cpu, cpu_q1, cpu_q3 = sequential.tenantops_per_step(steps, cpu=True)
    print(f"machine: {os.cpu_count()} cores; {steps} steps per onboarding; SQLite catalog "
          "and engine; embedded providers")
    print(f"load: {args.tenants} tenants, {args.concurrency} runs at once: all finished in "
          f"{wall:.1f} s = {per_minute:.0f} tenants/minute ({failed} failed)")
    print(f"  per run {run_s / args.tenants * 1000:.0f} ms, of which "
          f"{provider_s / args.tenants * 1000:.0f} ms inside providers: overhead ratio "
          f"{overhead_load:.2f} (runs share {os.cpu_count()} cores and the GIL)")
    print(f"  all {args.tenants} finished in {wall / (per_tenant_direct * args.tenants):.2f} "
          "times the baseline's time for the same calls made one after another")
    print(f"one at a time: {args.sequential} tenants ({sequential.failed} failed), each "
          "paired with DBOS alone (the same calls as one DBOS step each, no catalog), both "
          "workflows called directly and timed from start to end:")
    for engine, name in ((True, "engine"), (False, "DBOS alone")):
        print(f"  {name}: per run {sequential.median(engine, 'run') * 1000:.0f} ms (median), "
              f"of which {sequential.median(engine, 'providers') * 1000:.0f} ms inside "
              f"providers: overhead ratio {sequential.ratio(engine):.2f}; outside providers "
              f"{sequential.median(engine, 'overhead') / steps * 1000:.2f} ms per step, "
              f"{sequential.median(engine, 'overhead_cpu') / steps * 1000:.2f} ms of CPU")
    print(f"  engine / DBOS alone: {overhead_sequential / floor_ratio:.2f} "
          f"(goal <= {GOAL_VS_DBOS}: "
          f"{'met' if overhead_sequential / floor_ratio <= GOAL_VS_DBOS else 'NOT met'})")
    print(f"  tenantops' own cost per step (engine - DBOS alone, median over pairs): "
          f"{own * 1000:.2f} ms (quartiles {own_q1 * 1000:.2f}-{own_q3 * 1000:.2f}); "
          f"CPU {own_cpu * 1000:.2f} ms (quartiles {cpu_q1 * 1000:.2f}-{cpu_q3 * 1000:.2f}); "
          f"goal <= {GOAL_OWN_MS_PER_STEP} ms: "
          f"{'met' if own * 1000 <= GOAL_OWN_MS_PER_STEP else 'NOT met'}")
    if slow is not None:
        print(f"one at a time, provider calls {args.latency:g} ms slower ({slow.failed} "
              f"failed): per run {slow.median(True, 'run') * 1000:.0f} ms, overhead ratio "
              f"{slow.ratio(engine=True):.2f} (DBOS alone {slow.ratio(engine=False):.2f})")
    print(f"baseline: the same provider calls made directly, no engine: "
          f"{per_tenant_direct * 1000:.0f} ms per tenant")
    scaled = wall * 500 / args.tenants
    print(f"goals: 500 tenants in < {GOAL_SECONDS_FOR_500:.0f} s: "
          f"{'met' if scaled < GOAL_SECONDS_FOR_500 else 'NOT met'} ({scaled:.0f} s); "
          f"overhead ratio <= {GOAL_OVERHEAD}: "
          f"{'met' if overhead_sequential <= GOAL_OVERHEAD else 'NOT met'} "
          f"({overhead_sequential:.2f} one at a time, {overhead_load:.2f} under load; "
          f"DBOS alone {floor_ratio:.2f})")


if __name__ == "__main__":
    main()
