"""How fast the CLI answers, beside ``python -c pass`` measured in the same run.

Run: .venv/bin/python bench/bench_cli.py [--runs 15]
Goals (issue 13), on 2 cores:
- ``tenantops --version`` and ``--help``: at most 0.25 s, i.e. at most 2x ``python -c pass``;
- ``tenantops tenants list`` against a running local API with a warm token: at most 0.8 s;
- ``tenantops onboard ... --wait``: its first line within 0.5 s.

Every figure is the median wall time of fresh processes (the console script of this venv, as a
user runs it). The API is ``tenantops serve --dev --detach`` in a temporary folder on free ports;
the CLI acts as the emulator's ``ops-admin`` managed identity. "Warm token" means the identity
endpoint has answered for that identity before: each CLI process still asks it once.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

BIN = Path(sys.executable).parent


def median_seconds(run: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def command(args: Sequence[str], env: dict[str, str], cwd: Path) -> Callable[[], object]:
    def run() -> object:
        done = subprocess.run(list(args), env=env, cwd=cwd, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(args)} exited {done.returncode}: {done.stderr[-2000:]}")
        return done
    return run


def first_line_seconds(args: Sequence[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Seconds until ``args`` prints its first line, and until it exits."""
    began = time.perf_counter()
    process = subprocess.Popen(list(args), env=env, cwd=cwd, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    process.stdout.readline()
    first = time.perf_counter() - began
    _, stderr = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(args)} exited {process.returncode}: {stderr[-2000:]}")
    return first, time.perf_counter() - began


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for sock in sockets:
        sock.close()
    return ports


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=15, help="runs per figure (median)")
    options = parser.parse_args(argv)
    runs = options.runs
    tenantops = str(BIN / "tenantops")
    work = Path(tempfile.mkdtemp(prefix="bench-cli-"))
    api, emulator, mi, dns, edge, app = free_ports(6)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TENANTOPS_", "IDENTITY_", "MSI_", "AZURE_"))}
    env.update({
        "TENANTOPS_API__PORT": str(api), "TENANTOPS_API__URL": f"http://127.0.0.1:{api}/api",
        "TENANTOPS_EMULATOR__PORT": str(emulator), "TENANTOPS_EMULATOR__MI_PORT": str(mi),
        "TENANTOPS_PROVIDERS__DNS__PORT": str(dns),
        "TENANTOPS_PROVIDERS__WEBHOST__PORT": str(edge),
        "TENANTOPS_PROVIDERS__WEBHOST__APP_PORT": str(app),
    })

    baseline = median_seconds(command([sys.executable, "-c", "pass"], env, work), runs)
    version = median_seconds(command([tenantops, "--version"], env, work), runs)
    helped = median_seconds(command([tenantops, "--help"], env, work), runs)

    command([tenantops, "serve", "--dev", "--detach"], env, work)()
    try:
        lines = command([tenantops, "emulator", "env", "--identity", "ops-admin",
                         "--runtime", "app-service"], env, work)()
        assert isinstance(lines, subprocess.CompletedProcess)
        caller = {**env, **dict(line.split("=", 1) for line in lines.stdout.splitlines())}
        listing = command([tenantops, "tenants", "list"], caller, work)
        listing()  # the identity endpoint and the API have answered once: warm
        listed = median_seconds(listing, runs)
        firsts, totals = [], []
        for index in range(max(3, runs // 3)):
            first, total = first_line_seconds(
                [tenantops, "onboard", f"bench{index}", "--domain", f"bench{index}.example.test",
                 "--admin-email", f"admin@bench{index}.example.test"], caller, work)
            firsts.append(first)
            totals.append(total)
    finally:
        command([tenantops, "serve", "--stop"], env, work)()

    first_line = statistics.median(firsts)
    rows = [
        ("python -c pass (baseline)", baseline, None, ""),
        ("tenantops --version", version, 0.25, f"{version / baseline:.1f}x baseline (goal 2x)"),
        ("tenantops --help", helped, 0.25, f"{helped / baseline:.1f}x baseline (goal 2x)"),
        ("tenantops tenants list (warm)", listed, 0.8, f"{listed / baseline:.1f}x baseline"),
        ("onboard --wait: first line", first_line, 0.5,
         f"whole onboarding {statistics.median(totals):.2f} s"),
    ]
    print(f"CLI start-up, median of {runs} runs (onboard: {len(firsts)}), "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for name, seconds, goal, note in rows:
        verdict = "" if goal is None else ("met" if seconds <= goal else "NOT MET")
        goal_text = "" if goal is None else f"goal <= {goal:.2f} s"
        print(f"  {name:<32} {seconds:6.3f} s  {goal_text:<16} {verdict:<8} {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
