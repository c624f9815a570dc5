"""``tenantops drift [SLUG]`` and ``tenantops reconcile SLUG``, through the API.

``drift SLUG`` checks one tenant now (its resources observed through their providers, reads
only); ``drift`` lists the last report of every tenant (``--check``: check them all now).
Exit code 1 when a tenant shown is drifted, missing or unknown, so a scheduled job can page
someone. ``reconcile SLUG`` shows its plan first (what it would create or converge; it never
deletes anything), then opens the run unless ``--dry-run``.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from tenantops.cli.client import (
    EXIT_FAILED,
    EXIT_INVALID,
    ApiUrlOption,
    IdentityOption,
    JsonOption,
    SourceOption,
    api_session,
    print_json,
)
from tenantops.cli.tenants import TimeoutOption, WaitOption, _follow_change, _show_preview

__all__ = ["drift", "reconcile"]

_SIGNS = {"create": "+", "update": "~", "check": "?"}
_STATES = ("in_sync", "drifted", "missing", "unknown")


def _shown(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "none"
    return repr(value) if isinstance(value, str) else str(value)


def report_lines(report: dict[str, Any]) -> list[str]:
    """A drift report as the plan previews print it: one line per resource, with what
    differs (recorded against found)."""
    lines = [f"drift {report['tenant']} ({report['status']}): "
             f"{report['state'].replace('_', ' ')}"]
    for r in report["resources"]:
        if r["state"] == "missing":
            detail = "gone"
        elif r["state"] == "drifted":
            detail = "; ".join(f"{d['field']}: recorded {_shown(d['recorded'])}, found "
                               f"{_shown(d['found'])}" for d in r["differences"])
        elif r["state"] == "unknown":
            detail = f"could not be observed: {r['error']}"
        else:
            detail = ""
        lines.append(f"  {_SIGNS.get(r['action'], ' ')} {r['state']:<9} {r['provider']:<22} "
                     f"{r['resource']}" + (f"  ({detail})" if detail else ""))
    if report["state"] in ("drifted", "missing"):
        lines.append(f"  restore it: tenantops reconcile {report['tenant']}")
    return lines


def drift(
    ctx: typer.Context,
    slug: Annotated[str | None, typer.Argument(
        help="The tenant to check now; none: every tenant's last report.")] = None,
    check: Annotated[bool, typer.Option(
        "--check", help="Without SLUG: check every active and suspended tenant now.")] = False,
    cached: Annotated[bool, typer.Option(
        "--cached", help="With SLUG: its last report, asking no provider.")] = False,
    state: Annotated[list[str] | None, typer.Option(
        "--state", help="Without SLUG: only tenants in this state (in_sync, drifted, "
        "missing, unknown), repeatable.")] = None,
    api_url: ApiUrlOption = None,
    identity: IdentityOption = None,
    source: SourceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Compare tenants' resources with what the catalog records. Exit codes: 0 in sync,
    1 drifted, missing or unknown, 2 invalid input, 3 not allowed, 4 no such tenant (or never
    checked, with --cached), 5 the tenant is not settled (a run in progress), 6 unreachable."""
    for value in state or []:
        if value not in _STATES:
            typer.echo(f"error: --state {value!r} is not one of {', '.join(_STATES)}", err=True)
            raise typer.Exit(EXIT_INVALID)
    if slug is not None and (check or state):
        typer.echo("error: --check and --state list every tenant; leave out SLUG", err=True)
        raise typer.Exit(EXIT_INVALID)
    with api_session(ctx, api_url, identity, source) as api:
        if slug is not None:
            reports = [api.call("GET", f"/tenants/{slug}/drift",
                                params={"cached": "true"} if cached else None)]
            answer: Any = reports[0]
            skipped: dict[str, str] = {}
        elif check:
            answer = api.call("POST", "/drift/check", body={})
            reports, skipped = answer["checked"], answer["skipped"]
        else:
            answer = api.call("GET", "/drift", params={"state": state or [], "limit": "500"})
            reports, skipped = answer["items"], {}
    if as_json:
        print_json(answer)
    else:
        for report in reports:
            typer.echo("\n".join(report_lines(report)))
        for name, why in skipped.items():
            typer.echo(f"skipped {name}: {why}")
        if slug is None:
            counts = answer["counts"]
            typer.echo(", ".join(f"{counts.get(s, 0)} {s.replace('_', ' ')}" for s in
                                 (*_STATES, "unchecked") if s in counts))
    if any(r["state"] != "in_sync" for r in reports):
        raise typer.Exit(EXIT_FAILED)


def reconcile(
    ctx: typer.Context,
    slug: Annotated[str, typer.Argument(help="The tenant to restore.")],
    reason: Annotated[str | None, typer.Option("--reason", help="Why; kept in the history.")
                      ] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Show the plan; change nothing.")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Open the run even when the plan changes nothing.")] = False,
    wait: WaitOption = True,
    timeout: TimeoutOption = 600.0,
    api_url: ApiUrlOption = None,
    identity: IdentityOption = None,
    source: SourceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Restore a tenant's recorded state: its plan is shown first (what is missing is made
    again, what differs is converged back; nothing is deleted), then a reconcile run does
    it. Exit codes: 0 succeeded (or nothing to do), 1 failed, 3 not allowed, 4 no such
    tenant, 5 conflict (a run in progress, named), 6 unreachable or timed out."""
    body = {"reason": reason} if reason else {}
    with api_session(ctx, api_url, identity, source) as api:
        preview = api.call("POST", f"/tenants/{slug}/reconcile", body=body,
                           params={"dry_run": "true"})
        if dry_run:
            print_json(preview) if as_json else _show_preview(preview)
            return
        if not as_json:
            _show_preview(preview)
        if not force and all(c["action"] in ("unchanged", "check")
                             for c in preview["changes"]):
            print_json({"run": None}) if as_json else typer.echo(
                f"nothing to reconcile: {slug}'s resources are as recorded "
                "(--force opens the run anyway)")
            return
        accepted = api.call("POST", f"/tenants/{slug}/reconcile", body=body)
        _follow_change(api, accepted, wait=wait, timeout=timeout, as_json=as_json,
                       nothing=f"{slug} is reconciled")
