"""``tenantops demo``: start everything locally and show what a person can do with it.

Until the tenants API lands (issue 5) the demo runs the emulator and prints the identity path
of the original problem: a wrong-audience token and a right-audience token, side by side.
"""

from __future__ import annotations

import json
import shutil
import time
from typing import Annotated

import httpx
import jwt
import typer

from tenantops.cli.context import fail, settings_of
from tenantops.emulator.directory import API_CLIENT_ID, default_directory
from tenantops.emulator.runtime_env import runtime_env
from tenantops.emulator.server import EmulatorServer
from tenantops.errors import TenantOpsError

__all__ = ["demo"]

ARM = "https://management.core.windows.net/"


def demo(
    ctx: typer.Context,
    exit_after: Annotated[
        bool, typer.Option("--exit", help="Stop after the walkthrough instead of serving.")
    ] = False,
    clean: Annotated[
        bool, typer.Option("--clean", help="Start from an empty data folder.")
    ] = False,
) -> None:
    """Start the emulator and walk through the identity path a runbook takes."""
    settings = settings_of(ctx)
    data_dir = settings.data_dir / "demo"
    if clean and data_dir.exists():
        shutil.rmtree(data_dir)
    directory = default_directory()
    try:
        server = EmulatorServer(directory, data_dir, host="127.0.0.1", port=0, mi_port=0)
        info = server.start()
    except TenantOpsError as exc:
        fail(exc)
    try:
        env = runtime_env(directory, data_dir / "emulator", info, "aa-onboarding", "automation")
        typer.echo(f"Emulator running: authority {info.authority}/{info.tenant_id}, "
                   f"managed identity {info.mi_url}\n")
        typer.echo("An Azure Automation job with the identity 'aa-onboarding' asks its "
                   "managed-identity endpoint for tokens:\n")
        for label, resource in (("wrong", ARM), ("right", API_CLIENT_ID)):
            response = httpx.get(
                env["IDENTITY_ENDPOINT"],
                params={"resource": resource, "api-version": "2019-08-01"},
                headers={"X-IDENTITY-HEADER": env["IDENTITY_HEADER"]},
            )
            response.raise_for_status()
            claims = jwt.decode(response.json()["access_token"],
                                options={"verify_signature": False})
            shown = {k: claims.get(k) for k in ("aud", "iss", "appid", "roles")}
            typer.echo(f"  resource={resource} ({label} for the tenantops API)")
            typer.echo(f"    -> {json.dumps(shown)}")
        typer.echo("\nThe API accepts only the second token: its audience is the API's client ID "
                   f"{API_CLIENT_ID}, and it carries the role Tenants.Write.\n")
        typer.echo("Try it yourself (in another shell, while this keeps running):")
        typer.echo(f"  tenantops --data-dir {data_dir} emulator show")
        typer.echo(f"  tenantops --data-dir {data_dir} emulator env --identity aa-onboarding "
                   "--runtime automation")
        typer.echo(f"  curl -s -H 'X-IDENTITY-HEADER: <IDENTITY_HEADER>' "
                   f"'{env['IDENTITY_ENDPOINT']}?resource={API_CLIENT_ID}&api-version=2019-08-01'")
        if exit_after:
            return
        typer.echo("\nServing until Ctrl-C.")
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
