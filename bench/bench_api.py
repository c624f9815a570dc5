"""Throughput and latency of ``GET /api/tenants/{slug}`` with token validation on, beside the
same route with validation off, 50 concurrent clients on loopback, measured in one run.

Run: .venv/bin/python bench/bench_api.py [--seconds 8] [--clients 50]
Goal (issue 5): validation costs under 15% of throughput (ratio on/off at least 0.85).

Each variant runs in its own server process (uvicorn, one worker) so the two share nothing;
the load comes from threads of keep-alive HTTP/1.1 connections in this process. "Off" swaps
the authenticator for one that returns a fixed principal, so everything else is the same.
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

SLUG = "benchco"


def serve(data_dir: Path, authority: str, ca_bundle: str, validate: bool, port_file: Path) -> None:
    """Server mode: the API on a free port, with or without token validation."""
    import uvicorn

    from tenantops.api import create_app
    from tenantops.auth import Authenticator, Principal
    from tenantops.cli.serve import emulator_auth
    from tenantops.config import AuthSettings, Settings

    auth = emulator_auth(AuthSettings(), authority, Path(ca_bundle))
    settings = Settings(data_dir=data_dir, auth=auth, log_level="WARNING")

    class Trusting(Authenticator):
        def authenticate(self, authorization: Sequence[str],
                         client_principal: Sequence[str] = ()) -> Principal:
            return Principal(oid="o", appid="a", tid=auth.tenant_id or "", roles=(
                "Tenants.Read",), token_version="1.0", source="bearer")

    authenticator = Authenticator(auth) if validate else Trusting(auth)
    app = create_app(settings, authenticator=authenticator)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port_file.write_text(str(sock.getsockname()[1]))
    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False)).run(
        sockets=[sock])


def load(port: int, token: str, clients: int, seconds: float) -> tuple[int, list[float]]:
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0]
    stop = time.perf_counter() + seconds

    def client(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Authorization": f"Bearer {token}"}
        while time.perf_counter() < stop:
            started = time.perf_counter()
            connection.request("GET", f"/api/tenants/{SLUG}", headers=headers)
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                errors[0] += 1
            latencies[index].append(time.perf_counter() - started)
        connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors[0], [x for per in latencies for x in per]


def measure(data_dir: Path, info: object, token: str, validate: bool, clients: int,
            seconds: float) -> dict[str, float]:
    from tenantops.emulator.server import EmulatorInfo

    assert isinstance(info, EmulatorInfo)
    port_file = data_dir / f"port-{validate}"
    process = subprocess.Popen([sys.executable, __file__, "--serve", str(data_dir),
                                info.authority, info.ca_bundle, str(validate), str(port_file)])
    try:
        while not port_file.exists():
            time.sleep(0.05)
        port = int(port_file.read_text())
        time.sleep(1.0)
        load(port, token, 5, 1.0)  # warm up: JWKS fetched, connections open
        errors, latencies = load(port, token, clients, seconds)
    finally:
        process.terminate()
        process.wait(10)
    latencies.sort()
    return {
        "requests_per_second": round(len(latencies) / seconds, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--serve", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        data, authority, ca, validate, port_file = args.serve
        serve(Path(data), authority, ca, validate == "True", Path(port_file))
        return

    import httpx

    from tenantops.catalog import Catalog, StepTemplate
    from tenantops.config import Settings
    from tenantops.emulator.directory import API_CLIENT_ID, default_directory
    from tenantops.emulator.server import EmulatorServer
    from tenantops.provisioning.spec import TenantSpec

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        catalog = Catalog.from_settings(Settings(data_dir=data_dir))
        catalog.migrate()
        catalog.open_onboarding(
            TenantSpec(slug=SLUG, display_name="Bench Co", custom_domain="www.bench.test",
                       admin_email="a@bench.test"),
            requested_by="bench", steps=[StepTemplate("register_tenant", "catalog:sqlite",
                                                      "ensure")])
        catalog.close()
        emulator = EmulatorServer(default_directory(), data_dir)
        with emulator as info:
            token = httpx.get(f"{info.mi_url}/msi/token", params={
                "resource": API_CLIENT_ID, "api-version": "2019-08-01"}, headers={
                "X-IDENTITY-HEADER": emulator.state.host_secret("aa-onboarding")}
            ).json()["access_token"]
            off = measure(data_dir, info, token, False, args.clients, args.seconds)
            on = measure(data_dir, info, token, True, args.clients, args.seconds)
    ratio = on["requests_per_second"] / off["requests_per_second"]
    print(json.dumps({
        "clients": args.clients, "validation_on": on, "validation_off": off,
        "throughput_ratio_on_to_off": round(ratio, 3),
        "validation_cost_percent": round((1 - ratio) * 100, 1),
        "goal": "cost under 15% (ratio >= 0.85)", "goal_met": ratio >= 0.85,
    }, indent=2))


if __name__ == "__main__":
    main()
