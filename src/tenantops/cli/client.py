"""What every API command shares: ``--api-url``, the identity options, one client, exit codes.

Exit codes scripts can rely on (also in ``tenantops --help`` of each command):

    0  done (a run: succeeded)          4  not found (unknown tenant or run)
    1  a run failed or was cancelled    5  conflict (another spec, another active run)
    2  invalid input (field/value/rule) 6  unreachable or unavailable: the API, what it
    3  not allowed: no token, 401, 403     depends on (502/503/504), the identity provider;
                                           or --wait timed out

While following a run (``--wait``), the API being briefly unavailable (a 502/503/504, a refused
or dropped connection, an identity provider that does not answer) is ridden out: the CLI says
so once, tries again with backoff (0.5 s doubling to 8 s, or the server's ``Retry-After``) until
``--timeout``, and the exit code then says what really happened to the run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from tenantops.cli.auth import IdentityOption, SourceOption, identity_settings, quiet_azure_logging
from tenantops.cli.context import settings_of
from tenantops.cli.progress import follow_run
from tenantops.errors import CredentialUnavailableError, IdentityError, TenantOpsError
from tenantops.log import redact

if TYPE_CHECKING:  # azure-identity, httpx and pydantic load when a command calls the API
    import httpx

    from tenantops.config import IdentitySettings
    from tenantops.identity import DiscoveryCache, TenantOpsClient

__all__ = [
    "EXIT_CONFLICT",
    "EXIT_FAILED",
    "EXIT_INVALID",
    "EXIT_NOT_ALLOWED",
    "EXIT_NOT_FOUND",
    "EXIT_UNREACHABLE",
    "TRANSIENT_STATUSES",
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
              404: EXIT_NOT_FOUND, 409: EXIT_CONFLICT, 422: EXIT_INVALID,
              502: EXIT_UNREACHABLE, 503: EXIT_UNREACHABLE, 504: EXIT_UNREACHABLE}
TRANSIENT_STATUSES = frozenset({502, 503, 504})
"""Answers that mean "not now" (a proxy, the catalog or the token keys unavailable)."""
_BACKOFF_FIRST, _BACKOFF_MAX = 0.5, 8.0

ApiUrlOption = Annotated[
    str | None,
    typer.Option("--api-url", help="The API root, with or without /api, e.g. "
                 "https://func.azurewebsites.net (default: api.url from configuration).",
                 envvar="TENANTOPS_API__URL"),
]


def api_root(url: str) -> str:
    """The API root, ``/api`` included, whether ``url`` has it or not:
    ``https://h`` and ``https://h/api/`` both give ``https://h/api``."""
    import httpx

    parsed = httpx.URL(url.strip())
    segments = [s for s in parsed.path.split("/") if s]
    segments = segments[: segments.index("api") + 1] if "api" in segments else [*segments, "api"]
    return str(parsed.copy_with(path="/" + "/".join(segments), query=None, fragment=None))


def discovery_cache(ids: IdentitySettings) -> DiscoveryCache | None:
    """The audience cache the identity settings ask for (``identity.discovery_cache``)."""
    from tenantops.identity import DiscoveryCache

    return DiscoveryCache.default(ids.cache_dir) if ids.discovery_cache else None
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))


def _exit(message: str, code: int) -> NoReturn:
    typer.echo(f"error: {redact(message)}", err=True)
    raise typer.Exit(code)


