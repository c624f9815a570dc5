"""``tenantops events tail|deliveries|redeliver|secret``: lifecycle events through the API."""

from __future__ import annotations

import base64
import json
import secrets
import time
from typing import Annotated, Any

import typer

from tenantops.cli.client import (
    ApiUrlOption,
    IdentityOption,
    JsonOption,
    SourceOption,
    api_session,
    print_json,
)

__all__ = ["app", "event_line", "history_lines"]

app = typer.Typer(help="Lifecycle events: tail them, see their deliveries, redeliver.",
                  no_args_is_help=True)


def event_line(item: dict[str, Any]) -> str:
    """One event as ``tail`` prints it: time, seq, tenant, type, summary, deliveries."""
    event = item["event"]
    deliveries = " ".join(f"[{d['sink']} {d['status']}]" for d in item.get("deliveries", []))
    tenant = event.get("tenant") or "-"
    return (f"{event['time'][:19]}  #{item['seq']:<6} {tenant:<20} {event['type']:<34} "
            f"{item['summary']}" + (f"  {deliveries}" if deliveries else ""))


def history_lines(entries: list[dict[str, Any]]) -> list[str]:
    """A tenant's history as ``tenants history`` and ``tenants show`` print it."""
    lines = []
    for entry in entries:
        run = f" (run {entry['run_id']})" if entry.get("run_id") else ""
        lines.append(f"{entry['time'][:19]}  {entry['summary']}{run}")
        for name, change in (entry.get("changes") or {}).items():
            if name == "status":
                continue
            lines.append(f"{'':21}{name}: {_shown(change['from'])} -> {_shown(change['to'])}")
    return lines


def _shown(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in sorted(value.items())) or "(none)"
    return str(value)


@app.command("tail")
def tail(
    ctx: typer.Context,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's events.")] = None,
    type: Annotated[str | None, typer.Option(
        "--type", help="An event type or glob: com.tenantops.tenant.*")] = None,
    since: Annotated[str | None, typer.Option(help="Only events at or after this ISO time.")
                     ] = None,
    limit: Annotated[int, typer.Option(help="How many recent events to show first.")] = 20,
    follow: Annotated[bool, typer.Option("--follow", "-f",
                                         help="Keep printing new events until Ctrl-C.")
                      ] = False,
    interval: Annotated[float, typer.Option(help="Seconds between looks with --follow.")
                        ] = 1.0,
    api_url: ApiUrlOption = None,
    identity: IdentityOption = None,
    source: SourceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show the latest events, oldest first; with --follow, keep showing new ones as they
    happen. --json prints one JSON object per line (the CloudEvent and its seq)."""
    filters: dict[str, str] = {}
    if tenant:
        filters["tenant"] = tenant
    if type:
        filters["type"] = type
    if since:
        filters["since"] = since
    with api_session(ctx, api_url, identity, source) as api:
        page = api.call("GET", "/events", params={**filters, "order": "desc",
                                                  "limit": str(max(1, limit))})
        items = list(reversed(page["items"]))
        last = max([i["seq"] for i in items], default=0)
        if not items and follow:
            newest = api.call("GET", "/events", params={"order": "desc", "limit": "1"})
            last = max([i["seq"] for i in newest["items"]], default=0)
        _show(items, as_json)
        try:
            while follow:
                time.sleep(interval)
                page = api.call("GET", "/events", params={**filters, "after": str(last),
                                                          "limit": "500"})
                _show(page["items"], as_json)
                if page["items"]:
                    last = page["items"][-1]["seq"]
        except KeyboardInterrupt:
            return


def _show(items: list[dict[str, Any]], as_json: bool) -> None:
    for item in items:
        if as_json:
            typer.echo(json.dumps({"seq": item["seq"], "actor": item["actor"],
                                   **item["event"]}, default=str))
        else:
            typer.echo(event_line(item))


@app.command("deliveries")
def deliveries(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(
        help="pending, delivered or parked (given up after a day of failures).")] = None,
    sink: Annotated[str | None, typer.Option(help="webhook:<name> or event-grid.")] = None,
    limit: Annotated[int, typer.Option(help="How many.")] = 50,
    api_url: ApiUrlOption = None,
    identity: IdentityOption = None,
    source: SourceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Deliveries of events to webhooks and Event Grid, newest event first."""
    params = {"limit": str(limit)}
    if status:
        params["status"] = status
    if sink:
        params["sink"] = sink
    with api_session(ctx, api_url, identity, source) as api:
        found = api.call("GET", "/events/deliveries", params=params)
    if as_json:
        print_json(found)
        return
    typer.echo(f"{'ID':<7} {'SINK':<24} {'STATUS':<10} {'TRIES':<6} {'EVENT TYPE':<34} "
               "LAST ERROR")
    for d in found["items"]:
        typer.echo(f"{d['id']:<7} {d['sink']:<24} {d['status']:<10} {d['attempts']:<6} "
                   f"{d['event_type']:<34} {d['last_error'] or ''}")
    counts = found["counts"]
    typer.echo(f"{counts['pending']} pending, {counts['delivered']} delivered, "
               f"{counts['parked']} parked, {counts['unrouted']} not routed yet")
    parked = [d for d in found["items"] if d["status"] == "parked"]
    if parked:
        typer.echo(f"parked deliveries are not tried again: once the receiver works, send "
                   f"one again with 'tenantops events redeliver {parked[0]['id']}'")


@app.command("redeliver")
def redeliver(
    ctx: typer.Context,
    delivery: Annotated[int, typer.Argument(help="The delivery's ID (events deliveries).")],
    api_url: ApiUrlOption = None,
    identity: IdentityOption = None,
    source: SourceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Send a parked delivery again now, with a fresh day of retries."""
    with api_session(ctx, api_url, identity, source) as api:
        found = api.call("POST", f"/events/deliveries/{delivery}/redeliver")
    if as_json:
        print_json(found)
        return
    typer.echo(f"delivery {found['id']} of event {found['event_id']} to {found['sink']} is "
               f"{found['status']} again")


@app.command("secret")
def new_secret() -> None:
    """Print a new Standard Webhooks signing secret (whsec_ and 32 random bytes) for a
    [[events.webhooks]] entry; give the receiver the same value."""
    typer.echo("whsec_" + base64.b64encode(secrets.token_bytes(32)).decode())
