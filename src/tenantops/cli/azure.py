"""``tenantops azure``: commands about the Azure subscription the providers work in.

``tenantops azure check`` is the read-only preflight of
`tenantops.provisioning.providers.azure.preflight`: can the configured identity get a token,
read the web app, DNS zones, servers and vault, and does it hold the roles the providers need.
Each problem is printed with its fix; the exit code is 1 when there is any.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import typer

from tenantops.cli.context import CliContext, fail
from tenantops.errors import ConfigError, TenantOpsError

if TYPE_CHECKING:
    from tenantops.config import Settings
    from tenantops.provisioning.providers.azure.connection import AzureConnection
    from tenantops.provisioning.providers.azure.preflight import Finding

__all__ = ["app", "make_app", "render_findings"]

Connect = Callable[["Settings"], "AzureConnection"]


def render_findings(findings: Sequence[Finding]) -> str:
    """One line per check (``ok``/``FAIL``), the detail, and the fix under each failure."""
    lines: list[str] = []
    for finding in findings:
        mark = "ok  " if finding.ok else "FAIL"
        lines.append(f"{mark} {finding.check}: {finding.detail}")
        if not finding.ok and finding.fix:
            lines.append(f"     fix: {finding.fix}")
    failed = sum(1 for f in findings if not f.ok)
    lines.append(f"{len(findings)} checks, {failed} failed" if failed else
                 f"{len(findings)} checks, all passed")
    return "\n".join(lines)


def make_app(connect: Connect | None = None) -> typer.Typer:
    """The ``azure`` command group; ``connect`` builds the connection from settings (tests
    pass one to the ARM fake)."""
    group = typer.Typer(help="Check the Azure subscription the providers work in.",
                        no_args_is_help=True)

    @group.callback()
    def azure() -> None:
        """Check the Azure subscription the providers work in."""

    @group.command("check")
    def check(ctx: typer.Context) -> None:
        """Read-only preflight: identity, access to the web app, DNS zones, servers and vault,
        and the roles the Azure providers need, each problem with its fix."""
        from tenantops.config import load_settings

        try:
            from tenantops.provisioning.providers.azure.connection import AzureConnection
            from tenantops.provisioning.providers.azure.preflight import run_preflight
        except ImportError as missing:  # the Azure SDKs are the optional `azure` extra
            fail(ConfigError(
                f"'tenantops azure' needs the Azure SDKs ({missing.name or 'an Azure SDK'} is "
                "not installed); install them with: pip install 'tenantops[azure]'"))
        root = ctx.find_root().obj
        try:
            settings = root.load() if isinstance(root, CliContext) else load_settings()
            connection = connect(settings) if connect is not None else \
                AzureConnection.from_settings(settings.azure)
            findings = run_preflight(settings, connection)
        except TenantOpsError as exc:
            fail(exc)
        typer.echo(render_findings(findings))
        if any(not f.ok for f in findings):
            raise typer.Exit(1)

    return group


app = make_app()
