"""``tenantops demo``: the whole system on loopback, two tenants onboarded while you watch.

Starts the emulator (Entra ID + managed-identity endpoints), the API with a worker and the
embedded providers' servers (DNS responder, TLS edge, sample tenant app), then onboards two
sample tenants through the API with a service principal of the emulator's directory, showing
each step. Prints what to try next (with the terminal identities ``ops-admin``, which holds
every app role, and ``ops-reader``, which only reads) and serves until Ctrl-C (``--exit`` stops
after onboarding, for scripts). Its data lives in ``<data_dir>/demo``; a second start keeps it
(tenants already onboarded stay as they are) and the ports of the first start, recorded in
``ports.json`` there, unless one is taken meanwhile; ``--clean`` starts afresh.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import shutil
import socket
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tenantops.cli.context import fail, settings_of
from tenantops.errors import TenantOpsError

if TYPE_CHECKING:
    import uvicorn

    from tenantops.emulator.server import EmulatorServer
    from tenantops.provisioning.engine import Engine

__all__ = ["ADMIN_IDENTITY", "PORTS_FILE", "READER_IDENTITY", "demo", "identity_lines"]

SAMPLE_TENANTS = [
    {"slug": "acme", "display_name": "Acme Corporation", "custom_domain": "acme.demo.test",
     "plan": "standard", "admin_email": "admin@acme.demo.test"},
    {"slug": "globex", "display_name": "Globex", "custom_domain": "portal.globex.demo.test",
     "plan": "premium", "admin_email": "it@globex.demo.test"},
]
CI_APP = "ci-pipeline"
CI_SECRET = "ci-local-secret"  # public by design: the emulator's built-in directory
ADMIN_IDENTITY = "ops-admin"
READER_IDENTITY = "ops-reader"
PORTS_FILE = "ports.json"
# What each recorded port serves, in the order the demo prints them.
_PORTS = {"api": "API", "emulator": "Entra emulator", "managed_identity": "managed identity",
          "dns": "DNS responder", "edge": "TLS edge", "app": "sample tenant app"}


def _me() -> str:
    return shlex.quote(sys.argv[0]) if sys.argv[0].endswith("tenantops") else "tenantops"


def identity_lines(data_dir_option: str) -> list[str]:
    """How to act as the emulator's terminal identities, as shell lines (``data_dir_option``:
    ``--data-dir DIR `` or empty)."""
    me = _me()
    return [
        f"# every app role (Tenants.Read, .Write, .Delete): {ADMIN_IDENTITY}",
        f"export $({me} {data_dir_option}emulator env --identity {ADMIN_IDENTITY} "
        "--runtime app-service | xargs)",
        f"# Tenants.Read only (writes get a 403 naming the missing role): {READER_IDENTITY}",
        f"#   export $({me} {data_dir_option}emulator env --identity {READER_IDENTITY} "
        "--runtime app-service | xargs)",
    ]


def _free(port: int, udp: bool = False) -> bool:
    """True when ``port`` on loopback can be bound now (TCP, and UDP when ``udp``)."""
    kinds = [socket.SOCK_STREAM, socket.SOCK_DGRAM] if udp else [socket.SOCK_STREAM]
    for kind in kinds:
        with socket.socket(socket.AF_INET, kind) as probe:
            if kind == socket.SOCK_STREAM:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def _wanted_ports(data_dir: Path) -> tuple[dict[str, int], list[str]]:
    """The ports recorded by an earlier start that are still free (0 for the others: any),
    and a note for each recorded port that is taken now."""
    try:
        recorded = json.loads((data_dir / PORTS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        recorded = {}
    wanted: dict[str, int] = {}
    notes: list[str] = []
    for name, label in _PORTS.items():
        port = recorded.get(name) if isinstance(recorded, dict) else None
        if not isinstance(port, int) or not 0 < port < 65536:
            wanted[name] = 0
        elif _free(port, udp=name == "dns"):
            wanted[name] = port
        else:
            wanted[name] = 0
            notes.append(f"port {port} of the {label} is taken now, so it gets another one")
    return wanted, notes


def _listen(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:  # taken between the check and now: any free port
        sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


def demo(
    ctx: typer.Context,
    exit_after: Annotated[
        bool, typer.Option("--exit", help="Stop after onboarding instead of serving.")
    ] = False,
    clean: Annotated[
        bool, typer.Option("--clean", help="Start from an empty demo data folder (and new "
                           "ports).")
    ] = False,
) -> None:
    """Run everything locally and onboard two sample tenants while showing progress.
    A second start keeps the data and the ports of the first."""
    import uvicorn

    from tenantops.api import create_app
    from tenantops.cli.serve import emulator_auth
    from tenantops.config import Settings
    from tenantops.emulator.directory import default_directory
    from tenantops.emulator.server import EmulatorServer
    from tenantops.provisioning.engine import Engine
    from tenantops.provisioning.worker import engine_addresses

    base = settings_of(ctx)
    logging.getLogger("tenantops").setLevel(logging.WARNING)  # the demo shows progress itself
    data_dir = (base.data_dir / "demo").resolve()
    if clean and data_dir.exists():
        shutil.rmtree(data_dir)
    kept = (data_dir / "catalog.sqlite").exists()
    data_dir.mkdir(parents=True, exist_ok=True)
    wanted, notes = _wanted_ports(data_dir)
    directory = default_directory()
    emulator = EmulatorServer(directory, data_dir, port=wanted["emulator"],
                              mi_port=wanted["managed_identity"])
    engine: Engine | None = None
    server: uvicorn.Server | None = None
    thread: threading.Thread | None = None
    stopped: list[str] = []
    try:
        info = emulator.start()
        auth = emulator_auth(base.auth, info.authority, Path(info.ca_bundle))
        settings = Settings(
            data_dir=data_dir, log_level="WARNING", auth=auth,
            providers={"dns": {"port": wanted["dns"]},
                       "webhost": {"port": wanted["edge"], "app_port": wanted["app"]}},
        )
        engine = Engine(settings)
        engine.start()
        addresses = engine_addresses(engine)
        sock = _listen(wanted["api"])
        api_url = f"http://127.0.0.1:{sock.getsockname()[1]}/api"
        server = uvicorn.Server(uvicorn.Config(
            create_app(settings, engine=engine), log_level="warning", access_log=False,
            lifespan="on"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError(f"the API did not start on {api_url}")
            time.sleep(0.02)
        ports = _record_ports(data_dir, sock.getsockname()[1], info.authority, info.mi_url,
                              addresses, engine)
        stopped = [f"the API at {api_url}", "the worker",
                   f"the DNS responder on 127.0.0.1:{ports['dns']}",
                   f"the TLS edge on 127.0.0.1:{ports['edge']}",
                   f"the emulator at {info.authority}"]
        typer.echo("tenantops demo: emulator, API, worker, DNS responder and TLS edge are "
                   "running on loopback.")
        if kept:
            tenants = len(engine.catalog.list_tenants())
            typer.echo(f"Kept the data of the previous start in {data_dir} ({tenants} "
                       f"tenant{'s' if tenants != 1 else ''}; --clean starts afresh), on the "
                       "same ports" + (" where they were free." if notes else "."))
        for note in notes:
            typer.echo(f"  note: {note}")
        typer.echo("")
        typer.echo(f"  dashboard         {api_url.removesuffix('/api')}/  (sign in as "
                   "operator@contoso.test / operator, or reader@contoso.test / reader)")
        typer.echo(f"  API               {api_url}")
        typer.echo(f"  Entra emulator    {info.authority}/{info.tenant_id}")
        typer.echo(f"  managed identity  {info.mi_url}")
        typer.echo(f"  DNS responder     127.0.0.1:{ports['dns']}")
        typer.echo(f"  TLS edge          127.0.0.1:{ports['edge']}\n")

        failed = _onboard_samples(directory, info, api_url)
        _next_steps(data_dir, api_url, ports, info.ca_bundle, str(info.authority))
        if failed:
            typer.echo("error: an onboarding did not succeed; see the steps above", err=True)
            raise typer.Exit(1)
        if exit_after:
            return
        typer.echo("\nServing until Ctrl-C.")
        while thread.is_alive():
            thread.join(timeout=3600)
    except TenantOpsError as exc:
        fail(exc)
    except KeyboardInterrupt:
        typer.echo("\nstopping…")
    finally:
        _stop(server, thread, engine, emulator)
    if stopped and not exit_after:
        typer.echo("stopped " + ", ".join(stopped) + f".\nThe data stays in {data_dir}: "
                   "'tenantops demo' starts again with it, on the same ports.")


def _stop(server: uvicorn.Server | None, thread: threading.Thread | None,
          engine: Engine | None, emulator: EmulatorServer) -> None:
    if server is not None:
        server.should_exit = True
        if thread is not None:
            thread.join(timeout=10)
    if engine is not None:
        engine.stop()
    emulator.stop()


def _record_ports(data_dir: Path, api_port: int, authority: str, mi_url: str,
                  addresses: dict[str, int | None], engine: Engine) -> dict[str, int]:
    """Write the ports this start bound to ``ports.json`` (the next start reuses them)."""
    from urllib.parse import urlsplit

    app = getattr(engine.providers.webhost, "app", None)
    ports = {
        "api": api_port,
        "emulator": urlsplit(authority).port or 0,
        "managed_identity": urlsplit(mi_url).port or 0,
        "dns": addresses.get("dns_port") or 0,
        "edge": addresses.get("edge_port") or 0,
        "app": int(app.port) if app is not None else 0,
    }
    with contextlib.suppress(OSError):  # a read-only folder costs only the ports next time
        (data_dir / PORTS_FILE).write_text(json.dumps(ports, indent=2) + "\n", encoding="utf-8")
    return ports


def _onboard_samples(directory: Any, info: Any, api_url: str) -> bool:
    """Onboard the sample tenants as the ``ci-pipeline`` service principal, following each
    run; True when one did not succeed."""
    from tenantops.cli.progress import follow_run
    from tenantops.config import IdentitySettings
    from tenantops.identity import IdentityCredential, TenantOpsClient

    ci = directory.app_by_name(CI_APP)
    if ci is None:
        raise RuntimeError(f"the emulator's directory has no {CI_APP!r} app")
    os.environ.update({
        "AZURE_TENANT_ID": info.tenant_id, "AZURE_CLIENT_ID": ci.client_id,
        "AZURE_CLIENT_SECRET": CI_SECRET, "AZURE_AUTHORITY_HOST": info.authority,
        "REQUESTS_CA_BUNDLE": info.ca_bundle,
    })
    failed = False
    with IdentityCredential(IdentitySettings(source="environment")) as credential, \
            TenantOpsClient(api_url, credential=credential) as client:
        for spec in SAMPLE_TENANTS:
            response = client.post("/tenants", json=spec)
            if response.status_code != 202:
                fail(RuntimeError(f"onboarding {spec['slug']} answered "
                                  f"{response.status_code}: {response.text}"))
            run = response.json()["run"]
            path = f"/runs/{run['id']}"

            def fetch(path: str = path) -> dict[str, Any]:
                result: dict[str, Any] = client.get(path).json()
                return result

            run = follow_run(fetch, run, timeout=120, poll=0.2)
            failed = failed or run["status"] != "succeeded"
            typer.echo("")
    return failed


def _next_steps(data_dir: Path, api_url: str, ports: dict[str, int],
                ca_bundle: str, authority: str) -> None:
    from tenantops.emulator.directory import API_CLIENT_ID

    me = _me()
    dd = shlex.quote(str(data_dir))
    edge_ca = shlex.quote(str(data_dir / "edge" / "ca" / "ca.pem"))
    dns_port, edge_port = ports["dns"], ports["edge"]
    runbook = Path(__file__).resolve().parents[3] / "runbooks" / "onboard_tenant.py"
    typer.echo("Try next (in another shell while this one keeps serving):\n")
    typer.echo("  # the CLI as an operator at this terminal: point it at the demo's API, and act")
    typer.echo(f"  export TENANTOPS_API__URL={api_url}")
    for line in identity_lines(f"--data-dir {dd} "):
        typer.echo(f"  {line}")
    typer.echo(f"  {me} tenants list")
    typer.echo(f"  {me} offboard globex --yes")
    typer.echo("  # the tenant's DNS records, from the embedded authoritative server")
    typer.echo(f"  dig @127.0.0.1 -p {dns_port} acme.demo.test CNAME +short")
    typer.echo(f"  dig @127.0.0.1 -p {dns_port} asuid.acme.demo.test TXT +short")
    typer.echo("  # the tenant served over TLS with its own certificate (SNI)")
    typer.echo(f"  curl --resolve acme.demo.test:{edge_port}:127.0.0.1 --cacert {edge_ca} "
               f"https://acme.demo.test:{edge_port}/")
    typer.echo("  # the API, as the Automation account's managed identity (audience discovered)")
    typer.echo(f"  env $({me} --data-dir {dd} emulator env --identity aa-onboarding "
               f"--runtime automation | xargs) {me} call GET {api_url}/tenants/acme")
    typer.echo("  # the runbook of the original problem, with the Automation variables")
    typer.echo(f"  env $({me} --data-dir {dd} emulator env --identity aa-onboarding "
               f"--runtime automation | xargs) python3 {shlex.quote(str(runbook))} "
               f"--api-url {api_url.removesuffix('/api')} --client-id {API_CLIENT_ID} "
               "--slug initech --domain initech.demo.test --admin-email ops@initech.demo.test")
    typer.echo("  # the original problem: why a token for Azure Resource Manager is refused")
    typer.echo(f"  env $({me} --data-dir {dd} emulator env --identity aa-onboarding "
               f"--runtime automation | xargs) {me} auth doctor {api_url}/tenants "
               "--audience https://management.core.windows.net/")
    typer.echo(f"\n  (emulator authority {authority}; its CA bundle {ca_bundle})")
