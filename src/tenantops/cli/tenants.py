"""``tenantops onboard``, ``offboard`` and ``tenants list|show|update|suspend|resume``:
through the API, so they work against a remote deployment with whatever identity the
environment provides. Every change can be previewed first (``--dry-run``, computed by the
API from the tenant as it is)."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import typer

from tenantops.cli.client import (
    EXIT_INVALID,
    Api,
    ApiUrlOption,
    IdentityOption,
    JsonOption,
    SourceOption,
    api_session,
    print_json,
)
from tenantops.cli.context import fail, settings_of
from tenantops.cli.events import history_lines
from tenantops.cli.progress import exit_for_run
from tenantops.errors import TenantOpsError

__all__ = ["app", "move", "offboard", "onboard", "resume", "suspend", "update"]

app = typer.Typer(help="List, show, change, suspend and resume tenants.", no_args_is_help=True)

WaitOption = Annotated[bool, typer.Option("--wait/--no-wait",
                                          help="Follow the run until it finishes.")]
TimeoutOption = Annotated[float, typer.Option("--timeout", help="Seconds --wait waits.")]


def onboard(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="Tenant slug: lowercase DNS label, 3-32 chars.")],
    domain: Annotated[str, typer.Option("--domain", help="The tenant's custom domain.")],
    admin_email: Annotated[str, typer.Option("--admin-email", help="First administrator.")],
    plan: Annotated[str, typer.Option("--plan", help="free, standard or premium.")] = "standard",
    display_name: Annotated[str | None, typer.Option("--display-name")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="KEY=VALUE, repeatable.")] = None,
    wait: WaitOption = True,
    timeout: TimeoutOption = 600.0,
    dry_run: Annotated[bool, typer.Option("--dry-run",
                                          help="Print the plan; change nothing.")] = False,
    api_url: ApiUrlOption = None,
    identity: IdentityOption = None,
    source: SourceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Onboard a tenant and show each step's progress. Exit codes: 0 succeeded, 1 failed,
    2 invalid input, 3 not allowed, 5 conflict, 6 unreachable or timed out."""
    tags = _tags(tag)
    spec = {"slug": slug, "display_name": display_name or slug, "custom_domain": domain,
            "plan": plan, "admin_email": admin_email, "tags": tags}
    if dry_run:
        _preview(ctx, spec, as_json)
        return
    if not as_json:  # at once: getting a token and the API's answer may take a moment
        typer.echo(f"onboard {slug}: asking {api_url or settings_of(ctx).api.url}")
    with api_session(ctx, api_url, identity, source) as api:
        accepted = api.call("POST", "/tenants", body=spec)
        run = accepted["run"]
        if not wait:
            print_json(accepted) if as_json else typer.echo(
                f"run {run['id']} {run['status']}: follow it with "
                f"'tenantops runs show {run['id']} --wait'")
            return
        run = api.follow(run, timeout=timeout, quiet=as_json)
        hint = api.idle_hint(run)
    exit_for_run(run, as_json, hint)


def _tags(items: list[str] | None) -> dict[str, str]:
    tags: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            typer.echo(f"error: --tag {item!r}: expected KEY=VALUE", err=True)
            raise typer.Exit(EXIT_INVALID)
        tags[key] = value
    return tags


def _show_preview(preview: dict[str, Any]) -> None:
    typer.echo(f"{preview['kind']} {preview['tenant']} (dry run: nothing was changed):")
    for name, change in preview.get("diff", {}).items():
        typer.echo(f"  {name}: {change.get('from')!r} -> {change.get('to')!r}")
    signs = {"create": "+", "update": "~", "delete": "-", "check": "?"}
    for change in preview["changes"]:
        typer.echo(f"  {signs.get(change['action'], ' ')} {change['action']:<9} "
                   f"{change['provider']:<22} {change['resource']}")


def _change(ctx: typer.Context, method: str, path: str, body: dict[str, Any], *,
            dry_run: bool, wait: bool, timeout: float, as_json: bool, nothing: str,
            api_url: str | None, identity: str | None, source: str | None) -> None:
    """Ask for a change of a tenant (update, suspend, resume, move): with ``dry_run`` show
    the plan the API computes; else open the run and follow it like `_follow_change`."""
    with api_session(ctx, api_url, identity, source) as api:
        if dry_run:
            preview = api.call(method, path, body=body, params={"dry_run": "true"})
            print_json(preview) if as_json else _show_preview(preview)
            return
        accepted = api.call(method, path, body=body)
        _follow_change(api, accepted, wait=wait, timeout=timeout, as_json=as_json,
                       nothing=nothing)


