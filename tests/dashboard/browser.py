"""A real browser on the real app: Debian's Chromium driven by Playwright, the API + dashboard
served by uvicorn on a loopback port, signing in through the session emulator's page.

Screenshots go to ``test-output/screenshots/`` (gitignored) for people to look at.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI

from tests.support.processes import READY_SECONDS

__all__ = [
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "SCREENSHOTS",
    "require_chromium",
    "serve_in_thread",
]

CHROMIUM = Path("/usr/bin/chromium")
# No network beyond loopback, nothing that phones home, no sandbox (root in a container).
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"


def require_chromium() -> Path:
    """Debian's Chromium (scripts/test installs it); Playwright's own download cannot work
    here, so the tests never fall back to it."""
    if not CHROMIUM.exists():
        found = shutil.which("chromium")
        if found is None:
            pytest.fail("Chromium is not installed: apt-get install -y chromium "
                        "(scripts/test does it)")
        return Path(found)
    return CHROMIUM


@contextmanager
def serve_in_thread(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on",
                            server_header=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name="dashboard-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + READY_SECONDS
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"uvicorn did not start serving the dashboard within "
                               f"{READY_SECONDS:g} s")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
