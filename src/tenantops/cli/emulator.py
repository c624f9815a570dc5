"""``tenantops emulator``: a local Entra ID and the managed-identity endpoints of Azure runtimes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import typer

from tenantops.cli.context import fail, settings_of
from tenantops.config import Settings
from tenantops.emulator.directory import Directory, default_directory, describe, load_directory
from tenantops.emulator.keys import KeyStore
from tenantops.emulator.runtime_env import RUNTIMES, runtime_env
from tenantops.emulator.server import EmulatorServer, read_info
from tenantops.errors import TenantOpsError

__all__ = ["app"]

app = typer.Typer(help="Run and inspect the local Entra ID + managed-identity emulator.",
                  invoke_without_command=True)

Runtime = Literal["app-service", "automation", "imds", "msi", "msi-legacy", "azure-ml", "arc"]


def _directory(settings: Settings, path: Path | None) -> Directory:
    chosen = path or settings.emulator.directory
    return load_directory(chosen) if chosen else default_directory()


@app.callback()
def run(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Address to bind (loopback by default).")] = None,
    port: Annotated[int | None, typer.Option(help="HTTPS port of the authority (0: any).")] = None,
    mi_port: Annotated[
        int | None, typer.Option(help="HTTP port of the managed-identity endpoints (0: any).")
    ] = None,
    directory: Annotated[
        Path | None, typer.Option(help="Directory TOML file (default: the built-in one).")
    ] = None,
    allow_remote: Annotated[
        bool, typer.Option("--allow-remote", help="Allow a non-loopback address (unsafe).")
    ] = False,
) -> None:
    """Start the emulator (when no subcommand is given) and keep serving until Ctrl-C."""
    if ctx.invoked_subcommand is not None:
        return
    settings = settings_of(ctx)
    cfg = settings.emulator
    try:
        server = EmulatorServer(
            _directory(settings, directory), settings.data_dir,
            host=host or cfg.host, port=cfg.port if port is None else port,
            mi_port=cfg.mi_port if mi_port is None else mi_port,
            allow_remote=allow_remote or cfg.allow_remote,
            key_grace_seconds=cfg.key_grace_hours * 3600)
        typer.echo("tenantops emulator: a LOCAL stand-in for Microsoft Entra ID. Its tokens are "
                   "for development and tests only.", err=True)

        def announce() -> None:
            info = server.info
            typer.echo(f"authority        {info.authority}/{info.tenant_id}")
            typer.echo(f"managed identity {info.mi_url}")
            typer.echo(f"tenant           {info.tenant_id}")
            typer.echo(f"CA bundle        {info.ca_bundle}")
            typer.echo("try: tenantops emulator env --identity aa-onboarding --runtime automation")

        server.serve(on_ready=announce)
    except TenantOpsError as exc:
        fail(exc)
    except KeyboardInterrupt:
        pass


@app.command()
def show(
    ctx: typer.Context,
    directory: Annotated[Path | None, typer.Option(help="Directory TOML file.")] = None,
) -> None:
    """Print the directory (apps, identities, users, roles) as JSON; no secrets."""
    settings = settings_of(ctx)
    try:
        info = read_info(settings.data_dir)
        authority = info.authority if info else (
            f"https://{settings.emulator.host}:{settings.emulator.port}")
        typer.echo(json.dumps(describe(_directory(settings, directory), authority), indent=2))
    except TenantOpsError as exc:
        fail(exc)


@app.command()
def env(
    ctx: typer.Context,
    identity: Annotated[str, typer.Option(help="Managed identity name (see 'emulator show').")],
    runtime: Annotated[Runtime, typer.Option(help=f"Runtime to act as: {', '.join(RUNTIMES)}.")],
    directory: Annotated[Path | None, typer.Option(help="Directory TOML file.")] = None,
) -> None:
    """Print the KEY=VALUE lines a process needs to act as IDENTITY in RUNTIME."""
    settings = settings_of(ctx)
    try:
        info = read_info(settings.data_dir)
        if info is None:
            fail(RuntimeError(
                f"no running emulator found in {settings.data_dir}; start one with "
                "'tenantops emulator' (same --data-dir) first"))
        lines = runtime_env(_directory(settings, directory), settings.data_dir / "emulator",
                            info, identity, runtime)
        typer.echo("\n".join(f"{k}={v}" for k, v in lines.items()))
    except TenantOpsError as exc:
        fail(exc)


@app.command("rotate-keys")
def rotate_keys(ctx: typer.Context) -> None:
    """Make a new signing key active; the old one stays in the JWKS for the grace period."""
    settings = settings_of(ctx)
    store = KeyStore(settings.data_dir / "emulator" / "keys",
                     grace_seconds=settings.emulator.key_grace_hours * 3600)
    old = store.active().kid
    new = store.rotate().kid
    typer.echo(f"signing key rotated: {old} -> {new} (old key published for "
               f"{settings.emulator.key_grace_hours:g} h)")
