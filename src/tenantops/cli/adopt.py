"""``tenantops import FILE``: adopt tenants made before tenantops, through the API
(``POST /api/tenants/import``; docs/drift.md).

FILE is JSON (a list of entries, or ``{"tenants": [...]}``) or CSV (``.csv``: a header row
naming the columns). An entry is a tenant spec (``slug``, ``display_name``,
``custom_domain``, ``plan``, ``admin_email``, ``tags``), optionally with ``resources``
(``database``, ``login``, ``secret``, ``organization_id``: the names its runbooks gave) and
``suspended``. In CSV those are columns of their own; ``tags`` is ``key=value;key=value``
and ``suspended`` is ``true`` or ``false``. Entries are sent ``--batch`` at a time.
"""

from __future__ import annotations

from pathlib import Path
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
from tenantops.errors import ImportFileError
from tenantops.import_file import read_import

__all__ = ["import_tenants", "read_entries"]


def read_entries(path: Path) -> list[Any]:
    """The entries of an import file (see the module docstring). `ImportFileError` when it
    cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ImportFileError(f"{path}: cannot be read: {exc}") from None
    return read_import(text, source=str(path), csv_format=path.suffix.lower() == ".csv")


def import_tenants(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="JSON or CSV (.csv) of tenant specs.")],
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Report what would be adopted; record nothing.")] = False,
    batch: Annotated[int, typer.Option(
        "--batch", min=1, max=1000, help="Tenants per request.")] = 25,
    api_url: ApiUrlOption = None,
    identity: IdentityOption = None,
    source: SourceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Adopt tenants made before tenantops: each one's resources are observed through the
    providers without changing anything, and it is recorded as adopted (all found) or
    partial (what is missing or differs; 'tenantops reconcile SLUG' makes them), or refused
    (why; nothing recorded). Exit codes: 0 every tenant adopted, 1 some partial or refused,
    2 the file cannot be read, 3 not allowed, 6 unreachable."""
    try:
        entries = read_entries(file)
    except ImportFileError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    results: list[dict[str, Any]] = []
    with api_session(ctx, api_url, identity, source) as api:
        for start in range(0, len(entries), batch):
            answer = api.call("POST", "/tenants/import",
                              body={"tenants": entries[start:start + batch]},
                              params={"dry_run": "true"} if dry_run else None)
            results.extend(answer["results"])
    counts = {o: sum(1 for r in results if r["outcome"] == o)
              for o in ("adopted", "partial", "refused")}
    if as_json:
        print_json({"dry_run": dry_run, "results": results, "counts": counts})
    else:
        for result in results:
            typer.echo(f"{result['outcome']:<8} {result['slug']}"
                       + ("" if result["recorded"] or result["outcome"] == "refused" or not
                          dry_run else " (dry run: not recorded)"))
            for reason in result["reasons"]:
                typer.echo(f"  {reason}")
        typer.echo(f"{counts['adopted']} adopted, {counts['partial']} partial, "
                   f"{counts['refused']} refused" + (" (dry run: nothing recorded)"
                                                     if dry_run else ""))
        if counts["partial"] and not dry_run:
            typer.echo("make what partial tenants miss: tenantops reconcile SLUG")
    if counts["partial"] or counts["refused"]:
        raise typer.Exit(EXIT_FAILED)
