"""``tenantops emulator``: a local Entra ID and the managed-identity endpoints of Azure runtimes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args

import typer

from tenantops.cli.context import fail, settings_of
from tenantops.errors import TenantOpsError

if TYPE_CHECKING:  # the emulator's server and directory load when a command runs
    from tenantops.config import Settings
    from tenantops.emulator.directory import Directory

__all__ = ["app"]

app = typer.Typer(help="Run and inspect the local Entra ID + managed-identity emulator.",
                  invoke_without_command=True)

Runtime = Literal["app-service", "automation", "imds", "msi", "msi-legacy", "azure-ml", "arc",
                  "workload-identity"]
RUNTIMES: tuple[str, ...] = get_args(Runtime)  # runtime_env.RUNTIMES and workload-identity
ReplayChoice = Literal["allow", "refuse"]


def _directory(settings: Settings, path: Path | None) -> Directory:
    from tenantops.emulator.directory import default_directory, load_directory

    chosen = path or settings.emulator.directory
    return load_directory(chosen) if chosen else default_directory()


@app.callback()
def run(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Address to bind (loopback by default).")] = None,
    port: Annotated[int | None, typer.Option(help="HTTPS port of the authority (0: any).")] = None,
    mi_port: Annotated[
        int | None, typer.Option(help="HTTP port of the managed-identity endpoints (0: any).")
    ] = None,
    directory: Annotated[
        Path | None, typer.Option(help="Directory TOML file (default: the built-in one).")
    ] = None,
    allow_remote: Annotated[
        bool, typer.Option("--allow-remote", help="Allow a non-loopback address (unsafe).")
    ] = False,
    mi_token_cache_hours: Annotated[
        float | None, typer.Option(
            min=0, max=168,
            help="How long a caching managed-identity endpoint serves an identity the same token "
            "for a resource (default: emulator.mi_token_cache_hours, 24); 0 turns caching off.")
    ] = None,
    mi_token_cache_runtime: Annotated[
        list[str] | None, typer.Option(
            help="A managed-identity endpoint that caches tokens (repeat for several): "
            "app-service (also Functions and the 2017 MSI endpoint), automation, imds, arc, "
            "azure-ml. Default: emulator.mi_token_cache_runtimes (app-service).")
    ] = None,
    assertion_replay: Annotated[
        ReplayChoice | None, typer.Option(
            help="A certificate client assertion presented again: allow (as Entra does) or "
            "refuse (each jti once). Default: emulator.assertion_replay (allow).")
    ] = None,
) -> None:
    """Start the emulator (when no subcommand is given) and keep serving until Ctrl-C."""
    if ctx.invoked_subcommand is not None:
        return
    from tenantops.emulator.server import EmulatorServer
    from tenantops.emulator.token_cache import CACHE_FAMILIES, TokenCachePolicy

    settings = settings_of(ctx)
    cfg = settings.emulator
    families = mi_token_cache_runtime if mi_token_cache_runtime is not None else list(
        cfg.mi_token_cache_runtimes)
    unknown = sorted(set(families) - set(CACHE_FAMILIES))
    if unknown:
        fail(ValueError(f"--mi-token-cache-runtime {', '.join(unknown)}: not one of "
                        f"{', '.join(CACHE_FAMILIES)}"))
    policy = TokenCachePolicy(
        cfg.mi_token_cache_hours if mi_token_cache_hours is None else mi_token_cache_hours,
        frozenset(families))  # type: ignore[arg-type]
    try:
        server = EmulatorServer(
            _directory(settings, directory), settings.data_dir,
            host=host or cfg.host, port=cfg.port if port is None else port,
            mi_port=cfg.mi_port if mi_port is None else mi_port,
            allow_remote=allow_remote or cfg.allow_remote,
            key_grace_seconds=cfg.key_grace_hours * 3600, token_cache=policy,
            assertion_replay=assertion_replay or cfg.assertion_replay)
        typer.echo("tenantops emulator: a LOCAL stand-in for Microsoft Entra ID. Its tokens are "
                   "for development and tests only.", err=True)

        def announce() -> None:
            info = server.info
            typer.echo(f"authority        {info.authority}/{info.tenant_id}")
            typer.echo(f"managed identity {info.mi_url}")
            typer.echo(f"tenant           {info.tenant_id}")
            typer.echo(f"CA bundle        {info.ca_bundle}")
            typer.echo(f"token cache      {policy.describe()} (managed-identity endpoints)")
            typer.echo("try: tenantops emulator env --identity aa-onboarding --runtime automation")

        server.serve(on_ready=announce)
    except TenantOpsError as exc:
        fail(exc)
    except KeyboardInterrupt:
        pass


@app.command()
def show(
    ctx: typer.Context,
    directory: Annotated[Path | None, typer.Option(help="Directory TOML file.")] = None,
) -> None:
    """Print the directory (apps, identities, users, roles) as JSON; no secrets."""
    from tenantops.emulator.directory import describe
    from tenantops.emulator.server import read_info

    settings = settings_of(ctx)
    try:
        info = read_info(settings.data_dir)
        authority = info.authority if info else (
            f"https://{settings.emulator.host}:{settings.emulator.port}")
        typer.echo(json.dumps(describe(_directory(settings, directory), authority), indent=2))
    except TenantOpsError as exc:
        fail(exc)


@app.command()
def env(
    ctx: typer.Context,
    identity: Annotated[str, typer.Option(help="Managed identity name (see 'emulator show').")],
    runtime: Annotated[Runtime, typer.Option(help=f"Runtime to act as: {', '.join(RUNTIMES)}.")],
    directory: Annotated[Path | None, typer.Option(help="Directory TOML file.")] = None,
    token_lifetime: Annotated[int, typer.Option(
        min=60, max=86400,
        help="workload-identity: lifetime in seconds of the federated token written to "
        "AZURE_FEDERATED_TOKEN_FILE (AKS: 3600); run 'env' again for a new one.")] = 3600,
) -> None:
    """Print the KEY=VALUE lines a process needs to act as IDENTITY in RUNTIME.

    For workload-identity, IDENTITY is a user-assigned identity or an app with a federated
    credential; a fresh token is written to the file AZURE_FEDERATED_TOKEN_FILE names."""
    from tenantops.emulator.runtime_env import runtime_env, workload_identity_env
    from tenantops.emulator.server import read_info

    settings = settings_of(ctx)
    try:
        info = read_info(settings.data_dir)
        if info is None:
            fail(RuntimeError(
                f"no running emulator found in {settings.data_dir}; start one with "
                "'tenantops emulator' (same --data-dir) first"))
        chosen = _directory(settings, directory)
        state_dir = settings.data_dir / "emulator"
        lines = (workload_identity_env(chosen, state_dir, info, identity, token_lifetime)
                 if runtime == "workload-identity"
                 else runtime_env(chosen, state_dir, info, identity, runtime))
        typer.echo("\n".join(f"{k}={v}" for k, v in lines.items()))
    except TenantOpsError as exc:
        fail(exc)


@app.command("rotate-keys")
def rotate_keys(ctx: typer.Context) -> None:
    """Make a new signing key active; the old one stays in the JWKS for the grace period."""
    from tenantops.emulator.keys import KeyStore

    settings = settings_of(ctx)
    store = KeyStore(settings.data_dir / "emulator" / "keys",
                     grace_seconds=settings.emulator.key_grace_hours * 3600)
    old = store.active().kid
    new = store.rotate().kid
    typer.echo(f"signing key rotated: {old} -> {new} (old key published for "
               f"{settings.emulator.key_grace_hours:g} h)")


def _admin(ctx: typer.Context, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """Ask the running emulator's admin API; exits with its words when it refuses."""
    import httpx

    from tenantops.emulator.server import read_info

    settings = settings_of(ctx)
    info = read_info(settings.data_dir)
    if info is None:
        fail(RuntimeError(f"no running emulator found in {settings.data_dir}; start one with "
                          "'tenantops emulator' (same --data-dir) first"))
    try:
        response = httpx.request(method, f"{info.mi_url}{path}", json=body, timeout=10)
    except httpx.HTTPError as exc:
        fail(RuntimeError(f"the emulator at {info.mi_url} did not answer ({exc}); is it still "
                          "running?"))
    data: dict[str, Any] = response.json()
    if response.status_code >= 400:
        fail(RuntimeError(str(data.get("error_description") or data)))
    return data


