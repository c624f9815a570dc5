"""What every API command shares: ``--api-url``, the identity options, one client, exit codes.

Exit codes scripts can rely on (also in ``tenantops --help`` of each command):

    0  done (a run: succeeded)          4  not found (unknown tenant or run)
    1  a run failed or was cancelled    5  conflict (another spec, another active run)
    2  invalid input (field/value/rule) 6  API unreachable, or --wait timed out
    3  not allowed: no token, 401, 403
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn

import httpx
import typer

from tenantops.cli.auth import IdentityOption, SourceOption, identity_settings, quiet_azure_logging
from tenantops.cli.context import settings_of
from tenantops.cli.progress import follow_run
from tenantops.config import IdentitySettings
from tenantops.errors import IdentityError, TenantOpsError
from tenantops.identity import (
    ApiCallRejectedError,
    DiscoveryCache,
    IdentityCredential,
    TenantOpsClient,
)
from tenantops.identity._client import ApiUnreachableError
from tenantops.log import redact

__all__ = [
    "EXIT_CONFLICT",
    "EXIT_FAILED",
    "EXIT_INVALID",
    "EXIT_NOT_ALLOWED",
    "EXIT_NOT_FOUND",
    "EXIT_UNREACHABLE",
    "Api",
    "ApiUrlOption",
    "IdentityOption",
    "JsonOption",
    "SourceOption",
    "api_root",
    "api_session",
    "discovery_cache",
    "print_json",
]

EXIT_FAILED, EXIT_INVALID, EXIT_NOT_ALLOWED, EXIT_NOT_FOUND, EXIT_CONFLICT, EXIT_UNREACHABLE = (
    1, 2, 3, 4, 5, 6)
_BY_STATUS = {400: EXIT_INVALID, 401: EXIT_NOT_ALLOWED, 403: EXIT_NOT_ALLOWED,
              404: EXIT_NOT_FOUND, 409: EXIT_CONFLICT, 422: EXIT_INVALID}

ApiUrlOption = Annotated[
    str | None,
    typer.Option("--api-url", help="The API root, with or without /api, e.g. "
                 "https://func.azurewebsites.net (default: api.url from configuration).",
                 envvar="TENANTOPS_API__URL"),
]


def api_root(url: str) -> str:
    """The API root, ``/api`` included, whether ``url`` has it or not:
    ``https://h`` and ``https://h/api/`` both give ``https://h/api``."""
    parsed = httpx.URL(url.strip())
    segments = [s for s in parsed.path.split("/") if s]
    segments = segments[: segments.index("api") + 1] if "api" in segments else [*segments, "api"]
    return str(parsed.copy_with(path="/" + "/".join(segments), query=None, fragment=None))


def discovery_cache(ids: IdentitySettings) -> DiscoveryCache | None:
    """The audience cache the identity settings ask for (``identity.discovery_cache``)."""
    return DiscoveryCache.default(ids.cache_dir) if ids.discovery_cache else None
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))


def _exit(message: str, code: int) -> NoReturn:
    typer.echo(f"error: {redact(message)}", err=True)
    raise typer.Exit(code)


class Api:
    """A thin layer over `TenantOpsClient`: JSON in and out, errors as exit codes."""

    def __init__(self, client: TenantOpsClient, base: str) -> None:
        self.client = client
        self.base = base.rstrip("/")

    def call(self, method: str, path: str, *, body: Any = None,
             params: dict[str, str] | None = None,
             headers: dict[str, str] | None = None) -> dict[str, Any]:
        url = f"{self.base}{path}"
        try:
            response = self.client.request(method, url, json=body, params=params,
                                           headers=headers)
        except ApiCallRejectedError as exc:
            _exit(str(exc), EXIT_NOT_ALLOWED)
        except (ApiUnreachableError, httpx.HTTPError) as exc:
            _exit(str(exc), EXIT_UNREACHABLE)
        except IdentityError as exc:
            _exit(str(exc), EXIT_NOT_ALLOWED)
        if response.status_code >= 400:
            try:
                problem = response.json()
                text = problem.get("error_description") or json.dumps(problem)
            except ValueError:
                text = response.text[:500]
            _exit(f"{method} {url} answered {response.status_code}: {text}",
                  _BY_STATUS.get(response.status_code, EXIT_FAILED))
        result: dict[str, Any] = response.json()
        return result

    def follow(self, run: dict[str, Any], *, timeout: float, quiet: bool) -> dict[str, Any]:
        """Follow ``run`` until it finishes or ``timeout`` passes; its last state."""
        return follow_run(lambda: self.call("GET", f"/runs/{run['id']}"), run, timeout=timeout,
                          quiet=quiet)

    def idle_hint(self, run: dict[str, Any]) -> str | None:
        """Why an unfinished run may not be moving, when the API can tell: no live worker.
        None when the run finished, a worker is alive, or the API cannot say."""
        if run["status"] not in ("pending", "running"):
            return None
        try:
            response = self.client.request("GET", f"{self.base}/workers")
            workers = response.json() if response.status_code == 200 else {}
        except (TenantOpsError, httpx.HTTPError, ValueError):
            return None
        if not isinstance(workers, dict) or workers.get("alive", 1):
            return None
        return (f"no worker has been seen in the last {workers.get('timeout_seconds', 0):g} s, "
                "so nothing executes runs: start one with 'tenantops worker' (or 'tenantops "
                "serve' without --no-worker)")


@contextmanager
def api_session(ctx: typer.Context, api_url: str | None, identity: str | None,
                source: str | None) -> Iterator[Api]:
    """An `Api` for ``api_url`` (or ``api.url``) with the identity the options name."""
    quiet_azure_logging()
    settings = settings_of(ctx)
    base = api_root(api_url or settings.api.url)
    ids = identity_settings(ctx, source, identity)  # type: ignore[arg-type]
    try:
        with IdentityCredential(ids) as credential, TenantOpsClient(
                credential=credential, configured_audience=ids.audience,
                discovery_cache=discovery_cache(ids)) as client:
            yield Api(client, base)
    except TenantOpsError as exc:
        _exit(str(exc), EXIT_NOT_ALLOWED if isinstance(exc, IdentityError) else EXIT_FAILED)


