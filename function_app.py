"""Azure Functions entry point (Python v2 model): the tenantops API and its worker.

The Functions host imports this module and indexes ``app``. Configuration comes from app
settings (``TENANTOPS_*`` environment variables), as everywhere else; see docs/azure.md.
"""

from __future__ import annotations

from tenantops.hosting import build_function_app

app = build_function_app()
