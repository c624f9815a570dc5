"""A worker on the self-hosted providers, for the crash test to SIGKILL and restart.

    python -m tests.provisioning.providers.crash_worker SETTINGS.json CALLS.log

Runs workflows until killed. Every provider call it completes is appended to CALLS.log as
one JSON line (run, step, verb, resource, changed), written and flushed before the call
returns to the engine.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from tenantops.catalog import Catalog
from tenantops.config import Settings
from tenantops.provisioning.engine import Engine, current_step
from tenantops.provisioning.providers.base import Middleware, Outcome, ProviderCall, Ready

from .selfhosted import selfhosted_providers


def call_log(path: Path) -> Middleware:
    lock = threading.Lock()

    def record(call: ProviderCall, proceed: Callable[[], Outcome]) -> Outcome:
        outcome = proceed()
        step = current_step()
        line = json.dumps({
            "run": step.run_id if step else None, "step": step.step if step else None,
            "verb": call.verb, "resource": call.resource.key,
            "changed": isinstance(outcome, Ready) and outcome.changed,
            "pending": not isinstance(outcome, Ready),
        })
        with lock:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, (line + "\n").encode())
            finally:
                os.close(fd)
        return outcome

    return record


def main(argv: list[str]) -> None:
    settings = Settings.model_validate_json(Path(argv[1]).read_text())
    catalog = Catalog.from_settings(settings)
    providers = selfhosted_providers(settings, catalog)
    engine = Engine(settings, catalog=catalog, providers=providers,
                    middleware=[call_log(Path(argv[2]))])
    engine.start()
    print("worker started", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main(sys.argv)
