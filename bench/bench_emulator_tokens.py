"""Tokens the emulator issues per second to 50 concurrent clients, beside the raw RS256
signing rate measured in the same run (the ceiling for one core), and their ratio.

With Java and Maven on the machine, also the same load against navikt's
mock-oauth2-server 6.0.2 (``no.nav.security:mock-oauth2-server``, fetched by Maven): client
credentials at each token endpoint, HTTPS with keep-alive on both, in interleaved rounds;
median tokens/s of each and their ratio (goal, issue 19: the emulator >= 1.0 x navikt).

Run: .venv/bin/python bench/bench_emulator_tokens.py [--seconds 10] [--clients 50]
     [--rounds 3] [--no-navikt]
Goal (issue 2): at least 500 tokens/s on 2 cores.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from tenantops.emulator.directory import API_CLIENT_ID, default_directory
from tenantops.emulator.keys import KeyStore
from tenantops.emulator.runtime_env import runtime_env
from tenantops.emulator.server import EmulatorInfo, read_info


def raw_signing_rate(key_dir: Path, seconds: float) -> float:
    """RS256 signatures per second with `cryptography`, one thread, the emulator's own key."""
    key = KeyStore(key_dir).active().private_key
    payload = b"x" * 700  # about the size of a token's signing input
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        key.sign(payload, padding.PKCS1v15(), hashes.SHA256())
        count += 1
    return count / (time.perf_counter() - start)


def start_emulator(data_dir: Path) -> tuple[subprocess.Popen[bytes], EmulatorInfo]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tenantops", "--data-dir", str(data_dir), "emulator",
         "--port", "0", "--mi-port", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        info = read_info(data_dir)
        if info is not None and info.pid == process.pid:
            return process, info
        time.sleep(0.1)
    process.kill()
    raise SystemExit("emulator did not start")


def load(info: EmulatorInfo, env: dict[str, str], clients: int, seconds: float) -> tuple[int, int]:
    url = urlsplit(env["IDENTITY_ENDPOINT"])
    path = url.path + "?" + urlencode({"resource": API_CLIENT_ID, "api-version": "2019-08-01"})
    headers = {"X-IDENTITY-HEADER": env["IDENTITY_HEADER"]}
    ok = [0] * clients
    failed = [0] * clients
    stop = time.perf_counter() + seconds

    def client(index: int) -> None:
        connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=30)
        while time.perf_counter() < stop:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            body = response.read()
            if response.status == 200 and b"access_token" in body:
                ok[index] += 1
            else:
                failed[index] += 1
        connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(ok), sum(failed)


NAVIKT = "no.nav.security:mock-oauth2-server:6.0.2"
_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>
<groupId>bench</groupId><artifactId>navikt</artifactId><version>1</version><dependencies>
<dependency><groupId>no.nav.security</groupId><artifactId>mock-oauth2-server</artifactId>
<version>6.0.2</version></dependency></dependencies></project>"""


def navikt_classpath(folder: Path) -> str | None:
    """The mock-oauth2-server's classpath, resolved by Maven; None without java or mvn."""
    if not shutil.which("java") or not shutil.which("mvn"):
        return None
    (folder / "pom.xml").write_text(_POM)
    out = folder / "classpath.txt"
    resolved = subprocess.run(
        ["mvn", "-q", "-B", "dependency:build-classpath", f"-Dmdep.outputFile={out}",
         "-Dmdep.includeScope=runtime"], cwd=folder, capture_output=True, text=True)
    if resolved.returncode != 0:
        raise SystemExit(f"Maven could not resolve {NAVIKT}: {resolved.stdout[-2000:]}")
    jar = (Path.home() / ".m2/repository/no/nav/security/mock-oauth2-server/6.0.2/"
           "mock-oauth2-server-6.0.2.jar")
    return f"{out.read_text().strip()}:{jar}"


