"""``tenantops runs show|retry|cancel``."""

from __future__ import annotations

from typing import Annotated

import typer

from tenantops.cli.client import (
    EXIT_INVALID,
    EXIT_NOT_FOUND,
    ApiUrlOption,
    IdentityOption,
    JsonOption,
    SourceOption,
    api_session,
    print_json,
)
from tenantops.cli.progress import FINISHED, exit_for_run, step_details, step_line
from tenantops.cli.tenants import TimeoutOption

__all__ = ["app"]

app = typer.Typer(help="Show, retry and cancel runs.", no_args_is_help=True)

RunId = Annotated[str, typer.Argument(help="The run's ID.")]


@app.command("show")
def show_run(
    ctx: typer.Context,
    run_id: Annotated[str | None, typer.Argument(
        help="The run's ID (or --tenant for a tenant's latest run).")] = None,
    tenant: Annotated[str | None, typer.Option(
        "--tenant", help="Show this tenant's latest run.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow until it finishes.")] = False,
    timeout: TimeoutOption = 600.0,
    api_url: ApiUrlOption = None,
    identity: IdentityOption = None,
    source: SourceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a run's steps: status, what each asked for and produced, attempts, timings,
    errors. Exit code 1 if it failed."""
    if (run_id is None) == (tenant is None):
        typer.echo("error: name a run ID or --tenant SLUG (one of the two)", err=True)
        raise typer.Exit(EXIT_INVALID)
    with api_session(ctx, api_url, identity, source) as api:
        if run_id is None:
            runs = api.call("GET", f"/tenants/{tenant}")["runs"]  # newest first
            if not runs:
                typer.echo(f"error: tenant {tenant!r} has no run", err=True)
                raise typer.Exit(EXIT_NOT_FOUND)
            run_id = str(runs[0]["id"])
        run = api.call("GET", f"/runs/{run_id}")
        if wait and run["status"] not in FINISHED:
            run = api.follow(run, timeout=timeout, quiet=as_json)
        elif not as_json:
            took = run.get("duration_seconds")
            typer.echo(f"{run['kind']} {run['tenant']}: run {run['id']} {run['status']}"
                       + (f", {took:.1f}s" if took is not None else "")
                       + (f", retried {run['retries']}x" if run.get("retries") else "")
                       + f"; requested by {run['requested_by']}")
            for step in run["steps"]:
                typer.echo(step_line(step))
                for line in step_details(step):
                    typer.echo(line)
        hint = api.idle_hint(run)
    if as_json:
        print_json(run)
    if hint:
        typer.echo(f"hint: {hint}", err=True)
    if run["status"] in ("failed", "cancelled"):
        raise typer.Exit(1)


def _act(ctx: typer.Context, run_id: str, action: str, wait: bool, timeout: float,
         api_url: str | None, identity: str | None, source: str | None, as_json: bool) -> None:
    with api_session(ctx, api_url, identity, source) as api:
        run = api.call("POST", f"/runs/{run_id}/{action}")
        if wait and action == "retry":
            run = api.follow(run, timeout=timeout, quiet=as_json)
            exit_for_run(run, as_json, api.idle_hint(run))
            return
    if as_json:
        print_json(run)
    else:
        typer.echo(f"run {run['id']}: {run['status']}")


@app.command("retry")
def retry_run(
    ctx: typer.Context, run_id: RunId,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Follow the run.")] = True,
    timeout: TimeoutOption = 600.0,
    api_url: ApiUrlOption = None, identity: IdentityOption = None, source: SourceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Continue a failed run from its failed step, once the cause is fixed."""
    _act(ctx, run_id, "retry", wait, timeout, api_url, identity, source, as_json)


@app.command("cancel")
def cancel_run(
    ctx: typer.Context, run_id: RunId,
    api_url: ApiUrlOption = None, identity: IdentityOption = None, source: SourceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Stop a pending or running run before its next step."""
    _act(ctx, run_id, "cancel", False, 0.0, api_url, identity, source, as_json)
