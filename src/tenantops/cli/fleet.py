"""``tenantops fleet migrate|list|show|targets|pause|resume|cancel``: fleet runs through the
API (docs/fleet.md). Following a fleet (``--wait``, the default when starting one) prints a
line whenever its progress changes: done / failed / remaining, the rate and the time left.

Exit codes: 0 the fleet succeeded (or a dry run, or a command that only reads); 1 it
stopped (the brake, or paused), failed or was cancelled; 2 to 6 as every command
(`tenantops.cli.client`)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from tenantops.cli.client import (
    Api,
    ApiUrlOption,
    IdentityOption,
    JsonOption,
    SourceOption,
    api_session,
    print_json,
)
from tenantops.cli.tenants import TimeoutOption

__all__ = ["app", "certificates", "progress_line"]

app = typer.Typer(help="Apply an operation to many tenants at once: a canary first, then "
                  "batches, with a concurrency limit and a brake.", no_args_is_help=True)

FleetId = Annotated[str, typer.Argument(help="The fleet run's ID.")]
AllOption = Annotated[bool, typer.Option("--all", help="Every live tenant (the default when "
                                                       "no other selection is given).")]
PlanOption = Annotated[str | None, typer.Option("--plan", help="The tenants of this plan.")]
TagOption = Annotated[str | None, typer.Option("--tag", help="The tenants with this tag "
                                                             "(key=value).")]
TenantsOption = Annotated[list[str] | None, typer.Option(
    "--tenant", help="This tenant (repeat for several; done in the order given).")]
CanaryOption = Annotated[int | None, typer.Option(
    "--canary", help="Tenants done first, alone; the rest start only if they succeed "
    "(default: fleet.canary).")]
ConcurrencyOption = Annotated[int | None, typer.Option(
    "--concurrency", help="Tenants at once (default: fleet.concurrency).")]
BatchOption = Annotated[int | None, typer.Option(
    "--batch-size", help="Tenants per batch after the canary set; a batch starts once the "
    "one before is done (default: one batch).")]
MaxFailuresOption = Annotated[int | None, typer.Option(
    "--max-failures", help="Stop when more tenants than this failed (default: "
    "fleet.max_failures).")]
MaxPercentOption = Annotated[float | None, typer.Option(
    "--max-failure-percent", help="Stop when more than this share of the tenants failed.")]
NoLimitOption = Annotated[bool, typer.Option(
    "--no-failure-limit", help="No count limit (a percent limit still applies).")]
WaitOption = Annotated[bool, typer.Option(
    "--wait/--no-wait", help="Follow the fleet until it stops or finishes.")]

_FINISHED_FLEET = ("succeeded", "failed", "stopped", "cancelled")


def progress_line(fleet: dict[str, Any]) -> str:
    """``migrate fleet ID running: 12/40 done (1 failed, 0 skipped), 28 remaining, 3.1
    tenants/s, about 9 s left``."""
    counts = fleet["counts"]
    done = counts["succeeded"] + counts["failed"] + counts["skipped"] + counts["cancelled"]
    text = (f"{fleet['operation']} fleet {fleet['id']} {fleet['status']}: {done}/"
            f"{counts['total']} done ({counts['failed']} failed, {counts['skipped']} skipped), "
            f"{counts['pending'] + counts['running']} remaining")
    if fleet.get("rate_per_second"):
        text += f", {fleet['rate_per_second']:.1f} tenants/s"
    if fleet.get("eta_seconds") is not None:
        text += f", about {fleet['eta_seconds']:.0f} s left"
    if fleet.get("stop_reason"):
        text += f"\n  {fleet['stop_reason']}"
    return text


def _follow(api: Api, fleet: dict[str, Any], *, timeout: float, quiet: bool) -> dict[str, Any]:
    import time

    deadline = api.clock() + timeout
    path, what = f"/fleet-runs/{fleet['id']}", f"fleet run {fleet['id']}"
    again = f"tenantops fleet show {fleet['id']} --wait"
    last = ""
    while True:
        line = progress_line(fleet)
        if line != last and not quiet:
            typer.echo(line)
            last = line
        if fleet["status"] in _FINISHED_FLEET:
            return fleet
        if api.clock() >= deadline:
            typer.echo(f"error: {what} is still running after {timeout:g} s (--timeout); it "
                       f"goes on: follow it again with '{again}'", err=True)
            raise typer.Exit(6)
        time.sleep(0.5)
        fleet = api.poll(path, deadline=deadline, what=what, again=again)


def _done(fleet: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(fleet)
    if fleet["status"] in ("failed", "stopped", "cancelled"):
        if fleet["status"] != "cancelled":
            typer.echo(f"hint: see the failed tenants with 'tenantops fleet targets "
                       f"{fleet['id']} --status failed'; fix the cause, then 'tenantops fleet "
                       f"resume {fleet['id']}'", err=True)
        raise typer.Exit(1)


def _body(operation: str, options: dict[str, Any], selection: dict[str, Any], *,
          canary: int | None, concurrency: int | None, batch_size: int | None,
          max_failures: int | None, max_failure_percent: float | None,
          no_failure_limit: bool) -> dict[str, Any]:
    """The request of POST /api/fleet-runs, the same for every operation."""
    return {"operation": operation, "options": options, "selection": selection,
            "canary": canary, "concurrency": concurrency, "batch_size": batch_size,
            "max_failures": max_failures, "max_failure_percent": max_failure_percent,
            "no_failure_limit": no_failure_limit}


def _selection(all_: bool, plan: str | None, tag: str | None,
               tenants: list[str] | None) -> dict[str, Any]:
    if plan is None and tag is None and not tenants:
        return {"all": True}
    return {"all": all_, "plan": plan, "tag": tag, "tenants": tenants or []}


@app.command("migrate")
def migrate(
    ctx: typer.Context,
    to: Annotated[str | None, typer.Option("--to", help="The revision (default: the head of "
                                                        "migrations.folder).")] = None,
    all_: AllOption = False, plan: PlanOption = None, tag: TagOption = None,
    tenants: TenantsOption = None, canary: CanaryOption = None,
    concurrency: ConcurrencyOption = None, batch_size: BatchOption = None,
    max_failures: MaxFailuresOption = None, max_failure_percent: MaxPercentOption = None,
    no_failure_limit: NoLimitOption = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List per tenant the pending "
                                                            "revisions; change nothing.")] = False,
    wait: WaitOption = True, timeout: TimeoutOption = 3600.0,
    api_url: ApiUrlOption = None, identity: IdentityOption = None, source: SourceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Bring every selected tenant's schema (the SaaS's own migrations, migrations.folder)
    to a revision, as one fleet run."""
    body = _body("migrate", {"revision": to}, _selection(all_, plan, tag, tenants),
                 canary=canary, concurrency=concurrency, batch_size=batch_size,
                 max_failures=max_failures, max_failure_percent=max_failure_percent,
                 no_failure_limit=no_failure_limit)
    _start(ctx, body, dry_run=dry_run, wait=wait, timeout=timeout, api_url=api_url,
           identity=identity, source=source, as_json=as_json)