def _follow_change(api: Api, accepted: dict[str, Any], *, wait: bool, timeout: float,
                   as_json: bool, nothing: str) -> None:
    run = accepted.get("run")
    if run is None:
        print_json(accepted) if as_json else typer.echo(nothing)
        return
    if not wait:
        print_json(accepted) if as_json else typer.echo(
            f"run {run['id']} {run['status']}: follow it with "
            f"'tenantops runs show {run['id']} --wait'")
        return
    run = api.follow(run, timeout=timeout, quiet=as_json)
    exit_for_run(run, as_json, api.idle_hint(run))


@app.command("update")
def update(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="The tenant to change.")],
    domain: Annotated[str | None, typer.Option(
        "--domain", help="New custom domain; the previous one keeps serving for the grace "
        "period, then is removed.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="New display name.")] = None,
    admin_email: Annotated[str | None, typer.Option(
        "--admin-email", help="Invite this administrator.")] = None,
    plan: Annotated[str | None, typer.Option("--plan", help="free, standard or premium.")] = None,
    tag: Annotated[list[str] | None, typer.Option(
        "--tag", help="KEY=VALUE to set, repeatable.")] = None,
    remove_tag: Annotated[list[str] | None, typer.Option(
        "--remove-tag", help="KEY to remove, repeatable.")] = None,
    remove_previous_admin: Annotated[bool, typer.Option(
        "--remove-previous-admin", help="With --admin-email: remove the previous one.")] = False,
    grace: Annotated[float | None, typer.Option(
        "--grace", help="Seconds the previous domain keeps serving (default: the setting "
        "domains.change_grace_seconds).")] = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Why; kept in the history.")
                      ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run",
                                          help="Show the diff and the plan; change nothing.")
                       ] = False,
    wait: WaitOption = True,
    timeout: TimeoutOption = 600.0,
    api_url: ApiUrlOption = None,
    identity: IdentityOption = None,
    source: SourceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Change a tenant. Exit codes: 0 succeeded (or nothing to change), 1 failed, 2 invalid
    input, 3 not allowed, 4 no such tenant, 5 conflict (a run in progress, named), 6
    unreachable or timed out."""
    body: dict[str, Any] = {"display_name": name, "custom_domain": domain, "plan": plan,
                            "admin_email": admin_email}
    body = {k: v for k, v in body.items() if v is not None}
    tags: dict[str, str | None] = {**_tags(tag), **dict.fromkeys(remove_tag or [])}
    if tags:
        body["tags"] = tags
    if remove_previous_admin:
        body["remove_previous_admin"] = True
    if grace is not None:
        body["grace_seconds"] = grace
    if reason:
        body["reason"] = reason
    _change(ctx, "PATCH", f"/tenants/{slug}", body, dry_run=dry_run, wait=wait,
            timeout=timeout, as_json=as_json,
            nothing=f"nothing to change: {slug} already is as asked",
            api_url=api_url, identity=identity, source=source)


@app.command("suspend")
def suspend(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="The tenant to suspend.")],
    reason: Annotated[str, typer.Option("--reason", help="Why; kept in the history.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the plan; change nothing.")
                       ] = False,
    wait: WaitOption = True,
    timeout: TimeoutOption = 600.0,
    api_url: ApiUrlOption = None,
    identity: IdentityOption = None,
    source: SourceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Suspend a tenant: its hostname answers a suspended page, its organization is
    disabled, its database login cannot sign in. Nothing is deleted."""
    _change(ctx, "POST", f"/tenants/{slug}/suspend", {"reason": reason}, dry_run=dry_run,
            wait=wait, timeout=timeout, as_json=as_json, nothing=f"{slug} is suspended",
            api_url=api_url, identity=identity, source=source)


