"""Keeps the ``integration`` mark honest: a test without it that starts a process, or reaches
one of the shared servers (PostgreSQL, BIND, Knot, Keycloak, the SMTP sink), fails at once,
naming what it tried. So ``pytest -m "not integration"`` is a fast inner loop that needs no
server, and the mark is never forgotten.

`tests/conftest.py` records the running test (`running`) and installs `audit` as an audit
hook (PEP 578: subprocess.Popen and socket.connect are audited events); helpers that hand out
a shared server's address call `require_integration` (a libpq connection is not audited).
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import pytest

__all__ = ["audit", "require_integration", "running"]

running: list[pytest.Item] = []
"""The test being run (set, then emptied, by tests/conftest.py)."""

_SERVICE_PORTS = ("TENANTOPS_TEST_BIND_PORT", "TENANTOPS_TEST_KNOT_PORT",
                  "TENANTOPS_TEST_SMTP_PORT")
_SERVICE_URLS = ("TENANTOPS_TEST_POSTGRES_URL", "TENANTOPS_TEST_KEYCLOAK_URL")


def _service_ports() -> frozenset[int]:
    ports = {int(os.environ[name]) for name in _SERVICE_PORTS
             if os.environ.get(name, "").isdigit()}
    for name in _SERVICE_URLS:
        port = urlsplit(os.environ.get(name, "")).port
        if port:
            ports.add(port)
    return frozenset(ports)


_PORTS = _service_ports()


def _unmarked() -> pytest.Item | None:
    item = running[0] if running else None
    if item is None or item.get_closest_marker("integration") is not None:
        return None
    return item


def require_integration(what: str) -> None:
    """Fail the running test unless it is marked ``integration``: it needs ``what``."""
    item = _unmarked()
    if item is not None:
        pytest.fail(f"{item.nodeid} needs {what} but is not marked integration; add "
                    "@pytest.mark.integration (or a module-level pytestmark)", pytrace=False)


def audit(event: str, args: tuple[object, ...]) -> None:
    if event not in ("subprocess.Popen", "socket.connect"):
        return
    item = _unmarked()
    if item is None:
        return
    if event == "subprocess.Popen":
        raise RuntimeError(f"{item.nodeid} starts a process ({args[0]!r}) but is not marked "
                           "integration; add @pytest.mark.integration")
    address = args[1]
    if (isinstance(address, tuple) and len(address) >= 2 and address[1] in _PORTS
            and str(address[0]).startswith(("127.", "::1", "localhost"))):
        raise RuntimeError(f"{item.nodeid} connects to the shared server at {address[0]}:"
                           f"{address[1]} but is not marked integration; add "
                           "@pytest.mark.integration")
