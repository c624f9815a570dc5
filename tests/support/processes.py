"""tenantops commands as separate processes, the way a user (or Azure) runs them."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from tenantops.emulator.server import EmulatorInfo, read_info

PYTHON_TENANTOPS = [sys.executable, "-m", "tenantops"]
READY_SECONDS = 240.0
"""How long a test waits for a process to say it is ready before failing. Tests wait on the
readiness signal itself; this only bounds a process that never gets there, and is generous
because a loaded 2-core machine starts a tenantops process in tens of seconds."""


def clean_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without tenantops or Azure identity settings."""
    drop = ("TENANTOPS_", "IDENTITY_", "MSI_", "IMDS_", "AZURE_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.pop("REQUESTS_CA_BUNDLE", None)
    env.pop("SSL_CERT_FILE", None)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


class Process:
    """A subprocess whose stdout lines can be awaited; stderr is kept for assertions."""

    def __init__(self, args: Sequence[str], *, env: Mapping[str, str], cwd: Path) -> None:
        self.args = list(args)
        self.process = subprocess.Popen(
            self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
            env=dict(env))
        self.lines: queue.Queue[str] = queue.Queue()
        self.stderr_lines: list[str] = []
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, self.lines.put),
                             daemon=True),
            threading.Thread(target=self._read, args=(self.process.stderr,
                                                      self.stderr_lines.append), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: IO[str], sink: object) -> None:
        for line in stream:
            sink(line)  # type: ignore[operator]

    def wait_for_line(self, prefix: str, timeout: float = READY_SECONDS) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.process.poll() is not None:
                    raise AssertionError(
                        f"{self.args} exited {self.process.returncode}: "
                        f"{''.join(self.stderr_lines)[-2000:]}") from None
                continue
            if line.startswith(prefix):
                return line.rstrip("\n")
        raise AssertionError(f"{self.args} printed no line starting {prefix!r} in {timeout} s")

    def stop(self) -> str:
        """SIGINT, then SIGKILL after 20 s; returns everything it wrote to stderr."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for reader in self._readers:
            reader.join(timeout=10)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        return "".join(self.stderr_lines)


def start_emulator(data_dir: Path, env: Mapping[str, str]) -> tuple[Process, EmulatorInfo]:
    process = Process([*PYTHON_TENANTOPS, "--data-dir", str(data_dir), "emulator",
                       "--port", "0", "--mi-port", "0"], env=env, cwd=data_dir.parent)
    process.wait_for_line("tenant ")
    info = read_info(data_dir)
    assert info is not None
    assert info.pid == process.process.pid
    return process, info


def start_api(data_dir: Path, info: EmulatorInfo, env: Mapping[str, str], *,
              worker: bool) -> tuple[Process, str]:
    """``tenantops serve`` trusting the emulator; returns the API root URL (``.../api``)."""
    process = Process([*PYTHON_TENANTOPS, "--data-dir", str(data_dir), "serve", "--port", "0",
                       "--emulator", info.authority, "--emulator-ca", info.ca_bundle,
                       "--worker" if worker else "--no-worker"], env=env, cwd=data_dir.parent)
    url = process.wait_for_line("tenantops API").split()[-1]
    process.wait_for_line("worker")
    return process, url


def start_worker(data_dir: Path, env: Mapping[str, str]) -> tuple[Process, dict[str, int]]:
    ready = data_dir / "worker-ready.json"
    ready.unlink(missing_ok=True)
    process = Process([*PYTHON_TENANTOPS, "--data-dir", str(data_dir), "worker",
                       "--ready-file", str(ready)], env=env, cwd=data_dir.parent)
    deadline = time.monotonic() + READY_SECONDS
    while not ready.exists():
        if process.process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"worker did not start: {''.join(process.stderr_lines)}")
        time.sleep(0.1)
    addresses: dict[str, int] = json.loads(ready.read_text())
    return process, addresses


def emulator_env(data_dir: Path, identity: str, runtime: str,
                 env: Mapping[str, str]) -> dict[str, str]:
    """What ``tenantops emulator env`` prints, as a dict."""
    result = subprocess.run(
        [*PYTHON_TENANTOPS, "--data-dir", str(data_dir), "emulator", "env", "--identity",
         identity, "--runtime", runtime], capture_output=True, text=True, env=dict(env),
        check=True)
    return dict(line.split("=", 1) for line in result.stdout.splitlines())