@app.command("resume")
def resume(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="The tenant to resume.")],
    reason: Annotated[str | None, typer.Option("--reason", help="Why; kept in the history.")
                      ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the plan; change nothing.")
                       ] = False,
    wait: WaitOption = True,
    timeout: TimeoutOption = 600.0,
    api_url: ApiUrlOption = None,
    identity: IdentityOption = None,
    source: SourceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Resume a suspended tenant: each suspended resource is restored."""
    body = {"reason": reason} if reason else {}
    _change(ctx, "POST", f"/tenants/{slug}/resume", body, dry_run=dry_run, wait=wait,
            timeout=timeout, as_json=as_json, nothing=f"{slug} is active",
            api_url=api_url, identity=identity, source=source)


@app.command("move")
def move(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="The tenant to move.")],
    server: Annotated[str | None, typer.Option(
        "--server", help="The server to move its data to (providers.database.servers); "
        "default: the least-loaded of its plan's pool with room.")] = None,
    abandon: Annotated[bool, typer.Option(
        "--abandon", help="Undo a move that did not switch: drop its copy, let the tenant's "
        "login sign in to its data again.")] = False,
    grace: Annotated[float | None, typer.Option(
        "--grace-seconds", help="How long the old copy is kept (default: "
        "providers.database.move_grace_seconds).")] = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Why; kept in the history.")
                      ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the plan; change nothing.")
                       ] = False,
    wait: WaitOption = True,
    timeout: TimeoutOption = 600.0,
    api_url: ApiUrlOption = None,
    identity: IdentityOption = None,
    source: SourceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Move a tenant's data to another database server: copy, a short write freeze,
    row-count check, switch, and removal of the old copy after a grace period."""
    body: dict[str, Any] = {"server": server, "abandon": abandon or None,
                            "grace_seconds": grace, "reason": reason}
    body = {k: v for k, v in body.items() if v is not None}
    _change(ctx, "POST", f"/tenants/{slug}/move", body, dry_run=dry_run, wait=wait,
            timeout=timeout, as_json=as_json, nothing=f"{slug} is where it was asked to be",
            api_url=api_url, identity=identity, source=source)


def _preview(ctx: typer.Context, spec: dict[str, Any], as_json: bool) -> None:
    """The plan, computed locally from configuration: what each provider would do."""
    from tenantops.provisioning.engine import Engine

    try:
        engine = Engine(settings_of(ctx))
        # The preview reads the catalog; an empty data folder gets its (empty) schema first.
        engine.catalog.migrate()
        preview = engine.preview_onboarding(spec)
    except TenantOpsError as exc:
        fail(exc, EXIT_INVALID)
    if as_json:
        print_json(dataclasses.asdict(preview))
        return
    typer.echo(preview.render())


