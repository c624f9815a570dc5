"""``tenantops demo``: the whole system on loopback, two tenants onboarded while you watch.

Starts the emulator (Entra ID + managed-identity endpoints), the API with a worker and the
embedded providers' servers (DNS responder, TLS edge, sample tenant app), on free ports, then
onboards two sample tenants through the API with a service principal of the emulator's
directory, showing each step. Prints what to try next and serves until Ctrl-C (``--exit``
stops after onboarding, for scripts). Its data lives in ``<data_dir>/demo``; a second run
reuses it (tenants already onboarded stay as they are), ``--clean`` starts afresh.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn

from tenantops.api import create_app
from tenantops.cli.context import fail, settings_of
from tenantops.cli.progress import follow_run
from tenantops.cli.serve import emulator_auth
from tenantops.config import IdentitySettings, Settings
from tenantops.emulator.directory import API_CLIENT_ID, default_directory
from tenantops.emulator.server import EmulatorServer
from tenantops.errors import TenantOpsError
from tenantops.identity import IdentityCredential, TenantOpsClient
from tenantops.provisioning.engine import Engine
from tenantops.provisioning.worker import engine_addresses

__all__ = ["demo"]

SAMPLE_TENANTS = [
    {"slug": "acme", "display_name": "Acme Corporation", "custom_domain": "acme.demo.test",
     "plan": "standard", "admin_email": "admin@acme.demo.test"},
    {"slug": "globex", "display_name": "Globex", "custom_domain": "portal.globex.demo.test",
     "plan": "premium", "admin_email": "it@globex.demo.test"},
]
CI_APP = "ci-pipeline"
CI_SECRET = "ci-local-secret"  # public by design: the emulator's built-in directory


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


def demo(
    ctx: typer.Context,
    exit_after: Annotated[
        bool, typer.Option("--exit", help="Stop after onboarding instead of serving.")
    ] = False,
    clean: Annotated[
        bool, typer.Option("--clean", help="Start from an empty demo data folder.")
    ] = False,
) -> None:
    """Run everything locally and onboard two sample tenants while showing progress."""
    base = settings_of(ctx)
    logging.getLogger("tenantops").setLevel(logging.WARNING)  # the demo shows progress itself
    data_dir = (base.data_dir / "demo").resolve()
    if clean and data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    directory = default_directory()
    emulator = EmulatorServer(directory, data_dir, port=0, mi_port=0)
    engine: Engine | None = None
    server: uvicorn.Server | None = None
    try:
        info = emulator.start()
        auth = emulator_auth(base.auth, info.authority, Path(info.ca_bundle))
        settings = Settings(
            data_dir=data_dir, log_level="WARNING", auth=auth,
            providers={"dns": {"port": 0}, "webhost": {"port": 0, "app_port": 0}},
        )
        engine = Engine(settings)
        engine.start()
        addresses = engine_addresses(engine)
        sock = _free_socket()
        api_url = f"http://127.0.0.1:{sock.getsockname()[1]}/api"
        server = uvicorn.Server(uvicorn.Config(
            create_app(settings, engine=engine), log_level="warning", access_log=False,
            lifespan="on"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.02)
        typer.echo("tenantops demo: emulator, API, worker, DNS responder and TLS edge are "
                   "running on loopback.\n")
        typer.echo(f"  dashboard         {api_url.removesuffix('/api')}/  (sign in as "
                   "operator@contoso.test / operator, or reader@contoso.test / reader)")
        typer.echo(f"  API               {api_url}")
        typer.echo(f"  Entra emulator    {info.authority}/{info.tenant_id}")
        typer.echo(f"  managed identity  {info.mi_url}")
        typer.echo(f"  DNS responder     127.0.0.1:{addresses['dns_port']}")
        typer.echo(f"  TLS edge          127.0.0.1:{addresses['edge_port']}\n")

        ci = directory.app_by_name(CI_APP)
        assert ci is not None
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
        _next_steps(data_dir, api_url, addresses, info.ca_bundle, str(info.authority))
        if failed:
            typer.echo("error: an onboarding did not succeed; see the steps above", err=True)
            raise typer.Exit(1)
        if exit_after:
            return
        typer.echo("\nServing until Ctrl-C.")
        while True:
            time.sleep(3600)
    except TenantOpsError as exc:
        fail(exc)
    except KeyboardInterrupt:
        pass
    finally:
        if server is not None:
            server.should_exit = True
        if engine is not None:
            engine.stop()
        emulator.stop()


def _next_steps(data_dir: Path, api_url: str, addresses: dict[str, int | None],
                ca_bundle: str, authority: str) -> None:
    me = shlex.quote(sys.argv[0]) if sys.argv[0].endswith("tenantops") else "tenantops"
    dd = shlex.quote(str(data_dir))
    edge_ca = shlex.quote(str(data_dir / "edge" / "ca" / "ca.pem"))
    dns_port, edge_port = addresses["dns_port"], addresses["edge_port"]
    runbook = Path(__file__).resolve().parents[3] / "runbooks" / "onboard_tenant.py"
    typer.echo("Try next (in another shell while this one keeps serving):\n")
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
