"""``tenantops serve``: run the API with uvicorn.

Which tokens it trusts, in one of three modes:

- default: the authority, tenant and client ID of the configuration (``auth.*``);
- ``--emulator URL``: a running emulator; tenant and the ``tenantops-api`` client ID come from
  ``URL/_emulator/directory``, the CA bundle from ``--emulator-ca`` or ``emulator.json``;
- ``--dev``: an emulator started in this process (data under the data folder), trusted as above.

Trusting an emulator means trusting tokens anyone on this machine can mint; it prints so.

``--detach`` starts the same command in the background (its output in ``<data_dir>/serve.log``),
returns once it answers, and ``--stop`` stops it: one terminal is enough to try tenantops.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tenantops.cli.context import fail, settings_of
from tenantops.errors import ConfigError, EmulatorError, TenantOpsError

if TYPE_CHECKING:  # the API, the emulator and the engine load when serve runs
    import httpx

    from tenantops.config import AuthSettings, Settings
    from tenantops.emulator.server import EmulatorServer
    from tenantops.provisioning.engine import Engine

__all__ = ["API_APP_NAME", "BACKGROUND_FILE", "configured_auth", "emulator_auth", "serve"]

BACKGROUND_FILE = "serve.json"
"""In the data folder while a ``serve`` runs: its pid and URL (``--stop`` reads it)."""
_LOG_FILE = "serve.log"
_START_LIMIT_SECONDS = 300.0  # a start that has not answered by then is reported, not awaited

API_APP_NAME = "tenantops-api"

_WARNING = """\
!!! WARNING: tenantops serve is trusting the LOCAL EMULATOR at {authority}
!!! (tenant {tenant}). Anyone who can reach that emulator can mint tokens this API accepts.
!!! For development and tests only; never expose this API or use --emulator/--dev in production.
"""


def configured_auth(settings: Settings) -> AuthSettings:
    """``settings.auth`` when it names a tenant and a client ID; `ConfigError` otherwise."""
    auth = settings.auth
    for name, value in (("tenant_id", auth.tenant_id), ("client_id", auth.client_id)):
        if not value:
            raise ConfigError(
                f"auth.{name} is not set: serve needs the Entra tenant and the API app's client "
                f"ID to check tokens. Set [auth] {name} in tenantops.toml or "
                f"TENANTOPS_AUTH__{name.upper()}, or run against a local emulator with "
                "--emulator URL or --dev"
            )
    return auth


def _ssl_context(ca_bundle: Path | None) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=str(ca_bundle) if ca_bundle else None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"--emulator-ca {ca_bundle} cannot be read as a PEM bundle: {exc}") from exc


def emulator_auth(
    base: AuthSettings,
    url: str,
    ca_bundle: Path | None,
    *,
    transport: httpx.BaseTransport | None = None,
) -> AuthSettings:
    """``base`` pointed at the emulator at ``url``: its tenant, its ``tenantops-api`` client ID
    and ``ca_bundle``; reads ``<url>/_emulator/directory``."""
    import httpx

    authority = url.rstrip("/")
    where = f"{authority}/_emulator/directory"
    try:
        with httpx.Client(transport=transport, verify=_ssl_context(ca_bundle), timeout=10) as http:
            response = http.get(where)
        response.raise_for_status()
        directory = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        hint = "" if ca_bundle else " (an emulator's certificate needs --emulator-ca)"
        raise EmulatorError(
            f"cannot read the emulator's directory at {where}: {type(exc).__name__}: {exc}. Is "
            f"the emulator running there ('tenantops emulator')?{hint}"
        ) from exc
    tenant_id = directory.get("tenant_id") if isinstance(directory, dict) else None
    apps = directory.get("apps", []) if isinstance(directory, dict) else []
    api = next((a for a in apps if isinstance(a, dict) and a.get("name") == API_APP_NAME), None)
    if not isinstance(tenant_id, str) or api is None or not isinstance(api.get("client_id"), str):
        raise EmulatorError(
            f"the emulator at {authority} has no app registration named {API_APP_NAME!r} (or no "
            "tenant_id); add one to its directory file (emulator.directory)"
        )
    # The emulator's apps and identities by name, so runs say who asked in words.
    names = {str(entry["client_id"]): str(entry["name"])
             for entry in [*apps, *directory.get("identities", [])]
             if isinstance(entry, dict) and entry.get("client_id") and entry.get("name")}
    return base.model_copy(update={
        "authority": authority, "tenant_id": tenant_id, "client_id": api["client_id"],
        "ca_bundle": ca_bundle,
        "application_names": {**names, **base.application_names},
    })


def _start_dev_emulator(settings: Settings) -> EmulatorServer:
    from tenantops.emulator.directory import default_directory, load_directory
    from tenantops.emulator.server import EmulatorServer

    cfg = settings.emulator
    directory = load_directory(cfg.directory) if cfg.directory else default_directory()
    server = EmulatorServer(
        directory, settings.data_dir, host=cfg.host, port=cfg.port, mi_port=cfg.mi_port,
        allow_remote=cfg.allow_remote, key_grace_seconds=cfg.key_grace_hours * 3600)
    server.start()
    return server


def serve(
    ctx: typer.Context,
    host: Annotated[
        str | None, typer.Option(help="Address to bind (default: api.host, 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to listen on (default: api.port; 0 picks a free one).")
    ] = None,
    emulator: Annotated[
        str | None,
        typer.Option("--emulator", metavar="URL",
                     help="Trust tokens of the emulator at URL (development only)."),
    ] = None,
    emulator_ca: Annotated[
        Path | None,
        typer.Option("--emulator-ca", metavar="PATH",
                     help="CA bundle of that emulator (default: ca_bundle of emulator.json in "
                          "the data folder)."),
    ] = None,
    dev: Annotated[
        bool,
        typer.Option("--dev", help="Start an emulator in this process and trust it "
                                   "(development only)."),
    ] = False,
    worker: Annotated[
        bool,
        typer.Option("--worker/--no-worker", help="Also execute runs in this process (with the "
                     "embedded providers' servers); --no-worker leaves them to 'tenantops "
                     "worker'."),
    ] = True,
    detach: Annotated[
        bool,
        typer.Option("--detach", help="Run in the background (output in <data dir>/serve.log); "
                     "return once it answers. 'tenantops serve --stop' stops it."),
    ] = False,
    stop: Annotated[
        bool,
        typer.Option("--stop", help="Stop the server that --detach started with this data "
                     "folder."),
    ] = False,
    ready_file: Annotated[Path | None, typer.Option(hidden=True)] = None,
) -> None:
    """Run the API (and a worker). Trusts the configured Entra tenant, or an emulator with
    --emulator/--dev."""
    if stop:
        _stop_background(settings_of(ctx).data_dir)
        return
    if detach:
        _start_background(settings_of(ctx).data_dir)
        return
    import uvicorn

    from tenantops.api import create_app
    from tenantops.auth import expected_audiences
    from tenantops.emulator.server import read_info
    from tenantops.listen import listen
    from tenantops.provisioning.engine import Engine

    settings = settings_of(ctx)
    dev_emulator: EmulatorServer | None = None
    engine: Engine | None = None
    # SIGTERM (kill, systemd, docker stop, --stop) stops as cleanly as Ctrl-C: uvicorn
    # captures it while serving and raises it again once it has stopped.
    previous_term = signal.signal(signal.SIGTERM, _interrupt)
    try:
        if dev and emulator:
            raise ConfigError("--dev starts its own emulator; do not combine it with --emulator")
        if dev:
            dev_emulator = _start_dev_emulator(settings)
            info = dev_emulator.info
            auth = emulator_auth(settings.auth, info.authority, Path(info.ca_bundle))
        elif emulator:
            info_file = read_info(settings.data_dir)
            ca = emulator_ca or (Path(info_file.ca_bundle) if info_file else None)
            auth = emulator_auth(settings.auth, emulator, ca)
        else:
            auth = configured_auth(settings)
        if dev or emulator:
            typer.echo(_WARNING.format(authority=auth.authority, tenant=auth.tenant_id), err=True)
        effective = settings.model_copy(update={"auth": auth})
        engine = Engine(effective)
        if worker:
            engine.start()
        else:
            engine.catalog.migrate()  # requests are accepted before any worker has started
        app = create_app(effective, engine=engine)
        bind_host = host or settings.api.host
        sock = listen(bind_host, settings.api.port if port is None else port,
                      setting="--port or api.port")
        bound_port = sock.getsockname()[1]
        shown_host = f"[{bind_host}]" if ":" in bind_host else bind_host
        typer.echo(f"tenantops API  http://{shown_host}:{bound_port}/api")
        typer.echo(f"client ID      {auth.client_id}")
        typer.echo(f"audiences      {', '.join(expected_audiences(auth))}")
        typer.echo(f"tenant         {auth.tenant_id} at {auth.authority}")
        typer.echo("worker         " + ("in this process" if worker else
                                        "none: start 'tenantops worker' to execute runs"))
        if settings.dashboard.enabled:
            typer.echo(f"dashboard      http://{shown_host}:{bound_port}/"
                       + ("  (sign in as operator@contoso.test / operator)" if dev else ""))
        if dev:
            _print_identities(settings.data_dir)
        if ready_file is not None:
            ready_file.write_text(json.dumps({
                "pid": os.getpid(), "url": f"http://{shown_host}:{bound_port}/api"}),
                encoding="utf-8")
        config = uvicorn.Config(app, log_config=None, access_log=True, server_header=False,
                                lifespan="on")
        uvicorn.Server(config).run(sockets=[sock])
    except TenantOpsError as exc:
        fail(exc)
    except KeyboardInterrupt:
        pass
    finally:
        if engine is not None:
            engine.stop()
        if dev_emulator is not None:
            dev_emulator.stop()
        if ready_file is not None:
            ready_file.unlink(missing_ok=True)
        signal.signal(signal.SIGTERM, previous_term)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _data_dir_option(data_dir: Path) -> str:
    """``--data-dir DIR `` when ``data_dir`` is not the default one, else empty."""
    import shlex

    if data_dir.resolve() == (Path.cwd() / ".tenantops").resolve():
        return ""
    return f"--data-dir {shlex.quote(str(data_dir))} "


def _print_identities(data_dir: Path) -> None:
    from tenantops.cli.demo import identity_lines

    typer.echo("identities     the CLI acts as one of the emulator's terminal identities:")
    for line in identity_lines(_data_dir_option(data_dir)):
        typer.echo(f"  {line}")


def _start_background(data_dir: Path) -> None:
    """Start this same command without --detach in a new session, its output in the log;
    return once it is ready (its banner printed), or fail with the end of its log."""
    data_dir.mkdir(parents=True, exist_ok=True)
    state, log_path = data_dir / BACKGROUND_FILE, data_dir / _LOG_FILE
    running = _background_pid(state)
    if running is not None:
        fail(ConfigError(f"a tenantops serve already runs in the background for {data_dir} "
                         f"(pid {running}); stop it first with 'tenantops "
                         f"{_data_dir_option(data_dir)}serve --stop'"))
    state.unlink(missing_ok=True)
    args = [a for a in sys.argv[1:] if a != "--detach"]
    with log_path.open("w", encoding="utf-8") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "tenantops", *args, "--ready-file", str(state)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    began = time.monotonic()
    while not state.exists():
        if child.poll() is not None or time.monotonic() - began > _START_LIMIT_SECONDS:
            if child.poll() is None:
                child.terminate()
            tail = log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
            fail(ConfigError(f"tenantops serve did not start in the background (see "
                             f"{log_path}):\n{tail}"))
        time.sleep(0.1)
    banner = log_path.read_text(encoding="utf-8", errors="replace")
    typer.echo(banner.rstrip("\n"))
    typer.echo(f"running in the background (pid {child.pid}, output in {log_path}); stop it "
               f"with: tenantops {_data_dir_option(data_dir)}serve --stop")


def _background_pid(state: Path) -> int | None:
    """The pid recorded in ``state`` when that process still runs, else None."""
    try:
        pid = int(json.loads(state.read_text(encoding="utf-8"))["pid"])
        os.kill(pid, 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return pid


def _stop_background(data_dir: Path) -> None:
    state = data_dir / BACKGROUND_FILE
    pid = _background_pid(state)
    if pid is None:
        state.unlink(missing_ok=True)
        typer.echo(f"no tenantops serve runs in the background for {data_dir}; nothing to stop")
        return
    url = json.loads(state.read_text(encoding="utf-8")).get("url", "")
    os.kill(pid, signal.SIGTERM)
    began = time.monotonic()
    while _background_pid(state) is not None and state.exists():
        if time.monotonic() - began > 60:
            os.kill(pid, signal.SIGKILL)
            break
        time.sleep(0.1)
    state.unlink(missing_ok=True)
    typer.echo(f"stopped tenantops serve (pid {pid}) at {url}, with its worker and "
               f"emulator; the data stays in {data_dir}")