@app.command("rotate")
def rotate(
    ctx: typer.Context,
    what: Annotated[str, typer.Argument(help="What to rotate: database-credentials.")],
    all_: AllOption = False, plan: PlanOption = None, tag: TagOption = None,
    tenants: TenantsOption = None, canary: CanaryOption = None,
    concurrency: ConcurrencyOption = None, batch_size: BatchOption = None,
    max_failures: MaxFailuresOption = None, max_failure_percent: MaxPercentOption = None,
    no_failure_limit: NoLimitOption = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List per tenant the login it "
                                                            "would switch to.")] = False,
    wait: WaitOption = True, timeout: TimeoutOption = 3600.0,
    api_url: ApiUrlOption = None, identity: IdentityOption = None, source: SourceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Rotate credentials without downtime (one tenant: --tenant SLUG). database-credentials:
    a new password on the login not in use, the switch, the previous login disabled once no
    session uses it (rotation.min_grace_seconds / max_grace_seconds)."""
    if what != "database-credentials":
        typer.echo(f"error: what = {what!r}: must be database-credentials", err=True)
        raise typer.Exit(2)
    body = _body(f"rotate-{what}", {}, _selection(all_, plan, tag, tenants),
                 canary=canary, concurrency=concurrency, batch_size=batch_size,
                 max_failures=max_failures, max_failure_percent=max_failure_percent,
                 no_failure_limit=no_failure_limit)
    _start(ctx, body, dry_run=dry_run, wait=wait, timeout=timeout, api_url=api_url,
           identity=identity, source=source, as_json=as_json)


@app.command("renew")
def renew(
    ctx: typer.Context,
    what: Annotated[str, typer.Argument(help="What to renew: certificates.")],
    within_days: Annotated[float | None, typer.Option(
        "--within-days", help="Renew those expiring within this many days (default: "
        "certificates.renew_before_days).")] = None,
    all_: AllOption = False, plan: PlanOption = None, tag: TagOption = None,
    tenants: TenantsOption = None, canary: CanaryOption = None,
    concurrency: ConcurrencyOption = None, batch_size: BatchOption = None,
    max_failures: MaxFailuresOption = None, max_failure_percent: MaxPercentOption = None,
    no_failure_limit: NoLimitOption = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List per tenant its expiry and "
                                                            "whether it is due.")] = False,
    wait: WaitOption = True, timeout: TimeoutOption = 3600.0,
    api_url: ApiUrlOption = None, identity: IdentityOption = None, source: SourceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Renew now the certificates that expire soon (a worker also does it on its own, every
    certificates.check_seconds); App Service managed certificates are followed and rebound."""
    if what != "certificates":
        typer.echo(f"error: what = {what!r}: must be certificates", err=True)
        raise typer.Exit(2)
    body = _body("renew-certificates", {"within_days": within_days},
                 _selection(all_, plan, tag, tenants),
                 canary=canary, concurrency=concurrency, batch_size=batch_size,
                 max_failures=max_failures, max_failure_percent=max_failure_percent,
                 no_failure_limit=no_failure_limit)
    _start(ctx, body, dry_run=dry_run, wait=wait, timeout=timeout, api_url=api_url,
           identity=identity, source=source, as_json=as_json)


