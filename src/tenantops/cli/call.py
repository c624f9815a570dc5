"""``tenantops call METHOD URL``: like ``az rest``, but it finds the API's audience by itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from tenantops.cli.auth import IdentityOption, SourceOption, identity_settings, quiet_azure_logging
from tenantops.cli.client import (
    EXIT_INVALID,
    EXIT_NOT_ALLOWED,
    EXIT_UNREACHABLE,
    api_root,
    discovery_cache,
)
from tenantops.cli.context import fail, settings_of
from tenantops.errors import ApiUnreachableError, ConfigError, IdentityError, TenantOpsError
from tenantops.log import redact

__all__ = ["call"]

_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}


def _body(data: str | None) -> Any:
    if data is None:
        return None
    text = Path(data[1:]).read_text(encoding="utf-8") if data.startswith("@") else data
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--data is not valid JSON ({exc.msg} at line {exc.lineno}, column "
                          f"{exc.colno}); pass a JSON document or @file.json") from exc


def call(
    ctx: typer.Context,
    method: Annotated[str, typer.Argument(help="HTTP method: GET, POST, PUT, PATCH, DELETE.")],
    url: Annotated[str, typer.Argument(
        help="Absolute URL, or a path such as /tenants under the configured API URL.")],
    data: Annotated[str | None, typer.Option(
        "--data", "-d", help="JSON request body, or @file.json.")] = None,
    audience: Annotated[str | None, typer.Option(
        "--audience", help="Request this audience instead of discovering it from the API.")
    ] = None,
    identity: IdentityOption = None,
    source: SourceOption = None,
) -> None:
    """Call a protected API with a token for its audience; print the response body.

    The audience is discovered from the API unless given, and a server may only ask for an
    application ID or api:// URI, never a Microsoft service's audience. The token goes only
    over https (or plain http to this machine), never along a redirect. Exit codes: 0 2xx,
    1 other answers (a redirect names where it pointed), 2 invalid input, 3 no token or
    401/403, 6 unreachable. A 401/403 is explained (the token's claims beside what the API
    expects).
    """
    from tenantops.identity import IdentityCredential, TenantOpsClient

    quiet_azure_logging()
    verb = method.upper()
    if verb not in _METHODS:
        fail(ConfigError(f"METHOD {method!r} is not one of {', '.join(sorted(_METHODS))}"),
             EXIT_INVALID)
    settings = settings_of(ctx)
    target = url if "://" in url else api_root(settings.api.url) + "/" + url.lstrip("/")
    ids = identity_settings(ctx, source, identity)
    try:
        body = _body(data)
        with IdentityCredential(ids) as credential, TenantOpsClient(
                credential=credential, audience=audience, configured_audience=ids.audience,
                discovery_cache=discovery_cache(ids)) as client:
            response = client.request(verb, target, json=body)
    except ApiUnreachableError as exc:
        fail(exc, EXIT_UNREACHABLE)
    except ConfigError as exc:
        fail(exc, EXIT_INVALID)
    except IdentityError as exc:
        fail(exc, EXIT_NOT_ALLOWED)
    except (TenantOpsError, OSError) as exc:
        fail(exc)
    if response.text:
        typer.echo(redact(response.text))
    if response.status_code >= 400:
        typer.echo(f"error: {verb} {target} answered {response.status_code} "
                   f"{response.reason_phrase}; the response body is above. Next: check the "
                   "request (URL, body) and the API's logs.", err=True)
        raise typer.Exit(1)
