"""Throughput and latency of ``GET /api/tenants/{slug}``, 50 concurrent clients on loopback,
a catalog of ``--tenants`` tenants (10,000), each with an onboarding run of 12 steps; every
request asks for a tenant chosen at random.

The servers, each a uvicorn process of its own (one worker, the same uvicorn), all started
before the first measurement and all reading the same SQLite catalog file:

- ``on``: tenantops, every request with a bearer token checked by `Authenticator`;
- ``off``: tenantops with an authenticator that returns a fixed principal (everything else
  the same), so ``on / off`` is what token validation costs;
- ``starlette``: a minimal Starlette app (one route, ``sqlite3`` with a connection per thread,
  three queries, ``json.dumps``) answering the same JSON from the same rows: the ceiling for
  this route on this server;
- ``baseline`` (with ``--baseline-src``): tenantops from another checkout, with auth on, to
  compare with the code as it was, e.g. ``git worktree add --detach /tmp/tenantops-main main``
  then ``--baseline-src /tmp/tenantops-main/src``.

The load is interleaved: ``--rounds`` rounds, each measuring every server once for
``--seconds``, in an order that rotates from round to round, so a change of the machine's load
(other processes on its 2 cores) touches every server alike. For each server it prints the
median, minimum, maximum and spread of requests per second and of requests per second of the
server process's CPU time (on a shared machine the second moves less); ratios are computed
per round (paired), median and range.

The load comes from ``wrk`` when it is installed (``apt-get install wrk``; one thread,
``--clients`` keep-alive connections, a Lua script picking the tenant), else from asyncio
tasks in this process (which, on 2 cores, cap every server near 1,000 requests/s).

Then, ``--in-process-rounds`` times, each server's app gets ``--in-process-requests`` requests
one after the other straight through ASGI in a process of its own (no server, no sockets), and
its CPU time per request is printed: stable to about 3 % where the HTTP figures move 20-50 %,
so this is the figure that shows a regression of 5 %.

Run: .venv/bin/python bench/bench_api.py [--tenants 10000] [--rounds 7] [--seconds 3]
        [--clients 50] [--client wrk|python] [--baseline-src PATH] [--only on,off,starlette]
        [--in-process-rounds 5] [--verbose]
Goals (issue 19): ``on`` at least 0.7 x ``starlette`` and at least 4 x ``baseline`` (the code
before issue 19); ``on / off`` at least 0.85 (issue 5).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GOAL_VS_STARLETTE = 0.7
GOAL_VS_BASELINE = 4.0
GOAL_ON_OFF = 0.85
STEPS = ("register_tenant", "store_database_secret", "create_database", "create_cname_record",
         "create_verification_record", "wait_for_dns", "bind_hostname", "issue_certificate",
         "bind_certificate", "create_organization", "invite_admin", "activate_tenant")


# -- the servers --------------------------------------------------------------------------

def build(kind: str, data_dir: Path, authority: str, ca_bundle: str) -> Any:
    return starlette_app(data_dir / "catalog.sqlite") if kind == "starlette" else (
        tenantops_app(data_dir, authority, ca_bundle, validate=kind != "off"))


def serve(kind: str, data_dir: Path, authority: str, ca_bundle: str, port_file: Path) -> None:
    """Server mode: one of the servers of the module docstring, on a free loopback port."""
    import uvicorn

    app = build(kind, data_dir, authority, ca_bundle)
    from tenantops.listen import listen

    sock = listen("127.0.0.1", 0, setting="bench")  # as `tenantops serve` listens
    port_file.write_text(str(sock.getsockname()[1]))
    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False)).run(
        sockets=[sock])


def tenantops_app(data_dir: Path, authority: str, ca_bundle: str, *, validate: bool) -> Any:
    from tenantops.api import create_app
    from tenantops.auth import Authenticator, Principal
    from tenantops.cli.serve import emulator_auth
    from tenantops.config import AuthSettings, Settings

    auth = emulator_auth(AuthSettings(), authority, Path(ca_bundle))
    settings = Settings(data_dir=data_dir, auth=auth, log_level="WARNING")
    fixed = Principal(oid="o", appid="a", tid=auth.tenant_id or "", roles=("Tenants.Read",),
                      token_version="1.0", source="bearer")

    class Trusting(Authenticator):
        def authenticate(self, authorization: Sequence[str],
                         client_principal: Sequence[str] = ()) -> Principal:
            return fixed

        def remembered(self, authorization: Sequence[str]) -> Principal | None:
            return fixed

    return create_app(settings, authenticator=Authenticator(auth) if validate else Trusting(auth))


def starlette_app(database: Path) -> Any:
    """One route answering what ``GET /api/tenants/{slug}`` answers, from the same rows."""
    import sqlite3
    import threading

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    local = threading.local()

    def connection() -> sqlite3.Connection:
        if not hasattr(local, "db"):
            local.db = sqlite3.connect(database, check_same_thread=False)
            local.db.row_factory = sqlite3.Row
        db: sqlite3.Connection = local.db
        return db

    def when(value: str | None) -> str | None:
        return None if value is None else value.replace(" ", "T") + "Z"

    def tenant(request: Request) -> Response:
        db = connection()
        row = db.execute("SELECT * FROM tenants WHERE slug = ?",
                         (request.path_params["slug"],)).fetchone()
        if row is None:
            return JSONResponse({"error": "tenant_not_found"}, status_code=404)
        runs = db.execute("SELECT * FROM runs WHERE tenant_id = ? ORDER BY created_at DESC",
                          (row["id"],)).fetchall()
        marks = ",".join("?" * len(runs))
        steps: dict[str, list[dict[str, Any]]] = {r["id"]: [] for r in runs}
        for s in db.execute(f"SELECT * FROM steps WHERE run_id IN ({marks}) ORDER BY position",
                            [r["id"] for r in runs]):
            steps[s["run_id"]].append({
                "name": s["name"], "provider": s["provider"], "action": s["action"],
                "status": s["status"], "attempts": s["attempts"],
                "started_at": when(s["started_at"]), "finished_at": when(s["finished_at"]),
                "duration_seconds": None, "error": s["error"], "message": s["message"],
                "outputs": json.loads(s["outputs"])})
        body = {
            "slug": row["slug"], "display_name": row["display_name"],
            "custom_domain": row["custom_domain"], "plan": row["plan"],
            "admin_email": row["admin_email"], "tags": json.loads(row["tags"]),
            "status": row["status"], "created_at": when(row["created_at"]),
            "updated_at": when(row["updated_at"]),
            "resources": {"database": {"name": row["database_name"],
                                       "login": row["database_login"]},
                          "dns_records": json.loads(row["dns_records"]),
                          "hostname": row["hostname"], "certificate": None,
                          "organization": row["organization_id"]},
            "runs": [{"id": r["id"], "tenant": row["slug"], "kind": r["kind"],
                      "status": r["status"], "requested_by": r["requested_by"],
                      "created_at": when(r["created_at"]), "started_at": when(r["started_at"]),
                      "finished_at": when(r["finished_at"]), "error": r["error"],
                      "failed_step": r["failed_step"], "retries": r["retries"],
                      "options": json.loads(r["options"]), "steps": steps[r["id"]]}
                     for r in runs],
        }
        return Response(json.dumps(body), media_type="application/json")

    return Starlette(routes=[Route("/api/tenants/{slug}", tenant)])


def in_process(kind: str, data_dir: Path, authority: str, ca_bundle: str, token: str,
               count: int) -> None:
    """In-process mode: ``count`` requests one after the other straight into the ASGI app (no
    server, no sockets); prints the CPU microseconds per request of this process."""
    app = build(kind, data_dir, authority, ca_bundle)
    pick = random.Random(1)
    headers = [(b"host", b"127.0.0.1"), (b"authorization", f"Bearer {token}".encode())]

    async def one(slug: str) -> None:
        path = f"/api/tenants/{slug}"
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
                 "query_string": b"", "root_path": "", "headers": headers,
                 "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80)}
        statuses = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        await app(scope, receive, send)
        if statuses != [200]:
            raise SystemExit(f"{kind} answered {statuses} for {path}")

    async def run() -> float:
        slugs = [line for line in (data_dir / "slugs.txt").read_text().splitlines() if line]
        for _ in range(200):  # warm: keys fetched, connections open, code paths hot
            await one(pick.choice(slugs))
        started = time.process_time()
        for _ in range(count):
            await one(pick.choice(slugs))
        return (time.process_time() - started) / count * 1e6

    print(f"CPU_US {asyncio.run(run()):.2f}")


def cpu_per_request(kind: str, data_dir: Path, info: Any, token: str, count: int,
                    baseline_src: str | None) -> float:
    env = dict(os.environ)
    if kind == "baseline" and baseline_src:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [baseline_src, env.get("PYTHONPATH")]))
    out = subprocess.run(
        [sys.executable, __file__, "--in-process", kind, str(data_dir), info.authority,
         info.ca_bundle, token, str(count)], env=env, capture_output=True, text=True, check=True)
    return float(next(x for x in out.stdout.splitlines() if x.startswith("CPU_US")).split()[1])


# -- the catalog --------------------------------------------------------------------------

def seed(data_dir: Path, count: int) -> list[str]:
    """``count`` tenants, each onboarded by one run of 12 succeeded steps; their slugs."""
    from sqlalchemy import insert

    from tenantops.catalog import Catalog
    from tenantops.catalog.models import RunRow, StepRow, TenantRow
    from tenantops.config import Settings

    catalog = Catalog.from_settings(Settings(data_dir=data_dir))
    catalog.migrate()
    start = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
    slugs = []
    with catalog.engine.begin() as connection:
        for first in range(0, count, 1000):
            tenants: list[dict[str, Any]] = []
            runs: list[dict[str, Any]] = []
            steps: list[dict[str, Any]] = []
            for i in range(first, min(first + 1000, count)):
                slug = f"tenant-{i:05d}"
                slugs.append(slug)
                created = start + dt.timedelta(minutes=i)
                tenant_id, run_id = uuid.uuid4().hex, uuid.uuid4().hex
                tenants.append({
                    "id": tenant_id, "slug": slug, "display_name": f"Tenant {i}",
                    "custom_domain": f"app.{slug}.example.com", "plan": "standard",
                    "admin_email": f"admin@{slug}.example.com", "tags": {"tier": "bench"},
                    "status": "active", "created_at": created, "updated_at": created,
                    "registered_at": created, "database_name": f"tenant_{i:05d}",
                    "database_login": f"tenant_{i:05d}_app",
                    "dns_records": {f"CNAME app.{slug}.example.com": "web.example.net"},
                    "hostname": f"app.{slug}.example.com",
                    "organization_id": uuid.uuid4().hex})
                runs.append({
                    "id": run_id, "tenant_id": tenant_id, "kind": "onboard",
                    "status": "succeeded", "options": {}, "requested_by": "bench",
                    "workflow_id": f"tenantops/{slug}/onboard/{run_id}", "created_at": created,
                    "started_at": created, "finished_at": created + dt.timedelta(seconds=9),
                    "retries": 0})
                steps.extend({
                    "run_id": run_id, "position": p, "name": name, "provider": "bench:local",
                    "action": "ensure", "status": "succeeded", "attempts": 1,
                    "started_at": created, "finished_at": created, "outputs": {"done": True},
                } for p, name in enumerate(STEPS))
            connection.execute(insert(TenantRow), tenants)
            connection.execute(insert(RunRow), runs)
            connection.execute(insert(StepRow), steps)
    catalog.close()
    return slugs


# -- the load -----------------------------------------------------------------------------

WRK_SCRIPT = """
local token = os.getenv("BENCH_TOKEN")
local slugs = {}
for line in io.lines(os.getenv("BENCH_SLUGS")) do slugs[#slugs + 1] = line end
math.randomseed(os.time())
request = function()
  return wrk.format("GET", "/api/tenants/" .. slugs[math.random(#slugs)],
                    {["Authorization"] = "Bearer " .. token})
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH %d %d %d %d %d\\n", summary.requests,
    e.status + e.connect + e.read + e.write + e.timeout, summary.duration,
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass(frozen=True)
class Window:
    """What one server answered in one measurement window."""

    answered: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    cpu_seconds: float


def load_wrk(port: int, seconds: float, clients: int, script: Path, env: dict[str, str]
             ) -> tuple[int, int, float, float, float]:
    """``wrk``: requests answered, errors (not 2xx/3xx, or broken connections), the seconds
    it ran (whole seconds: wrk's unit), p50 and p99 in milliseconds."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--timeout", "30s", "-s",
         str(script), f"http://127.0.0.1:{port}"],
        capture_output=True, text=True, env=env, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("BENCH "))
    answered, errors, duration_us, p50_us, p99_us = (int(x) for x in line.split()[1:])
    return answered, errors, duration_us / 1e6, p50_us / 1000, p99_us / 1000


async def load_python(port: int, seconds: float, clients: int, requests: Sequence[bytes]
                      ) -> tuple[int, int, float, float, float]:
    """The same with asyncio in this process (when ``wrk`` is not installed)."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def client(seed: int) -> None:
        nonlocal errors
        pick = random.Random(seed)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                writer.write(requests[pick.randrange(len(requests))])
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
                if not head.startswith(b"HTTP/1.1 200"):
                    errors += 1
        finally:
            writer.close()
            await writer.wait_closed()

    await asyncio.gather(*(client(i) for i in range(clients)))
    latencies.sort()
    if not latencies:
        return 0, errors, seconds, 0.0, 0.0
    return (len(latencies), errors, seconds, statistics.median(latencies) * 1000,
            latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000)


class Load:
    """``clients`` keep-alive connections asking for random tenants for ``seconds``."""

    def __init__(self, folder: Path, slugs: Sequence[str], token: str, clients: int,
                 client: str) -> None:
        self.clients = clients
        self.client = client
        self.requests = [(f"GET /api/tenants/{slug} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          f"Authorization: Bearer {token}\r\n\r\n").encode() for slug in slugs]
        self.script = folder / "bench.lua"
        self.script.write_text(WRK_SCRIPT)
        (folder / "slugs.txt").write_text("\n".join(slugs) + "\n")
        self.env = {**os.environ, "BENCH_TOKEN": token,
                    "BENCH_SLUGS": str(folder / "slugs.txt")}

    def window(self, port: int, pid: int, seconds: float) -> Window:
        cpu = cpu_seconds(pid)
        if self.client == "wrk":
            measured = load_wrk(port, seconds, self.clients, self.script, self.env)
        else:
            measured = asyncio.run(load_python(port, seconds, self.clients, self.requests))
        return Window(*measured, cpu_seconds=cpu_seconds(pid) - cpu)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start(kind: str, data_dir: Path, info: Any, baseline_src: str | None
          ) -> tuple[subprocess.Popen[bytes], Path]:
    port_file = data_dir / f"port-{kind}"
    env = dict(os.environ)
    if kind == "baseline" and baseline_src:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [baseline_src, env.get("PYTHONPATH")]))
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", kind, str(data_dir), info.authority,
         info.ca_bundle, str(port_file)], env=env)
    return process, port_file


def port_of(process: subprocess.Popen[bytes], port_file: Path, kind: str) -> int:
    deadline = time.monotonic() + 120
    while not port_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the {kind} server did not start (exit code {process.poll()})")
        time.sleep(0.05)
    return int(port_file.read_text())


# -- the report ---------------------------------------------------------------------------

def summary(values: Sequence[float]) -> str:
    median = statistics.median(values)
    spread = (max(values) - min(values)) / median * 100 if median else 0.0
    return f"{median:9.1f}  {min(values):9.1f}  {max(values):9.1f}  {spread:6.1f} %"


def ratio_line(name: str, ratios: Sequence[float], goal: float | None) -> str:
    median = statistics.median(ratios)
    verdict = "" if goal is None else (
        f"  goal >= {goal:g}: {'met' if median >= goal else 'NOT met'}")
    return (f"{name:22} {median:6.3f}  (rounds {min(ratios):.3f} .. {max(ratios):.3f})"
            f"{verdict}")


def report(args: argparse.Namespace, kinds: Sequence[str], windows: dict[str, list[Window]]
           ) -> None:
    rates = {k: [w.answered / w.seconds for w in windows[k]] for k in kinds}
    per_cpu = {k: [w.answered / w.cpu_seconds if w.cpu_seconds else 0.0 for w in windows[k]]
               for k in kinds}
    print(f"\nGET /api/tenants/{{slug}}: {args.tenants} tenants, {args.clients} clients "
          f"({args.client}), {args.rounds} interleaved rounds of {args.seconds:g} s per server")
    print(f"{'server':10} {'req/s med':>9}  {'min':>9}  {'max':>9}  {'spread':>8}  "
          f"{'p50 ms':>7} {'p99 ms':>7} {'errors':>6}")
    for kind in kinds:
        p50 = statistics.median(w.p50_ms for w in windows[kind])
        p99 = statistics.median(w.p99_ms for w in windows[kind])
        errors = sum(w.errors for w in windows[kind])
        print(f"{kind:10} {summary(rates[kind])}  {p50:7.2f} {p99:7.2f} {errors:6}")
    print(f"\n{'server':10} {'req/CPU-s':>9}  {'min':>9}  {'max':>9}  {'spread':>8}"
          "   (requests per second of the server process's CPU time)")
    for kind in kinds:
        print(f"{kind:10} {summary(per_cpu[kind])}")
    pairs = [("on / off", GOAL_ON_OFF), ("on / starlette", GOAL_VS_STARLETTE),
             ("on / baseline", GOAL_VS_BASELINE), ("baseline / starlette", None)]
    for measure, values in (("req/s", rates), ("req/CPU-s", per_cpu)):
        print(f"\npaired ratios of {measure} (per round)")
        for name, goal in pairs:
            left, _, right = name.partition(" / ")
            if left in kinds and right in kinds:
                ratios = [a / b for a, b in zip(values[left], values[right], strict=True)]
                print(ratio_line(name, ratios, goal))


def report_in_process(args: argparse.Namespace, kinds: Sequence[str],
                      cpu: dict[str, list[float]]) -> None:
    print(f"\nin process (no server, no sockets): {args.in_process_requests} requests one "
          f"after the other into the ASGI app, {args.in_process_rounds} interleaved rounds")
    print(f"{'server':10} {'CPU us/req':>10}  {'min':>9}  {'max':>9}  {'spread':>8}")
    for kind in kinds:
        print(f"{kind:10} {summary(cpu[kind])}")
    print("\npaired ratios of requests per CPU second (per round)")
    for name, goal in (("on / off", GOAL_ON_OFF), ("on / starlette", GOAL_VS_STARLETTE),
                       ("on / baseline", GOAL_VS_BASELINE), ("baseline / starlette", None)):
        left, _, right = name.partition(" / ")
        if left in kinds and right in kinds:
            ratios = [b / a for a, b in zip(cpu[left], cpu[right], strict=True)]
            print(ratio_line(name, ratios, goal))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=3.0, help="per server per round")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--client", choices=("wrk", "python"),
                        default="wrk" if shutil.which("wrk") else "python",
                        help="the load generator (default: wrk when installed)")
    parser.add_argument("--baseline-src", help="the src folder of another tenantops checkout")
    parser.add_argument("--only", help="comma-separated servers to run (on,off,starlette,"
                        "baseline)")
    parser.add_argument("--verbose", action="store_true", help="print every round")
    parser.add_argument("--in-process-rounds", type=int, default=5,
                        help="rounds of the in-process measurement (0: none)")
    parser.add_argument("--in-process-requests", type=int, default=2000)
    parser.add_argument("--serve", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--in-process", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        kind, data, authority, ca, port_file = args.serve
        serve(kind, Path(data), authority, ca, Path(port_file))
        return
    if args.in_process:
        kind, data, authority, ca, token, count = args.in_process
        in_process(kind, Path(data), authority, ca, token, int(count))
        return

    import httpx

    from tenantops.emulator.directory import API_CLIENT_ID, default_directory
    from tenantops.emulator.server import EmulatorServer

    kinds = ["on", "off", "starlette"] + (["baseline"] if args.baseline_src else [])
    if args.only:
        kinds = [k for k in kinds if k in args.only.split(",")]
    windows: dict[str, list[Window]] = {kind: [] for kind in kinds}
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        started = time.perf_counter()
        slugs = seed(data_dir, args.tenants)
        print(f"{args.tenants} tenants seeded in {time.perf_counter() - started:.1f} s")
        emulator = EmulatorServer(default_directory(), data_dir)
        with emulator as info:
            token = httpx.get(f"{info.mi_url}/msi/token", params={
                "resource": API_CLIENT_ID, "api-version": "2019-08-01"}, headers={
                "X-IDENTITY-HEADER": emulator.state.host_secret("aa-onboarding")}
            ).json()["access_token"]
            load = Load(data_dir, slugs, token, args.clients, args.client)
            servers = {kind: start(kind, data_dir, info, args.baseline_src) for kind in kinds}
            try:
                ports = {kind: port_of(*servers[kind], kind) for kind in kinds}
                for kind in kinds:  # warm up: keys fetched, pools filled, code paths hot
                    warm = load.window(ports[kind], servers[kind][0].pid, 1.5)
                    if warm.errors or not warm.answered:
                        raise SystemExit(f"the {kind} server answered {warm.errors} of "
                                         f"{warm.answered} warm-up requests with an error")
                for round_ in range(args.rounds):
                    order = kinds[round_ % len(kinds):] + kinds[:round_ % len(kinds)]
                    for kind in order:
                        window = load.window(ports[kind], servers[kind][0].pid, args.seconds)
                        windows[kind].append(window)
                        if args.verbose:
                            print(f"round {round_ + 1} {kind:10} "
                                  f"{window.answered / window.seconds:8.1f} req/s "
                                  f"{window.answered / max(window.cpu_seconds, 1e-9):8.1f} "
                                  f"req/CPU-s", flush=True)
            finally:
                for process, _ in servers.values():
                    process.terminate()
                for process, _ in servers.values():
                    process.wait(10)
            cpu: dict[str, list[float]] = {kind: [] for kind in kinds}
            for round_ in range(args.in_process_rounds):
                order = kinds[round_ % len(kinds):] + kinds[:round_ % len(kinds)]
                for kind in order:
                    cpu[kind].append(cpu_per_request(kind, data_dir, info, token,
                                                     args.in_process_requests,
                                                     args.baseline_src))
    report(args, kinds, windows)
    if args.in_process_rounds:
        report_in_process(args, kinds, cpu)


if __name__ == "__main__":
    main()
