"""``python -m tenantops.provisioning.worker``: execute runs until SIGTERM or SIGINT.

Starts the engine (migrating the catalog, launching DBOS, recovering this executor's
unfinished workflows, starting the embedded servers) and waits. Killing it at any moment is
safe: the next worker continues every run from its first unfinished step.

    python -m tenantops.provisioning.worker [--config tenantops.toml] [--ready-file PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from tenantops.config import Settings, load_settings
from tenantops.errors import TenantOpsError
from tenantops.log import configure_logging
from tenantops.provisioning.engine import Engine
from tenantops.provisioning.providers.base import Middleware

__all__ = ["engine_addresses", "main", "serve"]


def serve(
    settings: Settings,
    *,
    middleware: Sequence[Middleware] = (),
    ready_file: Path | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Run an engine until ``stop`` is set (or SIGTERM/SIGINT arrives, on the main thread).

    ``ready_file`` receives ``{"pid": ..., "dns_port": ..., "edge_port": ...}`` once the
    engine runs, so a supervisor (or a test) knows when and where to reach it.
    """
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        def request_stop(_signum: int, _frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
    engine = Engine(settings, middleware=middleware)
    engine.start()
    try:
        if ready_file is not None:
            ready_file.parent.mkdir(parents=True, exist_ok=True)
            temporary = ready_file.with_name(f".{ready_file.name}.tmp")
            temporary.write_text(json.dumps(engine_addresses(engine)))
            temporary.replace(ready_file)
        stop.wait()
    finally:
        engine.stop()


def engine_addresses(engine: Engine) -> dict[str, int | None]:
    """The process ID and the ports the engine's embedded servers bound (None: not run)."""
    ports: dict[str, int | None] = {"pid": os.getpid(), "dns_port": None, "edge_port": None}
    for name, service in (("dns_port", getattr(engine.providers.dns, "responder", None)),
                          ("edge_port", getattr(engine.providers.webhost, "edge", None))):
        try:
            ports[name] = int(service.port) if service is not None else None
        except RuntimeError:  # built but not started (serve_embedded is off)
            ports[name] = None
    return ports


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tenantops.provisioning.worker",
                                     description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--config", type=Path, help="TOML settings file (default: "
                        "tenantops.toml or TENANTOPS_CONFIG)")
    parser.add_argument("--ready-file", type=Path, help="write the worker's ports here once "
                        "it is running")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
        configure_logging(settings.log_level)
        serve(settings, ready_file=args.ready_file)
    except TenantOpsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