def offboard(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="The tenant to offboard.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask to type the slug.")] = False,
    keep_database: Annotated[bool, typer.Option("--keep-database",
                                                help="Keep the tenant's database.")] = False,
    wait: WaitOption = True,
    timeout: TimeoutOption = 600.0,
    api_url: ApiUrlOption = None,
    identity: IdentityOption = None,
    source: SourceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Offboard a tenant: remove its resources in reverse order. Asks for the slug to be
    typed unless --yes."""
    if not yes:
        typed = typer.prompt(f"This deletes the resources of {slug!r}"
                             f"{' (database kept)' if keep_database else ''}. Type the slug "
                             "to confirm")
        if typed != slug:
            typer.echo(f"error: {typed!r} is not {slug!r}; nothing was changed", err=True)
            raise typer.Exit(EXIT_INVALID)
    with api_session(ctx, api_url, identity, source) as api:
        run = api.call("DELETE", f"/tenants/{slug}",
                       params={"confirm": slug, "keep_database": str(keep_database).lower()})
        if not wait:
            print_json(run) if as_json else typer.echo(f"run {run['id']} {run['status']}")
            return
        run = api.follow(run, timeout=timeout, quiet=as_json)
        hint = api.idle_hint(run)
    exit_for_run(run, as_json, hint)


@app.command("list")
def list_tenants(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help="Only tenants in this status.")] = None,
    search: Annotated[str | None, typer.Option(help="Part of slug, name or domain.")] = None,
    limit: Annotated[int, typer.Option(help="Page size.")] = 50,
    offset: Annotated[int, typer.Option(help="Skip this many.")] = 0,
    api_url: ApiUrlOption = None,
    identity: IdentityOption = None,
    source: SourceOption = None,
    as_json: JsonOption = False,
) -> None:
    """List tenants, newest first."""
    params = {"limit": str(limit), "offset": str(offset)}
    if status:
        params["status"] = status
    if search:
        params["search"] = search
    with api_session(ctx, api_url, identity, source) as api:
        page = api.call("GET", "/tenants", params=params)
    if as_json:
        print_json(page)
        return
    typer.echo(f"{'SLUG':<24} {'STATUS':<12} {'DOMAIN':<40} CREATED")
    for tenant in page["items"]:
        typer.echo(f"{tenant['slug']:<24} {tenant['status']:<12} {tenant['custom_domain']:<40} "
                   f"{tenant['created_at'][:19]}")
    shown = page["offset"] + len(page["items"])
    typer.echo(f"{len(page['items'])} shown ({page['offset'] + 1 if page['items'] else 0}-"
               f"{shown} of {page['total']})")


@app.command("show")
def show_tenant(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="The tenant.")],
    api_url: ApiUrlOption = None,
    identity: IdentityOption = None,
    source: SourceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a tenant: spec, status, resources, runs and its latest history."""
    with api_session(ctx, api_url, identity, source) as api:
        tenant = api.call("GET", f"/tenants/{slug}")
        history = None if as_json else api.call("GET", f"/tenants/{slug}/history",
                                                params={"limit": "10"})
    if as_json:
        print_json(tenant)
        return
    typer.echo(f"{tenant['slug']} ({tenant['display_name']}): {tenant['status']}")
    domain = tenant.get("domain") or {}
    kind = {"customer": " (customer-managed)", "platform": ""}.get(domain.get("kind", ""), "")
    typer.echo(f"  domain       {tenant['custom_domain']}{kind}")
    if domain.get("waiting"):
        runs = tenant.get("runs") or [{}]
        then = ("the wait ended: once they are published, tenantops runs retry "
                f"{runs[0].get('id', '<run id>')}") if domain.get("status") in (
                    "failed", "cancelled") else "the onboarding waits for them"
        typer.echo(f"  the customer must publish these records in the domain's DNS ({then}):")
        for record in domain.get("pending_records", []):
            typer.echo(f"    {record['name']}  {record['type']}  {record['value']}")
        if domain.get("message"):
            typer.echo(f"  last check   {domain['message']}")
    for retiring in tenant.get("retiring_domains") or []:
        until = retiring.get("retire_at") or "after the new one is served"
        typer.echo(f"  previous     {retiring['domain']} (still served until {until})")
    suspension = tenant.get("suspension")
    if suspension:
        typer.echo(f"  suspended    since {suspension.get('since') or '-'} by "
                   f"{suspension['requested_by']}: {suspension.get('reason') or '-'}")
    typer.echo(f"  plan         {tenant['plan']}, admin {tenant['admin_email']}")
    resources = tenant["resources"]
    database = resources.get("database") or {}
    typer.echo(f"  database     {database.get('name') or '-'}")
    for copy in tenant.get("placements") or []:
        where = copy["database"] + (f".{copy['schema_name']}" if copy.get("schema_name")
                                    else "")
        until = f" until {copy['retire_at']}" if copy.get("retire_at") else ""
        typer.echo(f"  placement    {copy['state']:<8} {copy['server']}: {where} "
                   f"({copy['mode']} mode){until}")
    for name, value in (resources.get("dns_records") or {}).items():
        typer.echo(f"  dns          {name} {value}")
    certificate = resources.get("certificate") or {}
    typer.echo(f"  hostname     {resources.get('hostname') or '-'}")
    typer.echo(f"  certificate  {certificate.get('thumbprint') or '-'} "
               f"(expires {certificate.get('expires_at') or '-'})")
    typer.echo(f"  organization {resources.get('organization') or '-'}")
    for run in tenant["runs"]:
        typer.echo(f"  run {run['id']} {run['kind']:<8} {run['status']:<10} "
                   f"{run['created_at'][:19]} by {run['requested_by']}")
    if history is not None:
        typer.echo("History (newest first; all of it: tenantops tenants history "
                   f"{tenant['slug']}):")
        for line in history_lines(history["entries"]):
            typer.echo(f"  {line}")


@app.command("history")
def tenant_history(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="The tenant.")],
    limit: Annotated[int, typer.Option(help="How many entries, newest first.")] = 100,
    api_url: ApiUrlOption = None,
    identity: IdentityOption = None,
    source: SourceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Who changed what, when, by which run: the tenant's events, newest first."""
    with api_session(ctx, api_url, identity, source) as api:
        history = api.call("GET", f"/tenants/{slug}/history", params={"limit": str(limit)})
    if as_json:
        print_json(history)
        return
    for line in history_lines(history["entries"]):
        typer.echo(line)
