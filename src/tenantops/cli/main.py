"""The ``tenantops`` command: one Typer app, one module per command group.

Command modules import only Typer and light tenantops modules at the top; what a command needs
beyond that (the API, DBOS, SQLAlchemy, azure-identity, rich) it imports when it runs
(`tests/test_cli_speed.py` keeps it so; ``bench/bench_cli.py`` measures it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tenantops import __version__
from tenantops.cli import adopt as adopt_cmd
from tenantops.cli import audit as audit_cmd
from tenantops.cli import auth as auth_cmd
from tenantops.cli import azure as azure_cmd
from tenantops.cli import call as call_cmd
from tenantops.cli import demo as demo_cmd
from tenantops.cli import drift as drift_cmd
from tenantops.cli import emulator as emulator_cmd
from tenantops.cli import events as events_cmd
from tenantops.cli import fleet as fleet_cmd
from tenantops.cli import runs as runs_cmd
from tenantops.cli import serve as serve_cmd
from tenantops.cli import tenants as tenants_cmd
from tenantops.cli import worker as worker_cmd
from tenantops.cli.context import CliContext

__all__ = ["app", "main"]

app = typer.Typer(
    name="tenantops",
    help="Tenant onboarding for multi-tenant SaaS on Azure, and the identity path done right.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(emulator_cmd.app, name="emulator")
app.command("demo")(demo_cmd.demo)
app.add_typer(auth_cmd.app, name="auth")
app.add_typer(azure_cmd.app, name="azure")
app.command("call")(call_cmd.call)
app.command("serve")(serve_cmd.serve)
app.command("worker")(worker_cmd.worker)
app.command("onboard")(tenants_cmd.onboard)
app.command("offboard")(tenants_cmd.offboard)
app.add_typer(tenants_cmd.app, name="tenants")
app.command("drift")(drift_cmd.drift)
app.command("reconcile")(drift_cmd.reconcile)
app.command("import")(adopt_cmd.import_tenants)
app.add_typer(runs_cmd.app, name="runs")
app.add_typer(events_cmd.app, name="events")
app.add_typer(fleet_cmd.app, name="fleet")
app.command("certificates")(fleet_cmd.certificates)
app.command("audit")(audit_cmd.audit)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tenantops {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Configuration file (default: ./tenantops.toml).",
                     envvar="TENANTOPS_CONFIG"),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Where tenantops keeps its state (default: ./.tenantops)."),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Tenant onboarding for multi-tenant SaaS on Azure."""
    # Read when a command asks for it (settings_of), so '--help' reads no configuration.
    ctx.obj = CliContext(config=config, overrides={"data_dir": data_dir} if data_dir else {})


def main() -> None:
    """The entry point of older installs (``tenantops.cli.main:main``)."""
    app()
