"""The README's Examples run as written: their shell blocks, in order, in one bash session,
with only the ports moved (through TENANTOPS_* variables) so the test can run beside others."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import clean_environment

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"


def example_blocks() -> list[str]:
    """The ```sh blocks of the README's "Examples" section, in order."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("\n## Examples"):]
    section = section[:section.index("\n## ", 1)]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)


def free_ports(count: int) -> list[int]:
    sockets = []
    for _ in range(count):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sockets.append(sock)
    ports = [s.getsockname()[1] for s in sockets]
    for sock in sockets:
        sock.close()
    return ports


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    """A folder like the quick start's: ``.venv`` is the venv running these tests. Whatever
    the blocks leave running is stopped afterwards."""
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    yield tmp_path
    state = tmp_path / ".tenantops" / "serve.json"
    if state.exists():
        pid = int(json.loads(state.read_text())["pid"])
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_the_readme_examples_run_as_written_in_one_terminal(workdir: Path) -> None:
    blocks = example_blocks()
    assert len(blocks) >= 4
    assert blocks[0].startswith(". .venv/bin/activate")
    api, emulator, mi, dns, edge, app = free_ports(6)
    env = clean_environment({
        "TENANTOPS_API__PORT": str(api), "TENANTOPS_API__URL": f"http://127.0.0.1:{api}/api",
        "TENANTOPS_EMULATOR__PORT": str(emulator), "TENANTOPS_EMULATOR__MI_PORT": str(mi),
        "TENANTOPS_PROVIDERS__DNS__PORT": str(dns),
        "TENANTOPS_PROVIDERS__WEBHOST__PORT": str(edge),
        "TENANTOPS_PROVIDERS__WEBHOST__APP_PORT": str(app),
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    })
    script = "set -euo pipefail\n" + "\n".join(blocks)

    done = subprocess.run(["bash", "-c", script], cwd=workdir, env=env, capture_output=True,
                          text=True, timeout=600, stdin=subprocess.DEVNULL)

    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-6000:]
    assert f"tenantops API  http://127.0.0.1:{api}/api" in out
    assert f"dashboard      http://127.0.0.1:{api}/" in out
    assert "--identity ops-admin" in out
    assert re.search(r"run \w+: succeeded", out), out[-4000:]
    assert "acme" in out
    assert "portal.acme.test" in out
    assert "asked for: name=portal.acme.test  type=CNAME" in out  # runs show --tenant
    assert "; requested by aa-onboarding (app " in out
    assert "exit code 3: ops-reader may read, not offboard" in out
    assert "Tenants.Delete" in out
    assert re.search(r"offboard acme: run \w+|run \w+: succeeded", out)
    assert "exit code 1" in out
    assert "https://management.core.windows.net/" in out
    assert "stopped tenantops serve" in out
    assert "eyJ" not in out  # no token printed except by 'auth token' without --decode
    assert not (workdir / ".tenantops" / "serve.json").exists()