def certificates(
    ctx: typer.Context,
    soon: Annotated[bool, typer.Option("--soon", help="Only those expiring soon.")] = False,
    api_url: ApiUrlOption = None, identity: IdentityOption = None, source: SourceOption = None,
    as_json: JsonOption = False,
) -> None:
    """List every tenant's certificate expiry, soonest first (! marks those expiring within
    certificates.expiring_soon_days)."""
    with api_session(ctx, api_url, identity, source) as api:
        page = api.call("GET", "/certificates")
    items = [c for c in page["items"] if c["expiring_soon"] or not soon]
    if as_json:
        print_json({**page, "items": items})
        return
    for cert in items:
        left = "-" if cert["days_left"] is None else f"{cert['days_left']:.0f} days"
        typer.echo(f"{'!' if cert['expiring_soon'] else ' '} {cert['tenant']:<32} "
                   f"{cert['hostname']:<40} {(cert['expires_at'] or '-')[:10]:<10} {left:>10}  "
                   f"{cert['thumbprint'] or '-'}")
    typer.echo(f"{page['expiring_soon']} expiring within {page['expiring_soon_days']:g} days")


def _start(ctx: typer.Context, body: dict[str, Any], *, dry_run: bool, wait: bool,
           timeout: float, api_url: str | None, identity: str | None, source: str | None,
           as_json: bool) -> None:
    with api_session(ctx, api_url, identity, source) as api:
        if dry_run:
            preview = api.call("POST", "/fleet-runs", body=body, params={"dry_run": "true"})
            if as_json:
                print_json(preview)
                return
            _print_preview(preview)
            return
        fleet = api.call("POST", "/fleet-runs", body=body)
        if not as_json:
            typer.echo(f"fleet run {fleet['id']} ({fleet['operation']} of "
                       f"{fleet['counts']['total']} tenants) started; requested by "
                       f"{fleet['requested_by']}")
        if wait:
            fleet = _follow(api, fleet, timeout=timeout, quiet=as_json)
    _done(fleet, as_json)


def _print_preview(preview: dict[str, Any]) -> None:
    options = "  ".join(f"{k}={v}" for k, v in preview["options"].items() if k != "source")
    typer.echo(f"{preview['operation']} (dry run: nothing was changed) {options}")
    for target in preview["targets"]:
        detail = target["detail"]
        if target["action"] == "run" and "pending" in detail:
            note = (f"{detail.get('revision') or '(none)'} -> {detail.get('to')}: "
                    f"{', '.join(detail['pending'])}")
        elif target["action"] == "skip":
            note = f"skipped: {target['reason']}"
        elif target["action"] == "nothing":
            note = f"already at {detail.get('revision') or detail.get('to')}"
        else:
            note = "  ".join(f"{k}={v}" for k, v in detail.items())
        typer.echo(f"  {target['tenant']:<32} {target['action']:<8} {note}")
    counts = preview["counts"]
    typer.echo(f"{counts['run']} to change, {counts['nothing']} already there, "
               f"{counts['skip']} skipped")


@app.command("list")
def list_fleets(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option("--status", help="Only fleets in this status "
                                               "(running, stopped, succeeded, failed, "
                                               "cancelled).")] = None,
    limit: Annotated[int, typer.Option("--limit", help="How many, newest first.")] = 20,
    api_url: ApiUrlOption = None, identity: IdentityOption = None, source: SourceOption = None,
    as_json: JsonOption = False,
) -> None:
    """List fleet runs, newest first, with their progress."""
    params = {"limit": str(limit), **({"status": status} if status else {})}
    with api_session(ctx, api_url, identity, source) as api:
        page = api.call("GET", "/fleet-runs", params=params)
    if as_json:
        print_json(page)
        return
    for fleet in page["items"]:
        typer.echo(f"{fleet['created_at'][:19]}  {progress_line(fleet)}")
    typer.echo(f"{len(page['items'])} of {page['total']} fleet runs")


