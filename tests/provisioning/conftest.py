"""An engine per test, on fresh SQLite files in the test's own folder (as DBOS recommends:
DBOS is a process-wide singleton and a shared file would let one test's threads reach the
next test's database)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tenantops.config import Settings
from tenantops.provisioning import Engine, TenantSpec
from tenantops.provisioning.engine import DurableWaits
from tenantops.provisioning.providers.base import Middleware

EngineFactory = Callable[..., Engine]


def fast_settings(data_dir: Path, **overrides: object) -> Settings:
    """Settings for tests: embedded everything, free ports, short polls and backoffs; dev
    mode, so custom domains may be under .test (RFC 6761)."""
    values: dict[str, object] = {
        "data_dir": data_dir,
        "dev_mode": True,
        "engine": {"queue_polling_seconds": 0.05, "retry_initial_seconds": 0.01,
                   "retry_max_seconds": 0.05, "worker_concurrency": 8},
        "providers": {"dns": {"port": 0, "propagation_poll_seconds": 0.05},
                      "webhost": {"port": 0, "app_port": 0}},
    }
    return Settings(**_merged(values, overrides))  # type: ignore[arg-type]


def _merged(base: dict[str, object], overrides: dict[str, object]) -> dict[str, object]:
    merged = dict(base)
    for key, value in overrides.items():
        current = merged.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            merged[key] = _merged(current, value)
        else:
            merged[key] = value
    return merged


def spec_for(slug: str, **changes: str) -> TenantSpec:
    fields = {"slug": slug, "display_name": f"{slug.title()} Ltd",
              "custom_domain": f"app.{slug}.test", "admin_email": f"admin@{slug}.test"}
    return TenantSpec(**{**fields, **changes})


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return fast_settings(tmp_path / "data")


@pytest.fixture
def make_engine(tmp_path: Path) -> Iterator[EngineFactory]:
    """Start an engine with optional middleware, wait seam and setting overrides; stopped
    after."""
    started: list[Engine] = []

    def make(*middleware: Middleware, waits: DurableWaits | None = None,
             **overrides: object) -> Engine:
        engine = Engine(fast_settings(tmp_path / "data", **overrides), middleware=middleware,
                        waits=waits)
        engine.start()
        started.append(engine)
        return engine

    yield make
    for engine in started:
        engine.stop()


@pytest.fixture
def engine(make_engine: EngineFactory) -> Engine:
    return make_engine()


def settled_workflows(engine: Engine, prefix: str, timeout: float = 60) -> dict[str, Any]:
    """DBOS's workflows under ``prefix`` once none is still running, by workflow ID.

    A run's record is final when its last step is checkpointed; DBOS writes the workflow's
    own status a moment later, when the function returns. A test that reads DBOS right
    after ``engine.wait`` would race that write, so it waits for it here."""
    deadline = time.monotonic() + timeout
    while True:
        workflows = {w.workflow_id: w for w in engine._dbos().list_workflows(
            workflow_id_prefix=prefix, load_input=False)}
        if not any(w.status in ("PENDING", "ENQUEUED") for w in workflows.values()):
            return workflows
        assert time.monotonic() < deadline, (
            f"DBOS workflows under {prefix} settled within {timeout:.0f} s: "
            f"{ {wid: w.status for wid, w in workflows.items()} }")
        time.sleep(0.05)
