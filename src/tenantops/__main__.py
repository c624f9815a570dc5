"""``python -m tenantops`` is the ``tenantops`` command."""

from __future__ import annotations

from tenantops.cli import main

main()
