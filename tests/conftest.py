"""Fixtures shared by the whole suite: a running emulator with the built-in directory; and the
guard that keeps the ``integration`` mark honest (`tests.support.integration`)."""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from tenantops.emulator.directory import Directory, default_directory
from tenantops.emulator.server import EmulatorInfo, EmulatorServer
from tests.support import integration

sys.addaudithook(integration.audit)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[
        None, object, object]:
    integration.running[:] = [item]
    try:
        return (yield)
    finally:
        integration.running.clear()


@pytest.fixture(autouse=True)
def logging_as_it_was() -> Iterator[None]:
    """Undo a test's `configure_logging` (an in-process CLI or worker calls it): its handler
    holds the stderr pytest captured for that test, closed once the test ends, and a later
    test's log line would hit "I/O operation on closed file"."""
    names = ("tenantops", "uvicorn", "uvicorn.error", "uvicorn.access")
    saved = {name: (logging.getLogger(name).handlers[:], logging.getLogger(name).level,
                    logging.getLogger(name).propagate) for name in names}
    yield
    for name, (handlers, level, propagate) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


@pytest.fixture(scope="session", autouse=True)
def private_user_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The CLI remembers API audiences in the user's cache folder (platformdirs honours
    XDG_CACHE_HOME); the suite, and the tenantops processes it starts, keep theirs apart."""
    patch = pytest.MonkeyPatch()
    patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("user-cache")))
    yield
    patch.undo()


@pytest.fixture(scope="session")
def directory() -> Directory:
    return default_directory()


@pytest.fixture(scope="session")
def emulator_server(
    tmp_path_factory: pytest.TempPathFactory, directory: Directory
) -> Iterator[EmulatorServer]:
    """One emulator for the session (loopback, free ports, its own data folder)."""
    server = EmulatorServer(directory, tmp_path_factory.mktemp("emulator"))
    server.start()
    yield server
    # Clients that were never closed (credentials' pools) hold TLS connections open, and a
    # graceful TLS shutdown waits for them; collecting them first lets the server stop at once.
    gc.collect()
    server.stop()


@pytest.fixture(scope="session")
def emulator(emulator_server: EmulatorServer) -> EmulatorInfo:
    return emulator_server.info


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"