def start_navikt(classpath: str, folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    """navikt's server on a free port, HTTPS with its generated certificate. Its default
    server (OkHttp's MockWebServer) keeps connections alive; its Netty one answers every
    token request with ``Connection: close``."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "SERVER_PORT": str(port),
           "JSON_CONFIG": json.dumps({"httpServer": {"type": "MockWebServerWrapper", "ssl": {}}})}
    process = subprocess.Popen(
        ["java", "-cp", classpath, "no.nav.security.mock.oauth2.StandaloneMockOAuth2ServerKt"],
        env=env, stdout=subprocess.DEVNULL, stderr=open(folder / "navikt.log", "ab"))  # noqa: SIM115
    url = f"https://localhost:{port}/default/token"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        connection = http.client.HTTPSConnection("localhost", port, timeout=5,
                                                 context=_unverified())
        try:
            connection.request("GET", "/default/.well-known/openid-configuration")
            if connection.getresponse().status == 200:
                return process, url
        except OSError:  # not listening yet
            pass
        finally:
            connection.close()
        time.sleep(0.2)
    process.kill()
    raise SystemExit("navikt's mock-oauth2-server did not start within 60 s")


def _unverified() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # both servers use their own test certificates
    return context


_WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = os.getenv("TOKEN_REQUEST_BODY")
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH %d %d %d\\n", summary.requests,
    e.status + e.connect + e.read + e.write + e.timeout, summary.duration))
end
"""


def token_rate(url: str, credentials: dict[str, str], clients: int, seconds: float,
               folder: Path) -> tuple[float, int]:
    """(tokens per second, failures) of client-credentials requests over HTTPS keep-alive
    connections: from ``wrk`` (one thread, C: the load generator barely takes CPU from the
    servers) when installed, else from Python threads."""
    if not shutil.which("wrk"):
        started = time.perf_counter()
        ok, failed = token_load(url, credentials, clients, seconds)
        return ok / (time.perf_counter() - started), failed
    script = folder / "token.lua"
    script.write_text(_WRK_SCRIPT)
    body = urlencode({"grant_type": "client_credentials", **credentials})
    out = subprocess.run(
        ["wrk", "-t1", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--timeout", "30s",
         "-s", str(script), url], capture_output=True, text=True, check=True,
        env={**os.environ, "TOKEN_REQUEST_BODY": body}).stdout
    line = next(x for x in out.splitlines() if x.startswith("BENCH "))
    requests, errors, duration_us = (int(x) for x in line.split()[1:])
    return (requests - errors) / (duration_us / 1e6), errors


def token_load(url: str, credentials: dict[str, str], clients: int,
               seconds: float) -> tuple[int, int]:
    """Client-credentials token requests over HTTPS keep-alive connections; (ok, failed)."""
    parts = urlsplit(url)
    body = urlencode({"grant_type": "client_credentials", **credentials})
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    context = _unverified()
    ok = [0] * clients
    failed = [0] * clients
    stop = time.perf_counter() + seconds

    def client(index: int) -> None:
        connection = http.client.HTTPSConnection(parts.hostname or "", parts.port,
                                                 timeout=30, context=context)
        while time.perf_counter() < stop:
            connection.request("POST", parts.path, body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read()
            if response.status == 200 and b"access_token" in answer:
                ok[index] += 1
            else:
                failed[index] += 1
        connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(ok), sum(failed)


def compare_navikt(info: EmulatorInfo, folder: Path, clients: int, seconds: float,
                   rounds: int) -> dict[str, object]:
    classpath = navikt_classpath(folder)
    if classpath is None:
        return {"navikt": "skipped: java or mvn not found"}
    process, navikt_url = start_navikt(classpath, folder)
    emulator_url = f"{info.authority}/{info.tenant_id}/oauth2/v2.0/token"
    ci = next(app for app in default_directory().apps if app.name == "ci-pipeline")
    emulator_credentials = {"client_id": ci.client_id,
                            "client_secret": ci.client_secrets[0].get_secret_value(),
                            "scope": f"{API_CLIENT_ID}/.default"}
    navikt_credentials = {"client_id": "bench", "client_secret": "x", "scope": "api"}
    rates: dict[str, list[float]] = {"emulator": [], "navikt": []}
    failures = 0
    try:
        token_rate(emulator_url, emulator_credentials, clients, 2.0, folder)  # warm up both
        token_rate(navikt_url, navikt_credentials, clients, 15.0, folder)  # JIT needs longer
        for n in range(rounds):
            order = ["emulator", "navikt"] if n % 2 == 0 else ["navikt", "emulator"]
            for which in order:
                url, credentials = ((emulator_url, emulator_credentials) if which == "emulator"
                                    else (navikt_url, navikt_credentials))
                rate, failed = token_rate(url, credentials, clients, seconds, folder)
                rates[which].append(rate)
                failures += failed
    finally:
        process.terminate()
        process.wait(10)
    emulator, navikt = statistics.median(rates["emulator"]), statistics.median(rates["navikt"])
    return {
        "client_credentials_rounds": rounds,
        "load_generator": "wrk" if shutil.which("wrk") else "python threads",
        "emulator_tokens_per_second": [round(r, 1) for r in rates["emulator"]],
        "navikt_mock_oauth2_server_6_0_2_tokens_per_second": [round(r, 1)
                                                              for r in rates["navikt"]],
        "failed": failures,
        "median_ratio_emulator_to_navikt": round(emulator / navikt, 3),
        "goal_ratio": 1.0,
        "ratio_goal_met": emulator >= navikt and failures == 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds vs navikt")
    parser.add_argument("--no-navikt", action="store_true", help="skip the comparison")
    args = parser.parse_args()
    comparison: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        process, info = start_emulator(data_dir)
        try:
            env = runtime_env(default_directory(), data_dir / "emulator", info, "aa-onboarding",
                              "app-service")
            load(info, env, 5, 1.0)  # warm up
            started = time.perf_counter()
            ok, failed = load(info, env, args.clients, args.seconds)
            elapsed = time.perf_counter() - started
            if not args.no_navikt:
                comparison = compare_navikt(info, data_dir, args.clients, args.seconds,
                                            args.rounds)
        finally:
            process.terminate()
            process.wait(10)
        raw = raw_signing_rate(data_dir / "emulator" / "keys", 3.0)
    rate = ok / elapsed
    result = {
        "clients": args.clients,
        "tokens": ok,
        "failed": failed,
        "tokens_per_second": round(rate, 1),
        "raw_rs256_signs_per_second_one_core": round(raw, 1),
        "ratio_tokens_to_raw_signing": round(rate / raw, 3),
        "goal_tokens_per_second": 500,
        "goal_met": rate >= 500 and failed == 0,
        **comparison,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
