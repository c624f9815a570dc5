"""A worker whose organization calls are requests to a rate-limited provider server: the real
worker (`tenantops.provisioning.worker.serve`) with `ServerCalls` middleware.

    python -m tests.provisioning.budget_worker CONFIG READY_FILE SERVER_URL WORKER_NAME
"""

from __future__ import annotations

import sys
from pathlib import Path

from tenantops.config import load_settings
from tenantops.provisioning.worker import serve

from .rate_limited import ServerCalls


def main() -> None:
    config, ready_file = Path(sys.argv[1]), Path(sys.argv[2])
    url, name = sys.argv[3], sys.argv[4]
    serve(load_settings(config), middleware=[ServerCalls(url, {"organization"}, worker=name)],
          ready_file=ready_file)


if __name__ == "__main__":
    main()