class _Unavailable(Exception):
    """The API, or what it depends on, did not answer this time (internal to `Api`)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _cause_is_unreachable(exc: BaseException) -> bool:
    """True when ``exc`` was caused by not reaching a server at all (connection refused,
    DNS, TLS, timeout), however the library that met it wrapped it."""
    import httpx
    from azure.core.exceptions import ServiceRequestError, ServiceResponseError

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (httpx.TransportError, ServiceRequestError,
                                ServiceResponseError, ConnectionError, TimeoutError)):
            return True
        current = current.__cause__ or current.__context__
    return False


def _identity_provider_unreachable(exc: TenantOpsError) -> bool:
    """A token request that was sent and met no answer (exit 6), as opposed to no identity
    at all (`CredentialUnavailableError`) or a refusal (both exit 3)."""
    return (isinstance(exc, IdentityError) and not isinstance(exc, CredentialUnavailableError)
            and _cause_is_unreachable(exc))


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class Api:
    """A thin layer over `TenantOpsClient`: JSON in and out, errors as exit codes.

    ``clock`` and ``sleep`` are the seams of `poll`'s backoff (monotonic seconds)."""

    def __init__(self, client: TenantOpsClient, base: str, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = client
        self.base = base.rstrip("/")
        self.clock = clock
        self.sleep = sleep

    def _send(self, method: str, path: str, *, body: Any = None,
              params: dict[str, Any] | None = None,
              headers: dict[str, str] | None = None) -> dict[str, Any]:
        """The JSON answer; `_Unavailable` when trying again later may help; exits otherwise."""
        import httpx

        from tenantops.errors import ApiUnreachableError
        from tenantops.identity import ApiCallRejectedError

        url = f"{self.base}{path}"
        try:
            response = self.client.request(method, url, json=body, params=params,
                                           headers=headers)
        except ApiCallRejectedError as exc:
            _exit(str(exc), EXIT_NOT_ALLOWED)
        except (ApiUnreachableError, httpx.HTTPError) as exc:
            raise _Unavailable(str(exc)) from exc
        except IdentityError as exc:
            if _identity_provider_unreachable(exc):
                raise _Unavailable(f"no token could be had because the identity provider did "
                                   f"not answer: {exc}") from exc
            _exit(str(exc), EXIT_NOT_ALLOWED)
        if response.status_code >= 400:
            try:
                problem = response.json()
                text = problem.get("error_description") or json.dumps(problem)
            except ValueError:
                text = response.text[:500]
            message = f"{method} {url} answered {response.status_code}: {text}"
            if response.status_code in TRANSIENT_STATUSES:
                raise _Unavailable(message, _retry_after(response))
            _exit(message, _BY_STATUS.get(response.status_code, EXIT_FAILED))
        result: dict[str, Any] = response.json()
        return result

    def call(self, method: str, path: str, *, body: Any = None,
             params: dict[str, Any] | None = None,
             headers: dict[str, str] | None = None) -> dict[str, Any]:
        """One request; any failure exits with its code (6 when the API is unavailable)."""
        try:
            return self._send(method, path, body=body, params=params, headers=headers)
        except _Unavailable as exc:
            _exit(str(exc), EXIT_UNREACHABLE)

    def poll(self, path: str, *, deadline: float, what: str, again: str) -> dict[str, Any]:
        """``GET path``, riding out unavailability with backoff until ``deadline`` (on
        ``clock``); says once on stderr that it is waiting and when the API is back. At the
        deadline it exits 6 naming ``what`` it was following, the last error, and the command
        that follows it ``again``."""
        delay = _BACKOFF_FIRST
        outage_began: float | None = None
        while True:
            try:
                result = self._send("GET", path)
            except _Unavailable as exc:
                now = self.clock()
                if outage_began is None:
                    outage_began = now
                    typer.echo(f"warning: {redact(str(exc))}\n  {what} goes on in the API; "
                               "trying again until --timeout", err=True)
                if now >= deadline:
                    _exit(f"{exc}; the API was still unavailable after "
                          f"{now - outage_began:.1f} s, when --timeout ran out. {what} may "
                          f"still finish: follow it again with '{again}'", EXIT_UNREACHABLE)
                wait = min(exc.retry_after if exc.retry_after is not None else delay,
                           _BACKOFF_MAX, max(0.0, deadline - now))
                self.sleep(wait)
                delay = min(delay * 2, _BACKOFF_MAX)
                continue
            if outage_began is not None:
                typer.echo(f"the API answers again after {self.clock() - outage_began:.1f} s",
                           err=True)
            return result

    def follow(self, run: dict[str, Any], *, timeout: float, quiet: bool) -> dict[str, Any]:
        """Follow ``run`` until it finishes or ``timeout`` passes; its last state."""
        deadline = self.clock() + timeout
        path, what = f"/runs/{run['id']}", f"run {run['id']}"
        again = f"tenantops runs show {run['id']} --wait"
        return follow_run(lambda: self.poll(path, deadline=deadline, what=what, again=again),
                          run, timeout=timeout, quiet=quiet)

    def idle_hint(self, run: dict[str, Any]) -> str | None:
        """Why an unfinished run may not be moving, when the API can tell: no live worker.
        None when the run finished, a worker is alive, or the API cannot say."""
        import httpx

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
    from tenantops.identity import IdentityCredential, TenantOpsClient

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
        if _identity_provider_unreachable(exc):
            _exit(str(exc), EXIT_UNREACHABLE)
        _exit(str(exc), EXIT_NOT_ALLOWED if isinstance(exc, IdentityError) else EXIT_FAILED)