@app.command("show")
def show_fleet(
    ctx: typer.Context, fleet_id: FleetId,
    wait: Annotated[bool, typer.Option("--wait", help="Follow until it stops or "
                                                      "finishes.")] = False,
    timeout: TimeoutOption = 3600.0,
    api_url: ApiUrlOption = None, identity: IdentityOption = None, source: SourceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a fleet run's progress: done, failed, remaining, rate, time left, why it
    stopped. Exit code 1 unless it succeeded or is running."""
    with api_session(ctx, api_url, identity, source) as api:
        fleet = api.call("GET", f"/fleet-runs/{fleet_id}")
        if wait:
            fleet = _follow(api, fleet, timeout=timeout, quiet=as_json)
        elif not as_json:
            typer.echo(progress_line(fleet))
            typer.echo(f"  requested by {fleet['requested_by']} at {fleet['created_at'][:19]}; "
                       f"canary {fleet['canary']}, concurrency {fleet['concurrency']}, "
                       f"batch size {fleet['batch_size'] or 'all'}, max failures "
                       f"{_limit(fleet)}; resumed {fleet['resumes']}x")
    _done(fleet, as_json)


def _limit(fleet: dict[str, Any]) -> str:
    parts = []
    if fleet["max_failures"] is not None:
        parts.append(str(fleet["max_failures"]))
    if fleet["max_failure_percent"] is not None:
        parts.append(f"{fleet['max_failure_percent']:g} %")
    return " or ".join(parts) or "none"


@app.command("targets")
def list_targets(
    ctx: typer.Context, fleet_id: FleetId,
    status: Annotated[str | None, typer.Option("--status", help="Only tenants in this status "
                                               "(pending, running, succeeded, failed, skipped, "
                                               "cancelled).")] = None,
    api_url: ApiUrlOption = None, identity: IdentityOption = None, source: SourceOption = None,
    as_json: JsonOption = False,
) -> None:
    """List a fleet run's tenants in order (canary set first): status, child run, what it
    reported or why it failed."""
    items: list[dict[str, Any]] = []
    with api_session(ctx, api_url, identity, source) as api:
        while True:
            params = {"limit": "1000", "offset": str(len(items)),
                      **({"status": status} if status else {})}
            page = api.call("GET", f"/fleet-runs/{fleet_id}/targets", params=params)
            items += page["items"]
            if len(page["items"]) < 1000:
                break
    if as_json:
        print_json({"items": items})
        return
    for target in items:
        where = "canary" if target["canary"] else f"batch {target['batch']}"
        note = target["error"] or "  ".join(
            f"{k}={v}" for k, v in target["detail"].items() if v not in (None, [], {}))
        typer.echo(f"{target['tenant']:<32} {target['status']:<10} {where:<8} "
                   f"run {target['run_id'] or '-':<32} {note}")


def _act(ctx: typer.Context, fleet_id: str, action: str, api_url: str | None,
         identity: str | None, source: str | None, as_json: bool) -> None:
    with api_session(ctx, api_url, identity, source) as api:
        fleet = api.call("POST", f"/fleet-runs/{fleet_id}/{action}")
    if as_json:
        print_json(fleet)
    else:
        typer.echo(progress_line(fleet))


@app.command("pause")
def pause_fleet(
    ctx: typer.Context, fleet_id: FleetId,
    api_url: ApiUrlOption = None, identity: IdentityOption = None, source: SourceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Stop starting tenants (those in flight finish); 'resume' carries on."""
    _act(ctx, fleet_id, "pause", api_url, identity, source, as_json)


@app.command("resume")
def resume_fleet(
    ctx: typer.Context, fleet_id: FleetId,
    wait: WaitOption = True, timeout: TimeoutOption = 3600.0,
    api_url: ApiUrlOption = None, identity: IdentityOption = None, source: SourceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run a stopped, paused or failed fleet again: failed and skipped tenants are tried
    again, their failed runs retried from the failed step."""
    with api_session(ctx, api_url, identity, source) as api:
        fleet = api.call("POST", f"/fleet-runs/{fleet_id}/resume")
        if wait:
            fleet = _follow(api, fleet, timeout=timeout, quiet=as_json)
        elif not as_json:
            typer.echo(progress_line(fleet))
    _done(fleet, as_json)


@app.command("cancel")
def cancel_fleet(
    ctx: typer.Context, fleet_id: FleetId,
    api_url: ApiUrlOption = None, identity: IdentityOption = None, source: SourceOption = None,
    as_json: JsonOption = False,
) -> None:
    """End a fleet run: pending tenants are not started, runs in flight are cancelled."""
    _act(ctx, fleet_id, "cancel", api_url, identity, source, as_json)
