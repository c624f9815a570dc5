"""``tenantops worker``: execute runs (the API only records and enqueues them)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tenantops.cli.context import fail, settings_of
from tenantops.errors import TenantOpsError

__all__ = ["worker"]


def worker(
    ctx: typer.Context,
    ready_file: Annotated[Path | None, typer.Option(
        help="Write the worker's pid and embedded server ports here once it runs.")] = None,
) -> None:
    """Execute onboarding and offboarding runs until Ctrl-C or SIGTERM. Killing it at any
    moment is safe: the next worker continues every run from its first unfinished step."""
    from tenantops.provisioning import worker as runner

    settings = settings_of(ctx)
    typer.echo(f"tenantops worker: catalog and workflows under {settings.data_dir} "
               "(see catalog.url, engine.system_database_url)", err=True)
    try:
        runner.serve(settings, ready_file=ready_file)
    except TenantOpsError as exc:
        fail(exc)
