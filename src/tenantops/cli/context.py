"""What every command shares: the settings, and one way to report a failure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NoReturn

import typer

from tenantops.config import Settings
from tenantops.log import redact

__all__ = ["CliContext", "fail", "settings_of"]


@dataclass
class CliContext:
    settings: Settings


def settings_of(ctx: typer.Context) -> Settings:
    obj = ctx.find_root().obj
    assert isinstance(obj, CliContext)
    return obj.settings


def fail(error: Exception, code: int = 1) -> NoReturn:
    """Print ``error`` (redacted) to stderr and exit with ``code``."""
    typer.echo(f"error: {redact(str(error))}", err=True)
    raise typer.Exit(code)
