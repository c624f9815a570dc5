"""Tokens the emulator issues per second to 50 concurrent clients, beside the raw RS256
signing rate measured in the same run (the ceiling for one core), and their ratio.

Run: .venv/bin/python bench/bench_emulator_tokens.py [--seconds 10] [--clients 50]
Goal (issue 2): at least 500 tokens/s on 2 cores.
"""

from __future__ import annotations

import argparse
import http.client
import json
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=50)
    args = parser.parse_args()
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
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
