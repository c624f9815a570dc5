"""What every command shares: the settings, and one way to report a failure."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer

from tenantops.errors import TenantOpsError
from tenantops.log import redact

if TYPE_CHECKING:
    from tenantops.config import Settings

__all__ = ["CliContext", "fail", "settings_of"]


@dataclass
class CliContext:
    """What the root options chose. ``settings`` is read when a command first asks for it
    (so ``--help`` reads no configuration): `load` applies ``config`` and ``overrides``."""

    settings: Settings | None = None
    config: Path | None = None
    overrides: dict[str, object] = field(default_factory=dict)

    def load(self) -> Settings:
        """The settings; a configuration error is printed and exits 1."""
        if self.settings is None:
            from tenantops.config import load_settings
            from tenantops.log import configure_logging

            try:
                self.settings = load_settings(self.config, **self.overrides)
            except TenantOpsError as exc:
                fail(exc)
            configure_logging(self.settings.log_level)
        return self.settings


def settings_of(ctx: typer.Context) -> Settings:
    obj = ctx.find_root().obj
    if not isinstance(obj, CliContext):
        raise TypeError("the tenantops command's context is missing (run it through "
                        "tenantops.cli.main.app)")
    return obj.load()


def fail(error: Exception, code: int = 1) -> NoReturn:
    """Print ``error`` (redacted) to stderr and exit with ``code``."""
    typer.echo(f"error: {redact(str(error))}", err=True)
    raise typer.Exit(code)
