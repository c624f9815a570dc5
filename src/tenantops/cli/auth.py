"""``tenantops auth``: get, read and diagnose tokens for Entra-protected APIs.

``auth token`` is the one command that prints a token, and only to stdout, when asked; every
other output goes through the doctor's or the CLI's redaction.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from tenantops.cli.context import fail, settings_of
from tenantops.errors import TenantOpsError

if TYPE_CHECKING:  # azure-identity, httpx and pydantic load when a command runs, not for --help
    from tenantops.config import IdentitySettings, IdentitySource
    from tenantops.identity import DecodedToken
else:
    # tenantops.config.IdentitySource, spelled out so --help needs no pydantic (a test
    # keeps the two equal).
    IdentitySource = Literal[
        "environment", "workload-identity", "managed-identity", "azure-cli", "client-secret",
        "client-certificate",
    ]

__all__ = ["app", "identity_settings", "quiet_azure_logging"]

app = typer.Typer(help="Get, read and diagnose tokens for Entra-protected APIs.",
                  no_args_is_help=True)

SourceOption = Annotated[
    IdentitySource | None,
    typer.Option("--source", help="Use this identity source only (default: detect, in "
                 "azure-identity's order)."),
]
IdentityOption = Annotated[
    str | None,
    typer.Option("--identity", help="User-assigned identity: client ID, object_id=<GUID> or "
                 "resource ID (default: AZURE_CLIENT_ID, else system-assigned)."),
]


def identity_settings(ctx: typer.Context, source: IdentitySource | None, identity: str | None,
                      audience: str | None = None) -> IdentitySettings:
    """The configured identity settings with the command line's overrides applied."""
    base = settings_of(ctx).identity
    update: dict[str, Any] = {}
    if source is not None:
        update["source"] = source
    if identity is not None:
        update["identity"] = identity
    if audience is not None:
        update["audience"] = audience
    return base.model_copy(update=update)


def quiet_azure_logging() -> None:
    """azure-identity logs each refusal as a WARNING; tenantops reports it once, itself."""
    azure = logging.getLogger("azure")
    if azure.level == logging.NOTSET:
        azure.setLevel(logging.ERROR)


def _decoded_json(decoded: DecodedToken, now: float) -> dict[str, Any]:
    return {"header": dict(decoded.header), "claims": dict(decoded.claims),
            "expiry": decoded.expiry(now)}


@app.command()
def token(
    ctx: typer.Context,
    resource: Annotated[str, typer.Option(
        "--resource", help="The API: client ID, App ID URI (api://...) or '<uri>/.default'.")],
    identity: IdentityOption = None,
    source: SourceOption = None,
    decode: Annotated[bool, typer.Option(
        "--decode", help="Print the token's header, claims and expiry instead of the token.")
    ] = False,
) -> None:
    """Print an access token for RESOURCE to stdout (and nothing else), e.g. to capture it.
    With --decode, the claims and the identity source that issued it instead."""
    from tenantops.identity import IdentityCredential, parse_audience

    quiet_azure_logging()
    try:
        audience = parse_audience(resource)
        with IdentityCredential(identity_settings(ctx, source, identity)) as credential:
            issued = credential.get_token(audience)
        if decode:
            shown = {**_decoded_json(issued.decode(), time.time()), "source": issued.source}
            typer.echo(json.dumps(shown, indent=2))
            return
    except TenantOpsError as exc:
        fail(exc)
    typer.echo(issued.value)


@app.command("decode")
def decode_command(
    token: Annotated[str, typer.Argument(
        help="The access token, or '-' to read it from stdin (keeps it out of shell history).")],
    verify: Annotated[bool, typer.Option(
        "--verify", help="Fetch the issuer's OpenID configuration and JWKS; check signature "
        "and expiry.")] = False,
    audience: Annotated[str | None, typer.Option(
        "--audience", help="With --verify, also require this aud.")] = None,
) -> None:
    """Show a token's header, claims and expiry in words; the token itself is never printed."""
    import httpx

    from tenantops.identity import decode_token, verify_token

    raw = sys.stdin.read() if token == "-" else token
    now = time.time()
    try:
        decoded = decode_token(raw)
        result = _decoded_json(decoded, now)
        if verify:
            with httpx.Client(timeout=10.0) as http:
                verify_token(raw, http=http, audience=audience)
            result["verified"] = (f"signature valid (RS256, key {decoded.header.get('kid')} "
                                  f"published by {decoded.iss}); not expired"
                                  + (f"; aud is {audience}" if audience else ""))
    except TenantOpsError as exc:
        fail(exc)
    typer.echo(json.dumps(result, indent=2))


@app.command()
def doctor(
    ctx: typer.Context,
    url: Annotated[str, typer.Argument(help="A URL of the protected API, e.g. .../api/tenants, "
                                       "or a path such as /tenants under the configured API URL.")],
    identity: IdentityOption = None,
    source: SourceOption = None,
    audience: Annotated[str | None, typer.Option(
        "--audience", help="Request this audience instead of the one the API advertises.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a machine-readable report.")
                       ] = False,
) -> None:
    """Explain, step by step, why a call to URL fails, and what to do; exit 0 only if it works."""
    from tenantops.identity.doctor import Doctor

    quiet_azure_logging()
    try:
        if "://" not in url:
            from tenantops.cli.client import api_root

            url = api_root(settings_of(ctx).api.url) + "/" + url.lstrip("/")
        report = Doctor(identity_settings(ctx, source, identity), audience=audience).run(url)
    except TenantOpsError as exc:
        fail(exc)
    typer.echo(report.to_json() if as_json else report.render())
    raise typer.Exit(report.exit_code)
