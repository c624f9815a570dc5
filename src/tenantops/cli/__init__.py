"""The ``tenantops`` command line.

`main` is the entry point. It answers ``tenantops --version`` before importing anything else,
and the command modules import what a command needs (the API app, DBOS, SQLAlchemy, the Azure
SDKs) inside the command, so ``--help`` and the API commands start in a fraction of a second.
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> None:
    """Run ``tenantops`` with ``sys.argv``."""
    if sys.argv[1:] == ["--version"]:
        from tenantops import __version__

        sys.stdout.write(f"tenantops {__version__}\n")
        return
    from tenantops.cli.main import app

    app()
