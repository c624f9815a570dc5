"""The worker the crash tests kill: the real worker (`tenantops.provisioning.worker.serve`)
with a call log of every provider call and a short delay per call, so that kills land in
the middle of runs.

    python -m tests.provisioning.crash_worker CONFIG CALL_LOG READY_FILE
"""

from __future__ import annotations

import sys
from pathlib import Path

from tenantops.config import load_settings
from tenantops.provisioning.worker import serve

from .middleware import CallLog, Delay


def main() -> None:
    config, call_log, ready_file = (Path(arg) for arg in sys.argv[1:4])
    serve(load_settings(config), middleware=[CallLog(call_log), Delay(0.01, 0.06)],
          ready_file=ready_file)


if __name__ == "__main__":
    main()