Principal = Annotated[str, typer.Option(help="Identity, app or user name (see 'emulator show').")]
Resource = Annotated[str, typer.Option(help="The app that defines the role (its name).")]
Role = Annotated[str, typer.Option(help="The app role's value, e.g. Tenants.Write.")]


@app.command()
def assign(ctx: typer.Context, principal: Principal, resource: Resource, role: Role) -> None:
    """Give PRINCIPAL an app role on RESOURCE in the running emulator (until it stops).

    As in Azure, an endpoint that caches managed-identity tokens keeps serving tokens issued
    before now for up to the cache age; the diagnostic header and 'auth doctor' say so."""
    data = _admin(ctx, "POST", "/_emulator/assignments",
                  {"principal": principal, "resource": resource, "role": role})
    what = f"{principal} holds {role} on {resource}"
    typer.echo(f"{'assigned' if data['changed'] else 'already assigned'}: {what}")
    if data["changed"] and data["token_cache"] != "off":
        typer.echo(f"managed-identity token cache: {data['token_cache']}; tokens issued before "
                   "now do not carry the new role until the cache renews them")


@app.command()
def unassign(ctx: typer.Context, principal: Principal, resource: Resource, role: Role) -> None:
    """Take PRINCIPAL's app role on RESOURCE away in the running emulator."""
    data = _admin(ctx, "DELETE", "/_emulator/assignments",
                  {"principal": principal, "resource": resource, "role": role})
    state = "removed" if data["changed"] else "was not assigned"
    typer.echo(f"{state}: {principal} {role} on {resource}")


@app.command("federated-token")
def federated_token(
    ctx: typer.Context,
    issuer: Annotated[str, typer.Option(help="A hosted issuer of the directory (aks, "
                                        "github-actions in the built-in one).")],
    subject: Annotated[str, typer.Option(help="The sub claim, e.g. system:serviceaccount:"
                                         "tenantops:onboarding or repo:org/repo:ref:refs/heads/"
                                         "main.")],
    out: Annotated[Path, typer.Option(help="File to write the token to (mode 0600).")],
    audience: Annotated[str, typer.Option(help="The aud claim.")] = "api://AzureADTokenExchange",
    lifetime: Annotated[int, typer.Option(min=60, max=86400, help="Seconds.")] = 3600,
) -> None:
    """Write a token from an outside issuer the emulator plays (what kubelet or GitHub Actions
    hands a workload), for ClientAssertionCredential or 'az login --federated-token'."""
    from tenantops.pki import write_private

    data = _admin(ctx, "POST", f"/_emulator/issuers/{issuer}/token",
                  {"subject": subject, "audience": audience, "lifetime": lifetime})
    write_private(out, str(data["token"]).encode("ascii"))
    typer.echo(f"wrote a token from issuer {issuer} for sub={subject} aud={audience}, valid "
               f"{lifetime} s, to {out}")
