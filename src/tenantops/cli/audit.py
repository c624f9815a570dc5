"""``tenantops audit``: the audit trail, through the API (``GET /api/audit``, ``Audit.Read``)."""

from __future__ import annotations

from typing import Annotated

import typer

from tenantops.cli.client import (
    ApiUrlOption,
    IdentityOption,
    JsonOption,
    SourceOption,
    api_session,
    print_json,
)

__all__ = ["audit"]


def audit(
    ctx: typer.Context,
    tenant: Annotated[str | None, typer.Option(help="Only records about this tenant.")] = None,
    principal: Annotated[str | None, typer.Option(
        help="Only this caller: UPN or name, object ID, or application ID.")] = None,
    action: Annotated[str | None, typer.Option(
        help="Only this action: tenant.onboard, tenant.offboard, run.retry, run.cancel, "
        "session.sign_in, session.sign_out.")] = None,
    outcome: Annotated[str | None, typer.Option(
        help="Only this outcome: succeeded, refused or failed.")] = None,
    since: Annotated[str | None, typer.Option(
        help="Recorded at or after (ISO 8601, e.g. 2026-12-06T08:00Z; UTC without a zone).")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Recorded before (ISO 8601).")] = None,
    limit: Annotated[int, typer.Option(help="Page size (at most 500).")] = 50,
    offset: Annotated[int, typer.Option(help="Skip this many.")] = 0,
    api_url: ApiUrlOption = None,
    identity: IdentityOption = None,
    source: SourceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show who changed what, newest first: every state-changing API call and dashboard
    action, refusals included. Needs the Audit.Read app role."""
    params = {"limit": str(limit), "offset": str(offset)}
    for name, value in (("tenant", tenant), ("principal", principal), ("action", action),
                        ("outcome", outcome), ("since", since), ("until", until)):
        if value:
            params[name] = value
    with api_session(ctx, api_url, identity, source) as api:
        page = api.call("GET", "/audit", params=params)
    if as_json:
        print_json(page)
        return
    typer.echo(f"{'WHEN':<20} {'WHO':<36} {'ACTION':<18} {'TENANT':<16} {'OUTCOME':<15} "
               "REQUEST")
    for record in page["items"]:
        who = (record["principal_name"] or
               (f"app {record['principal_appid']}" if record["principal_appid"] else "unknown"))
        result = f"{record['outcome']} {record['status_code']}"
        typer.echo(f"{record['recorded_at'][:19]:<20} {who[:36]:<36} {record['action'][:18]:<18} "
                   f"{(record['tenant'] or '-')[:16]:<16} {result:<15} {record['request_id']}")
    shown = page["offset"] + len(page["items"])
    typer.echo(f"{len(page['items'])} shown ({page['offset'] + 1 if page['items'] else 0}-"
               f"{shown} of {page['total']})")
