"""One settings tree for every part of tenantops.

Values come, highest priority first, from: keyword arguments, ``TENANTOPS_*`` environment
variables (nested with ``__``, e.g. ``TENANTOPS_AUTH__CLIENT_ID``), then the TOML file
(``tenantops.toml`` in the working directory, or the path in ``TENANTOPS_CONFIG``).
With nothing configured, tenantops runs fully embedded under ``./.tenantops/``.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from tenantops.errors import ConfigError

__all__ = [
    "DEFAULT_PLANS",
    "DEFAULT_SERVER",
    "ApiSettings",
    "AppServiceWebHostSettings",
    "AuthSettings",
    "AuthoritativeDnsSettings",
    "AzureDnsSettings",
    "AzurePostgresDatabaseSettings",
    "AzureSettings",
    "AzureSqlDatabaseSettings",
    "CatalogSettings",
    "CertificateSettings",
    "CustomStepSettings",
    "DashboardSettings",
    "DatabaseProviderSettings",
    "DatabaseServerSettings",
    "DnsProviderSettings",
    "DomainSettings",
    "DriftSettings",
    "EmulatorSettings",
    "EngineSettings",
    "EventGridSettings",
    "EventsSettings",
    "FleetSettings",
    "IdentitySettings",
    "KeyVaultSecretsSettings",
    "KeycloakOrganizationSettings",
    "MigrationsSettings",
    "OrganizationProviderSettings",
    "PlanDatabaseSettings",
    "PlanOrganizationSettings",
    "PlanSettings",
    "PostgresDatabaseSettings",
    "ProvidersSettings",
    "Rfc2136DnsSettings",
    "RotationSettings",
    "SecretsProviderSettings",
    "Settings",
    "TelemetrySettings",
    "WebHostProviderSettings",
    "WebhookSettings",
    "load_settings",
]

DEFAULT_CONFIG_FILE = "tenantops.toml"


class _Section(BaseModel):
    """A settings section: unknown keys are an error, so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid")


class EmulatorSettings(_Section):
    """The local Entra ID + managed-identity emulator (``tenantops emulator``)."""

    host: str = "127.0.0.1"
    port: int = Field(default=7443, ge=0, le=65535, description="HTTPS port of the authority")
    mi_port: int = Field(
        default=7480, ge=0, le=65535, description="HTTP port of the managed-identity endpoints"
    )
    directory: Path | None = Field(
        default=None, description="TOML directory file; the built-in default when unset"
    )
    allow_remote: bool = Field(
        default=False, description="allow binding to a non-loopback address (unsafe)"
    )
    key_grace_hours: float = Field(
        default=24.0, ge=0, description="how long a rotated-out key stays in the JWKS"
    )
    mi_token_cache_hours: float = Field(
        default=24.0, ge=0, le=168,
        description="how long a managed-identity endpoint that caches serves an identity the "
        "same token for a resource (Azure: 'around 24 hours', docs/emulator.md); 0: no cache")
    mi_token_cache_runtimes: list[Literal["app-service", "automation", "imds", "arc",
                                          "azure-ml"]] = Field(
        default_factory=lambda: ["app-service"],  # type: ignore[arg-type]
        description="managed-identity endpoints that cache tokens; app-service covers Functions, "
        "Container Apps and App Service's 2017 MSI endpoint (docs/decisions.md)")
    assertion_replay: Literal["allow", "refuse"] = Field(
        default="allow",
        description="a certificate client assertion presented again within its lifetime: "
        "allow (as Entra does; MSAL reuses its assertion) or refuse (each jti once)")


class AuthSettings(_Section):
    """Server side: which tokens the API accepts (``tenantops.auth``)."""

    authority: str = "https://login.microsoftonline.com"
    tenant_id: str | None = None
    client_id: str | None = Field(default=None, description="the API app registration's client ID")
    extra_audiences: list[str] = Field(default_factory=list)
    allowed_applications: list[str] | None = Field(
        default=None, description="client IDs (appid/azp) admitted; unset: any application of "
        "the tenant; an empty list admits none (docs/auth.md)")
    allowed_identities: list[str] | None = Field(
        default=None, description="object IDs (oid) admitted; unset: any identity; an empty "
        "list admits none")
    allowed_tenants: list[str] | None = Field(
        default=None, description="tenant IDs (tid) admitted; unset: the configured tenant; an "
        "empty list admits none")
    application_names: dict[str, str] = Field(
        default_factory=dict,
        description="display names of calling applications and managed identities, by client "
        "ID, shown as who requested a run (tokens of applications carry no name)")
    trust_easy_auth_principal: bool = Field(
        default=False,
        description="trust X-MS-CLIENT-PRINCIPAL; safe only behind App Service Authentication",
    )
    trust_easy_auth_principal_outside_app_service: bool = Field(
        default=False,
        description="start with trust_easy_auth_principal although WEBSITE_AUTH_ENABLED is not "
        "set (no App Service Authentication in front); logs a warning at every start",
    )
    leeway_seconds: int = Field(default=60, ge=0, le=600)
    max_token_lifetime_seconds: int = Field(
        default=86700, ge=300, le=7 * 86400,
        description="longest exp - iat accepted (plus leeway); Entra's longest lifetime is a "
        "managed identity's 24 h 5 min",
    )
    jwks_min_refresh_seconds: float = Field(default=60.0, ge=0)
    ca_bundle: Path | None = Field(
        default=None, description="CA bundle to trust for the authority (the emulator's)"
    )


class DashboardSettings(_Section):
    """``[dashboard]``: the web dashboard at ``/`` (``tenantops.dashboard``).

    People sign in with OpenID Connect (authorization code + PKCE) as the dashboard's own app
    registration, or, with ``auth.trust_easy_auth_principal``, through App Service
    Authentication. Against an emulator (an authority on a loopback address) every value
    below has a working default; against Entra ID, ``client_id``, ``client_secret`` and
    ``session_secret`` must be set, and placeholder values are refused.
    """

    enabled: bool = Field(default=True, description="serve the dashboard at /")
    client_id: str | None = Field(
        default=None, description="the dashboard app registration's client ID; the emulator's "
        "tenantops-dashboard when the authority is an emulator")
    client_secret: SecretStr | None = Field(
        default=None, description="that app registration's client secret")
    session_secret: SecretStr | None = Field(
        default=None, description="key of the encrypted session cookie, at least 32 "
        "characters, the same on every instance; random per process against an emulator")
    session_hours: float = Field(
        default=8.0, gt=0, le=24, description="longest session; a session also ends when the "
        "access token it was made from expires")
    public_url: str | None = Field(
        default=None, description="the dashboard's external URL (https://ops.example.com) when "
        "a proxy hides it; the redirect URI is <public_url>/auth/callback")
    secure_cookies: bool | None = Field(
        default=None, description="Secure cookies; unset: Secure unless the request came over "
        "plain HTTP to a loopback address")
    page_size: int = Field(default=25, ge=5, le=200, description="rows per page")
    poll_seconds: float = Field(
        default=0.25, ge=0.05, le=60, description="while someone has a live page open, how "
        "often the server looks for changes (one query per process, whatever the number of "
        "pages open); the page shows a change within this time plus its render")
    stream_mode: Literal["auto", "hold", "once"] = Field(
        default="auto", description="live updates: 'hold' keeps each page's event stream "
        "open and sends every change; 'once' ends the response after one change and the "
        "browser reconnects (for hosts that buffer responses, such as Azure Functions); "
        "'auto': 'once' under Azure Functions (FUNCTIONS_WORKER_RUNTIME set), else 'hold'")
    stream_seconds: float = Field(
        default=3600.0, ge=10, le=86400, description="longest life of one event stream; the "
        "browser then reconnects, resuming from the last update it had")
    keepalive_seconds: float = Field(
        default=15.0, ge=1, le=120, description="a comment is sent on an idle event stream "
        "this often, so that proxies (App Service's front ends close a connection idle for "
        "230 s) keep it open")
    stats_seconds: float = Field(
        default=60.0, ge=1, le=3600, description="how old the overview's trends (runs per "
        "day, failure rates, durations) may be before they are computed again, off the "
        "request")
    trace_url: str | None = Field(
        default=None, pattern=r"^https?://[^\s]*\{trace_id\}[^\s]*$",
        description="link from a run to its trace in your tracing tool, with {trace_id} "
        "where the trace ID goes (Jaeger: http://jaeger:16686/trace/{trace_id}); the run "
        "page shows the trace ID without it")


class ApiSettings(_Section):
    """Where the API listens (``serve``) and where clients find it (``--api-url``)."""

    url: str = Field(default="http://127.0.0.1:8000/api",
                     description="the API root clients call, with or without /api")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    max_body_bytes: int = Field(
        default=32 * 1024, ge=1024, le=16 * 1024 * 1024,
        description="largest request body the app reads (API JSON and dashboard forms); a "
        "larger one gets 413 unread")


IdentitySource = Literal[
    "environment", "workload-identity", "managed-identity", "azure-cli", "client-secret",
    "client-certificate",
]


class IdentitySettings(_Section):
    """Client side: how tenantops gets a token to call the API (``tenantops.identity``)."""

    source: IdentitySource | None = Field(default=None, description="force one source")
    identity: str | None = Field(
        default=None, description="user-assigned identity: client ID, object ID or resource ID"
    )
    audience: str | None = Field(
        default=None, description="API audience when the API does not advertise it"
    )
    discovery_cache: bool = Field(
        default=True, description="remember each API's audience in the user's cache folder, "
        "so a command asks the API once, not every time")
    cache_dir: Path | None = Field(
        default=None, description="where the discovery cache lives; the user cache folder "
        "(platformdirs) when unset")


class CatalogSettings(BaseModel):
    """The tenant catalog (``tenantops.catalog``): tenants, runs, steps, local organizations."""

    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL (sqlite:///..., postgresql://...); "
        "sqlite:///<data_dir>/catalog.sqlite when unset",
    )


class BudgetSettings(_Section):
    """A rate budget: at most ``calls`` provider calls per ``per_seconds`` to the providers
    named, across every worker (``engine.budgets.<name>``; docs/engine.md, "Rate budgets")."""

    providers: list[str] = Field(
        min_length=1,
        description="provider kinds ('organization') or kind:name labels "
        "('webhost:azure-app-service') whose calls this budget counts",
    )
    calls: int = Field(ge=1, le=1_000_000, description="calls allowed per per_seconds")
    per_seconds: float = Field(default=1.0, gt=0, le=86400)
    burst: int = Field(
        default=1, ge=1, le=10_000,
        description="calls that may go at once after a quiet time (1: evenly spaced); the "
        "service's own window must allow calls + burst - 1",
    )

    @field_validator("providers")
    @classmethod
    def _provider_names(cls, value: list[str]) -> list[str]:
        for name in value:
            kind = name.split(":", 1)[0]
            if kind not in _PROVIDER_KINDS or name.count(":") > 1 or name.endswith(":"):
                raise ValueError(
                    f"{name!r} is not a provider kind ({', '.join(_PROVIDER_KINDS)}) or a "
                    "kind:name label such as 'organization:keycloak'")
        return value


_PROVIDER_KINDS = ("catalog", "secrets", "database", "dns", "webhost", "organization")


class EngineSettings(_Section):
    """The provisioning engine (``tenantops.provisioning``): DBOS workflows and retries."""

    system_database_url: str | None = Field(
        default=None,
        description="DBOS system database; sqlite:///<data_dir>/engine.sqlite when unset, "
        "PostgreSQL when several workers share the load",
    )
    executor_id: str = Field(
        default="local",
        description="this worker's DBOS executor ID. Left unset: 'local' on the embedded "
        "SQLite system database (one worker per data folder, guarded by a lock), "
        "'<host>-<pid>' on PostgreSQL; set it only to give a worker a stable name of its own",
    )
    worker_timeout_seconds: float = Field(
        default=120.0, ge=1, le=86400,
        description="a worker unheard of this long (by the database's clock) is taken for "
        "dead, and a live worker takes over its runs; workers say they are alive every "
        "quarter of it (at least every 30 s)",
    )
    clock_skew_tolerance_seconds: float = Field(
        default=5.0, gt=0, le=3600,
        description="a worker whose clock differs from the database's by more than this logs "
        "a warning and is flagged in /api/workers",
    )
    check_runs_seconds: float = Field(
        default=30.0, gt=0, le=3600,
        description="how often a worker makes sure every active run has a live workflow: "
        "it resumes workflows that died (a full disk, a lost connection) and shows the cause "
        "on the run's step",
    )
    worker_concurrency: int = Field(default=8, ge=1, le=256, description="runs at once")
    queue_polling_seconds: float = Field(default=0.2, gt=0, le=60)
    max_attempts: int = Field(
        default=8, ge=1, le=100, description="attempts of a step failing transiently"
    )
    retry_initial_seconds: float = Field(default=1.0, ge=0, description="first backoff")
    retry_max_seconds: float = Field(default=60.0, ge=0, description="longest backoff")
    retry_backoff_rate: float = Field(default=2.0, ge=1)
    retry_after_max_seconds: float = Field(
        default=900.0, ge=0, le=86400,
        description="the longest a provider's Retry-After (429/503) makes a step wait; a "
        "longer one is capped to this",
    )
    pending_timeout_seconds: float = Field(
        default=3600.0, gt=0, description="how long a step may stay pending before it fails, "
        "unless the provider's Pending says otherwise (timeout_seconds)"
    )
    pending_poll_max_seconds: float = Field(
        default=900.0, ge=0, le=86400,
        description="a step pending for long is looked at every tenth of the time it has "
        "waited, but at least this often (unless the provider asks for longer)",
    )
    long_wait_seconds: float = Field(
        default=10.0, ge=0, le=3600,
        description="a wait longer than this (a Pending, a backoff, a Retry-After) frees the "
        "worker slot: the run's workflow ends and a delayed one continues it; shorter waits "
        "sleep durably inside the workflow",
    )
    readiness_timeout_seconds: float = Field(
        default=2.0, gt=0, le=60,
        description="how long /api/health/ready waits for each database",
    )
    serve_embedded: bool = Field(
        default=True,
        description="a worker also runs the embedded DNS responder, TLS edge and sample app",
    )
    budgets: dict[str, BudgetSettings] = Field(
        default_factory=dict,
        description="rate budgets by name: calls per period to the providers each names, "
        "enforced across all workers",
    )

    @field_validator("budgets")
    @classmethod
    def _budget_names(cls, value: dict[str, BudgetSettings]) -> dict[str, BudgetSettings]:
        seen: dict[str, str] = {}
        for name, budget in value.items():
            if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,62}", name):
                raise ValueError(f"budget name {name!r}: use 1-63 lowercase letters, digits, "
                                 "'-' or '_', starting with a letter or digit")
            for provider in budget.providers:
                if provider in seen:
                    raise ValueError(f"provider {provider!r} is in budgets {seen[provider]!r} "
                                     f"and {name!r}; a provider's calls count in one budget")
                seen[provider] = name
        return value


class DriftSettings(_Section):
    """``[drift]``: drift checks (each tenant's resources observed and compared with what
    the catalog records), reconcile runs, and imports of existing tenants (docs/engine.md)."""

    check_interval_seconds: float | None = Field(
        default=None, ge=1, le=30 * 86400,
        description="the worker checks every active or suspended tenant this often; unset "
        "(the default): only on demand (tenantops drift, GET /api/drift)")
    auto_reconcile: bool = Field(
        default=False,
        description="a scheduled check that finds a tenant drifted or missing opens a "
        "reconcile run for it at once (never for a tenant with a run in progress)")
    concurrency: int = Field(
        default=4, ge=1, le=64,
        description="tenants observed at once by a fleet check, a scheduled check or an "
        "import")
    batch_size: int = Field(
        default=20, ge=1, le=1000,
        description="tenants a worker claims at a time for scheduled checks")
    import_max_tenants: int = Field(
        default=50, ge=1, le=1000,
        description="tenants one import request may hold (each is observed through every "
        "provider before the answer; tenantops import sends a larger file in several "
        "requests, and api.max_body_bytes bounds each)")


class AzureSettings(_Section):
    """``[azure]``: the subscription and identity the Azure providers (and ``tenantops azure
    check``) use to reach Azure Resource Manager."""

    subscription_id: str | None = Field(default=None, description="subscription of the resources")
    resource_group: str | None = Field(
        default=None, description="resource group of every Azure resource unless a provider "
        "section names another")
    identity_source: IdentitySource | None = Field(
        default=None, description="force one identity source (managed-identity in Azure)")
    identity: str | None = Field(
        default=None, description="user-assigned identity: client ID, object ID or resource ID")
    arm_endpoint: str = Field(default="https://management.azure.com")
    sdk_retries: int = Field(
        default=0, ge=0, le=10,
        description="retries inside the Azure SDK; the engine retries transient faults itself")


class AppServiceWebHostSettings(_Section):
    """``[providers.webhost.azure_app_service]``: custom hostnames and certificates on an App
    Service / Function App."""

    app_name: str | None = Field(default=None, description="the web app's name")
    resource_group: str | None = Field(default=None, description="azure.resource_group if unset")
    certificate_source: Literal["managed", "key-vault"] = Field(
        default="managed", description="App Service managed certificate, or import from Key Vault")
    key_vault_id: str | None = Field(
        default=None, description="ARM ID of the vault holding the certificates (key-vault source)")
    key_vault_secret_name: str = Field(
        default="{hostname}", description="certificate name in the vault; {hostname} is the "
        "hostname with dots as dashes")
    poll_seconds: float = Field(default=30.0, gt=0, le=3600,
                                description="how often to look at a certificate being issued")
    suspended_app_name: str | None = Field(
        default=None, description="an app on the same App Service plan that answers every "
        "request with a 'suspended' page (503); a suspended tenant's hostname is moved to it "
        "with its certificate, and back on resume (docs/azure.md)")


class AzureDnsSettings(_Section):
    """``[providers.dns.azure]``: record sets in the Azure DNS zones of providers.dns.zones (with
    none, every custom domain is customer-managed and no record is written)."""

    resource_group: str | None = Field(default=None, description="azure.resource_group if unset")
    check_name_servers: bool = Field(
        default=True, description="wait for the zone's Azure name servers to answer (DNS queries); "
        "off: trust ARM's record sets")
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)


class AzureSqlDatabaseSettings(_Section):
    """``[providers.database.azure_sql]``: tenant databases in an Azure SQL elastic pool."""

    server: str | None = Field(default=None, description="logical server name")
    elastic_pool: str | None = Field(default=None, description="elastic pool on that server")
    resource_group: str | None = Field(default=None, description="azure.resource_group if unset")
    collation: str = "SQL_Latin1_General_CP1_CI_AS"
    max_size_gb: int | None = Field(default=None, ge=1, le=4096)
    poll_seconds: float = Field(default=15.0, gt=0, le=3600)


class AzurePostgresDatabaseSettings(_Section):
    """``[providers.database.azure_postgres]``: tenant databases on a PostgreSQL flexible
    server."""

    server: str | None = Field(default=None, description="flexible server name")
    resource_group: str | None = Field(default=None, description="azure.resource_group if unset")
    charset: str = "UTF8"
    collation: str = "en_US.utf8"
    poll_seconds: float = Field(default=10.0, gt=0, le=3600)
    admin_url: str | None = Field(
        default=None, description="libpq URL of a role on the server with CREATEROLE (the "
        "server's administrator, say: postgresql://tenantops_admin@<server>.postgres."
        "database.azure.com:5432/postgres?sslmode=require); set, tenantops also makes each "
        "tenant's login, disables it while the tenant is suspended, rotates it and runs the "
        "SaaS's migrations (docs/azure.md); unset, it makes the databases only")
    admin_password: SecretStr | None = Field(default=None,
                                             description="the admin role's password")
    admin_auth: Literal["password", "entra"] = Field(
        default="password", description="entra: sign in as an Entra ID role (the Function "
        "App's managed identity, say) with an access token for Azure Database for PostgreSQL "
        "as the password, fetched with the [azure] credential; no admin_password then")
    connection_limit: int = Field(default=20, ge=1, le=10000, description="per tenant login")
    connect_timeout_seconds: float = Field(default=10.0, gt=0, le=300)

    @model_validator(mode="after")
    def _one_way_in(self) -> AzurePostgresDatabaseSettings:
        if self.admin_auth == "entra" and self.admin_password is not None:
            raise ValueError("admin_password is set with admin_auth = 'entra': the password "
                             "is an Entra ID access token, fetched for each connection; "
                             "remove admin_password")
        return self


class KeyVaultSecretsSettings(_Section):
    """``[providers.secrets.key_vault]``: tenant secrets in an Azure Key Vault."""

    vault_url: str | None = Field(default=None, description="https://<vault>.vault.azure.net")
    purge_on_delete: bool = Field(
        default=False, description="purge deleted secrets (else they stay recoverable)")


class SecretsProviderSettings(BaseModel):
    """Where tenant secrets (database passwords) are kept."""

    name: Literal["local", "key-vault"] = "local"
    key_vault: KeyVaultSecretsSettings = Field(default_factory=KeyVaultSecretsSettings)
    directory: Path | None = Field(default=None, description="<data_dir>/secrets when unset")


class PostgresDatabaseSettings(_Section):
    """``[providers.database.postgres]``: the PostgreSQL server tenant databases live on."""

    admin_url: str = Field(
        default="postgresql://tenantops_admin@127.0.0.1:5432/postgres",
        description="libpq URL of a role with CREATEDB and CREATEROLE; keep the password out "
        "of it (admin_password, PGPASSWORD or ~/.pgpass)",
    )
    admin_password: SecretStr | None = Field(default=None, description="the admin role's password")
    connection_limit: int = Field(default=20, ge=1, le=10000, description="per tenant login")
    connect_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    tools_directory: Path | None = Field(
        default=None, description="where pg_dump and pg_restore are, for moves (at least the "
        "servers' major version); unset: the PATH, then the newest "
        "/usr/lib/postgresql/<version>/bin")
    move_timeout_seconds: float = Field(
        default=3600.0, gt=0, le=7 * 86400,
        description="the longest one copy of a tenant's data may take during a move")


_SERVER_NAME = r"^[a-z][a-z0-9-]{0,31}$"
_POOL_NAME = r"^[a-z][a-z0-9-]{0,31}$"
DEFAULT_SERVER = "default"
"""The name of the one database server there is when ``providers.database.servers`` lists
none: the server of the provider's own section (``admin_url``, ``directory``, ``server``)."""

DatabaseProviderName = Literal["sqlite", "postgres", "azure-sql", "azure-postgres"]
# Which fields of a server entry each database provider reads (the rest must stay unset).
_SERVER_FIELDS: dict[str, tuple[str, ...]] = {
    "sqlite": ("directory",),
    "postgres": ("admin_url", "admin_password"),
    "azure-sql": ("server", "resource_group"),
    "azure-postgres": ("server", "resource_group", "admin_url", "admin_password"),
}
_REQUIRED_SERVER_FIELDS: dict[str, tuple[str, ...]] = {
    "sqlite": ("directory",), "postgres": ("admin_url",), "azure-sql": ("server",),
    "azure-postgres": ("server",),
}


class DatabaseServerSettings(_Section):
    """One ``[[providers.database.servers]]`` entry: a database server (a *stamp*) tenants are
    placed on. A new tenant goes to the least-loaded server of its plan's pool that has room
    (docs/placement.md); ``tenantops tenants move`` moves one to another server."""

    name: str = Field(pattern=_SERVER_NAME, description="how placements, moves and the "
                      "dashboard name the server (a-z, 0-9, '-'; at most 32)")
    pool: str = Field(default="default", pattern=_POOL_NAME,
                      description="the pool it belongs to; a plan's database.pool picks one")
    capacity: int | None = Field(
        default=None, ge=1, le=1_000_000,
        description="the most tenant copies (databases or schemas) it may hold, counting a "
        "move's copy in progress and an old copy kept for its grace period; unset: no limit")
    draining: bool = Field(
        default=False, description="place no new tenant on it (moves away from it still work)")
    admin_url: str | None = Field(
        default=None, description="postgres: libpq URL of the admin role (see "
        "[providers.database.postgres]), without the password")
    admin_password: SecretStr | None = Field(default=None, description="postgres: its password")
    directory: Path | None = Field(default=None, description="sqlite: the folder of the files")
    server: str | None = Field(
        default=None, description="azure-sql: the logical server; azure-postgres: the flexible "
        "server")
    resource_group: str | None = Field(
        default=None, description="azure: its resource group (the provider section's, then "
        "azure.resource_group, if unset)")


class DatabaseProviderSettings(BaseModel):
    """Where each tenant's database is created."""

    name: DatabaseProviderName = "sqlite"
    azure_sql: AzureSqlDatabaseSettings = Field(default_factory=AzureSqlDatabaseSettings)
    azure_postgres: AzurePostgresDatabaseSettings = Field(
        default_factory=AzurePostgresDatabaseSettings)
    directory: Path | None = Field(default=None, description="<data_dir>/databases when unset")
    postgres: PostgresDatabaseSettings = Field(default_factory=PostgresDatabaseSettings)
    move_grace_seconds: float = Field(
        default=86400.0, ge=0, le=90 * 86400,
        description="how long a move keeps the old copy of a tenant's data before removing "
        "it (tenantops tenants move --grace-seconds overrides it)")
    servers: list[DatabaseServerSettings] = Field(
        default_factory=list,
        description="the database servers (stamps) tenants are placed on; empty: one, named "
        "'default', the server of the provider's own section (docs/placement.md)")

    @model_validator(mode="after")
    def _check_servers(self) -> DatabaseProviderSettings:
        names = [s.name for s in self.servers]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"servers: names must be unique; {', '.join(repeated)} repeats")
        used = _SERVER_FIELDS[self.name]
        for index, server in enumerate(self.servers):
            for field_name in ("admin_url", "admin_password", "directory", "server",
                               "resource_group"):
                if field_name not in used and getattr(server, field_name) is not None:
                    raise ValueError(
                        f"servers[{index}].{field_name} is not read by the {self.name} "
                        f"provider (providers.database.name); its servers take "
                        f"{', '.join(used)}")
            for field_name in _REQUIRED_SERVER_FIELDS[self.name]:
                if getattr(server, field_name) is None:
                    raise ValueError(
                        f"servers[{index}] ({server.name}) needs {field_name}: the "
                        f"{self.name} provider reaches its servers by it")
        if self.servers:
            replaced = {"postgres": ("postgres", self.postgres, ("admin_url", "admin_password")),
                        "sqlite": ("", self, ("directory",)),
                        "azure-sql": ("azure_sql", self.azure_sql, ("server",)),
                        "azure-postgres": ("azure_postgres", self.azure_postgres,
                                           ("server", "admin_url", "admin_password"))}
            section, model, fields = replaced[self.name]
            for field_name in fields:
                if field_name in model.model_fields_set:
                    where = f"providers.database.{section + '.' if section else ''}{field_name}"
                    raise ValueError(
                        f"{where} is set and providers.database.servers lists servers: the "
                        "list replaces the provider's own server; give that server an entry "
                        f"(name it '{DEFAULT_SERVER}' to keep the tenants placed on it)")
        if self.name == "azure-postgres" and self.azure_postgres.admin_auth == "entra":
            given = [s.name for s in self.servers if s.admin_password is not None]
            if given:
                raise ValueError(
                    f"servers {', '.join(given)} have an admin_password while "
                    "providers.database.azure_postgres.admin_auth = 'entra': the password is "
                    "an Entra ID access token; remove it")
        if self.name == "azure-postgres" and self.servers:
            with_sql = [s.admin_url is not None for s in self.servers]
            if any(with_sql) and not all(with_sql):
                missing = [s.name for s in self.servers if s.admin_url is None]
                raise ValueError(
                    f"servers {', '.join(missing)} have no admin_url while other azure-postgres "
                    "servers do: tenantops reaches all of them over SQL or none")
        return self

    def server_list(self) -> list[DatabaseServerSettings]:
        """The servers tenants are placed on: ``servers``, or the one server named
        ``default`` that the provider's own section describes."""
        if self.servers:
            return list(self.servers)
        fields: dict[str, Any] = {"name": DEFAULT_SERVER}
        if self.name == "postgres":
            fields.update(admin_url=self.postgres.admin_url,
                          admin_password=self.postgres.admin_password)
        elif self.name == "sqlite":
            fields.update(directory=self.directory)
        elif self.name == "azure-sql":
            fields.update(server=self.azure_sql.server,
                          resource_group=self.azure_sql.resource_group)
        else:
            fields.update(server=self.azure_postgres.server,
                          resource_group=self.azure_postgres.resource_group)
        return [DatabaseServerSettings.model_construct(
            pool="default", capacity=None, draining=False, **{
                **dict.fromkeys(("admin_url", "admin_password", "directory", "server",
                                 "resource_group")), **fields})]

    def server(self, name: str) -> DatabaseServerSettings | None:
        return next((s for s in self.server_list() if s.name == name), None)


class Rfc2136DnsSettings(_Section):
    """``[providers.dns.rfc2136]``: a primary server taking TSIG-signed dynamic updates."""

    server: str = Field(default="127.0.0.1", description="primary that accepts the updates")
    port: int = Field(default=53, ge=1, le=65535, description="for updates and answer checks")
    tsig_key_name: str = Field(default="tenantops", description="the key's name on the server")
    tsig_algorithm: Literal["hmac-sha256", "hmac-sha384", "hmac-sha512"] = "hmac-sha256"
    tsig_secret: SecretStr | None = Field(default=None, description="base64 key secret")
    tsig_secret_file: Path | None = Field(
        default=None, description="file holding the base64 secret (instead of tsig_secret)"
    )
    nameservers: list[str] = Field(
        default_factory=list,
        description="authoritative servers checked for answers (host or host:port); "
        "empty: the zone's NS records",
    )
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)


class AuthoritativeDnsSettings(_Section):
    """``[providers.dns.authoritative]``: how tenantops reads a zone it does not hold (the zone
    of a customer-managed domain): it finds the zone and its name servers through
    ``resolvers``, then asks each name server directly, without recursion."""

    resolvers: list[str] = Field(
        default_factory=list,
        description="recursive resolvers (host or host:port) used to find a zone and its name "
        "servers; empty: those of /etc/resolv.conf")
    port: int = Field(default=53, ge=1, le=65535,
                      description="port of the authoritative name servers")
    timeout_seconds: float = Field(default=5.0, gt=0, le=60, description="per query")


class DnsProviderSettings(BaseModel):
    """Where the tenant's DNS records (CNAME, TXT asuid) are written."""

    name: Literal["zone-file", "rfc2136", "azure-dns"] = "zone-file"
    azure: AzureDnsSettings = Field(default_factory=AzureDnsSettings)
    rfc2136: Rfc2136DnsSettings = Field(default_factory=Rfc2136DnsSettings)
    directory: Path | None = Field(default=None, description="<data_dir>/dns when unset")
    zones: list[str] = Field(
        default_factory=list,
        description="the platform's zones: tenantops writes the records of custom domains "
        "inside them; any other domain is customer-managed. Empty: no platform zone, except "
        "for zone-file in dev mode, which makes a zone for each domain (docs/providers.md)",
    )
    authoritative: AuthoritativeDnsSettings = Field(default_factory=AuthoritativeDnsSettings)
    ttl: int = Field(default=300, ge=1, le=86400)
    serve: bool = Field(default=True, description="run the embedded authoritative responder")
    host: str = Field(default="127.0.0.1", description="where the responder listens")
    port: int = Field(default=5354, ge=0, le=65535, description="responder port (0: any free)")
    propagation_poll_seconds: float = Field(default=2.0, gt=0, le=3600)


class KeycloakOrganizationSettings(_Section):
    """``[providers.organization.keycloak]``: Keycloak 26 Organizations, as a service account."""

    url: str = Field(default="http://127.0.0.1:8080", description="Keycloak's base URL")
    realm: str = Field(default="tenantops", description="realm with organizations enabled")
    client_id: str = Field(
        default="tenantops-provisioner", description="confidential client with a service account"
    )
    client_secret: SecretStr | None = Field(default=None, description="the client's secret")
    client_secret_file: Path | None = Field(
        default=None, description="file holding the client secret (instead of client_secret)"
    )
    ca_bundle: Path | None = Field(default=None, description="CA bundle to trust for Keycloak")
    timeout_seconds: float = Field(default=30.0, gt=0, le=300)
    tenant_attribute: str = Field(
        default="tenantops-tenant", description="organization attribute naming the tenant"
    )
    verified_domains: bool = Field(
        default=False, description="mark the tenant's domain verified in Keycloak"
    )


class OrganizationProviderSettings(BaseModel):
    """Where the tenant's organization (domains, members, invitations) lives."""

    name: Literal["local", "keycloak"] = "local"
    keycloak: KeycloakOrganizationSettings = Field(default_factory=KeycloakOrganizationSettings)
    redirect_path: str = Field(default="/", description="redirect URL = https://<domain><path>")


class WebHostProviderSettings(BaseModel):
    """The web host that serves the tenant's custom hostname with its own certificate."""

    name: Literal["local-edge", "azure-app-service"] = "local-edge"
    azure_app_service: AppServiceWebHostSettings = Field(
        default_factory=AppServiceWebHostSettings)
    directory: Path | None = Field(default=None, description="<data_dir>/edge when unset")
    default_hostname: str = Field(
        default="edge.tenantops.localhost", description="the CNAME target of custom domains"
    )
    verification_id: str | None = Field(
        default=None, description="the asuid TXT value; generated once and kept when unset"
    )
    verify_domain: bool = Field(
        default=True, description="refuse to bind a hostname whose asuid TXT does not match"
    )
    host: str = Field(default="127.0.0.1", description="where the TLS edge and app listen")
    port: int = Field(default=8443, ge=0, le=65535, description="TLS edge port (0: any free)")
    app_port: int = Field(
        default=8081, ge=0, le=65535, description="sample tenant app port (0: any free)"
    )
    issuance_delay_seconds: float = Field(
        default=0.0, ge=0, le=3600, description="simulated certificate issuance time"
    )


class DomainSettings(_Section):
    """``[domains]``: which custom domains tenants may claim, and how long tenantops waits for
    the records of a customer-managed domain (docs/providers.md, "Custom domains")."""

    reserved: list[str] = Field(
        default_factory=list,
        description="names no tenant may claim, nor a name above or below one: the platform's "
        "own hostnames that configuration does not already name")
    customer_wait_seconds: float = Field(
        default=7 * 86400.0, gt=0, le=90 * 86400.0,
        description="how long an onboarding waits for the customer to publish the CNAME and "
        "TXT records of a customer-managed domain before the step fails (runs retry waits again)")
    customer_poll_seconds: float = Field(
        default=60.0, gt=0, le=3600,
        description="how often the customer's authoritative servers are asked meanwhile")
    change_grace_seconds: float = Field(
        default=86400.0, ge=0, le=90 * 86400.0,
        description="after a tenant's custom domain changes, how long the previous one keeps "
        "serving (beside the new one) before it is removed; an update may ask for another")


RunKindName = Literal["onboard", "offboard", "update", "suspend", "resume", "reconcile"]


class MigrationsSettings(_Section):
    """``[migrations]``: the SaaS's own schema in each tenant's database (not tenantops'
    catalog): where its migrations are, and whether onboarding applies them
    (docs/fleet.md)."""

    folder: Path | None = Field(
        default=None, description="the Alembic script folder (with versions/) or a folder of "
        "SQL files applied in name order; unset: tenantops migrates no tenant schema")
    kind: Literal["auto", "alembic", "sql"] = Field(
        default="auto", description="auto: Alembic when the folder has versions/, else SQL")
    on_onboarding: bool = Field(
        default=True, description="a new tenant's database is migrated to head during its "
        "onboarding (step migrate_schema, after create_database)")

    @field_validator("folder")
    @classmethod
    def _folder(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError("must be an existing folder (the Alembic script folder or the "
                             "folder of SQL files)")
        return value.resolve() if value is not None else None


class FleetSettings(_Section):
    """``[fleet]``: how fleet runs go when a request does not say (docs/fleet.md)."""

    canary: int = Field(default=1, ge=0, le=1000,
                        description="tenants done first; the rest start only if they succeed")
    concurrency: int = Field(default=8, ge=1, le=256,
                             description="child runs of one fleet at once")
    max_failures: int | None = Field(
        default=0, ge=0, description="the fleet stops when more tenants than this failed "
        "(0: at the first failure); unset: no count limit")
    max_failure_percent: float | None = Field(
        default=None, gt=0, le=100, description="the fleet stops when more than this share of "
        "its tenants failed")
    poll_seconds: float = Field(
        default=0.25, gt=0, le=60, description="how often a worker looks at the fleets it "
        "conducts while one runs")
    lease_seconds: float = Field(
        default=30.0, ge=1, le=3600, description="a conductor unheard of this long is "
        "replaced by another worker's")


class RotationSettings(_Section):
    """``[rotation]``: rotating each tenant's database credentials (two logins used in
    turn; docs/fleet.md)."""

    min_grace_seconds: float = Field(
        default=300.0, ge=0, le=30 * 86400.0,
        description="after the new secret version is published, the previous login keeps "
        "working at least this long")
    max_grace_seconds: float = Field(
        default=86400.0, ge=0, le=30 * 86400.0,
        description="the previous login is disabled once no session uses it (after "
        "min_grace_seconds), or after this long at the latest")
    poll_seconds: float = Field(default=30.0, gt=0, le=3600,
                                description="how often the previous login's sessions are "
                                "looked at meanwhile")

    @model_validator(mode="after")
    def _ordered(self) -> RotationSettings:
        if self.max_grace_seconds < self.min_grace_seconds:
            raise ValueError(f"max_grace_seconds ({self.max_grace_seconds:g}) must be at least "
                             f"min_grace_seconds ({self.min_grace_seconds:g})")
        return self


class CertificateSettings(_Section):
    """``[certificates]``: renewing tenants' certificates before they expire
    (docs/fleet.md)."""

    renew_before_days: float = Field(
        default=30.0, gt=0, le=365, description="a certificate expiring within this many days "
        "is renewed")
    schedule: bool = Field(default=True, description="a worker looks for certificates to "
                           "renew on its own, every check_seconds")
    check_seconds: float = Field(default=3600.0, ge=10, le=7 * 86400.0,
                                 description="how often a worker looks")
    expiring_soon_days: float = Field(
        default=30.0, gt=0, le=365, description="what the API and dashboard call expiring soon")


class CustomStepSettings(_Section):
    """``[[steps]]``: a step of your own, run in the plans of the kinds in ``runs_in``
    (docs/custom-steps.md). A ``command`` step runs an executable; a ``python`` step runs the
    class an entry point of the group ``tenantops.steps`` names. Checked when the settings
    load: anchors, cycles, executables and entry points."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,47}$",
                      description="the step's name in runs (a-z, 0-9, '_'; at most 48)")
    type: Literal["command", "python"] = Field(description="command or python")
    before: str | None = Field(default=None, description="the onboarding step (built-in or "
                               "custom) it runs before; in offboarding it runs after its undo")
    after: str | None = Field(default=None, description="the onboarding step it runs after")
    runs_in: list[RunKindName] = Field(
        default_factory=lambda: list[RunKindName](("onboard", "offboard")),
        description="kinds of run it takes part in: ensured in onboard, update, suspend, "
        "resume and reconcile runs, removed in offboard runs; in reconcile, drift checks "
        "observe it too (when it can observe)")
    description: str = Field(default="", max_length=200,
                             description="what it does, as runs and previews show it")
    command: list[str] = Field(default_factory=list,
                               description="command steps: the executable and its arguments")
    working_directory: Path | None = Field(
        default=None, description="command steps: where it runs; the worker's own when unset")
    timeout_seconds: float = Field(
        default=300.0, gt=0, le=86400,
        description="command steps: past it the process group is killed (a transient failure)")
    observe: bool = Field(
        default=False, description="command steps: it answers TENANTOPS_ACTION=observe with "
        "what exists (read-only), so previews show create/update/unchanged")
    env: dict[str, str] = Field(default_factory=dict,
                                description="command steps: extra environment variables")
    secrets: dict[str, str] = Field(
        default_factory=dict, description="command steps: variable name -> secret name in the "
        "secrets provider; the only way a secret reaches the command")
    entry_point: str | None = Field(
        default=None, description="python steps: the entry point's name in tenantops.steps")
    options: dict[str, Any] = Field(
        default_factory=dict, description="python steps: passed to the class's constructor")


EVENT_GRID_AUDIENCE = "https://eventgrid.azure.net"
"""The audience of the tokens Event Grid accepts for publishing (the Azure SDKs' scope
``https://eventgrid.azure.net/.default``, ``@useAuth`` in azure-rest-api-specs'
eventgrid/data-plane/EventGridNamespace/main.tsp)."""

_SINK_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_EVENT_PATTERN = re.compile(r"^(\*|com\.tenantops\.[a-z0-9_.*-]+)$")


def _is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _endpoint_url(value: str) -> str:
    """An https URL, or plain http to this machine only (tests, a local relay)."""
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("must be an absolute https:// URL")
    if parts.scheme == "http" and not _is_loopback_host(parts.hostname):
        raise ValueError("must be https: events travel over plain http only to this "
                         "machine (localhost, 127.0.0.1, ::1)")
    if parts.username or parts.password:
        raise ValueError("must not carry a user or password (use the signing secret)")
    return value


def _event_filter(patterns: list[str]) -> list[str]:
    for pattern in patterns:
        if not _EVENT_PATTERN.match(pattern):
            raise ValueError(
                f"{pattern!r} is not an event type pattern: use a type such as "
                "'com.tenantops.tenant.onboarded', a glob such as 'com.tenantops.tenant.*', "
                "or '*' (docs/events.md lists the types)")
    return patterns


class WebhookSettings(_Section):
    """One ``[[events.webhooks]]`` endpoint: events matching ``filter`` (and ``tenants``), as
    CloudEvents, signed per the Standard Webhooks specification with ``secret``."""

    name: str = Field(description="how deliveries and logs name this endpoint")
    url: str = Field(description="https URL the events are POSTed to")
    secret: SecretStr = Field(
        description="Standard Webhooks signing secret: 'whsec_' and the base64 of 24 to 64 "
        "random bytes; never logged")
    filter: list[str] = Field(
        default_factory=list, description="event types or globs to send; empty: every event")
    tenants: list[str] = Field(
        default_factory=list, description="only these tenants' events; empty: every tenant's "
        "(and events of no tenant)")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _SINK_NAME.match(value):
            raise ValueError("must be 1-63 lowercase letters, digits and hyphens, starting "
                             "with a letter or digit")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _endpoint_url(value)

    @field_validator("filter")
    @classmethod
    def _filter(cls, value: list[str]) -> list[str]:
        return _event_filter(value)

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: SecretStr) -> SecretStr:
        raw = value.get_secret_value()
        encoded = raw.removeprefix("whsec_")
        try:
            key = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("must be 'whsec_' followed by base64 (Standard Webhooks); "
                             "make one with: tenantops events secret") from None
        if not raw.startswith("whsec_") or not 24 <= len(key) <= 64:
            raise ValueError("must be 'whsec_' followed by the base64 of 24 to 64 random "
                             "bytes (Standard Webhooks); make one with: tenantops events "
                             "secret")
        return value


class EventGridSettings(_Section):
    """``[events.event_grid]``: publish every event matching ``filter`` to an Event Grid topic
    in the CloudEvents 1.0 schema, with a token of tenantops' managed identity (or the
    identity source chosen here) for ``https://eventgrid.azure.net``."""

    topic_endpoint: str | None = Field(
        default=None, description="the topic's endpoint, https://<topic>.<region>-1.eventgrid."
        "azure.net/api/events; unset: Event Grid is off")
    filter: list[str] = Field(
        default_factory=list, description="event types or globs to publish; empty: every event")
    identity_source: IdentitySource | None = Field(
        default=None, description="the identity that publishes (identity.source if unset)")
    identity: str | None = Field(
        default=None, description="its user-assigned identity (identity.identity if unset)")
    api_version: str = Field(default="2018-01-01", description="Event Grid data-plane version")

    @field_validator("topic_endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        return None if value is None else _endpoint_url(value)

    @field_validator("filter")
    @classmethod
    def _filter(cls, value: list[str]) -> list[str]:
        return _event_filter(value)


class EventsSettings(_Section):
    """``[events]``: lifecycle events and where the worker delivers them (docs/events.md)."""

    source: str = Field(
        default="/tenantops", min_length=1, max_length=200,
        description="the CloudEvents 'source' of every event; the API's URL is a good value")
    webhooks: list[WebhookSettings] = Field(default_factory=list)
    event_grid: EventGridSettings = Field(default_factory=EventGridSettings)
    poll_seconds: float = Field(
        default=1.0, gt=0, le=60, description="how often the dispatcher looks for new events")
    lease_seconds: float = Field(
        default=30.0, ge=1, le=3600,
        description="a dispatcher unheard of this long is replaced by another worker's")
    concurrency: int = Field(
        default=8, ge=1, le=64, description="deliveries at once (one per sink and tenant)")
    timeout_seconds: float = Field(default=10.0, gt=0, le=120, description="per attempt")
    retry_initial_seconds: float = Field(
        default=5.0, gt=0, le=3600, description="wait after the first failed attempt")
    retry_max_seconds: float = Field(
        default=3600.0, gt=0, le=86400, description="longest wait between two attempts")
    give_up_after_seconds: float = Field(
        default=86400.0, gt=0, le=30 * 86400,
        description="after this long failing, a delivery is parked (shown, redeliverable)")

    @model_validator(mode="after")
    def _consistent(self) -> EventsSettings:
        names = [w.name for w in self.webhooks]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"webhook names must be unique; {', '.join(repeated)} repeats")
        if self.lease_seconds <= self.timeout_seconds + self.poll_seconds:
            raise ValueError(
                f"lease_seconds ({self.lease_seconds:g}) must exceed timeout_seconds + "
                f"poll_seconds ({self.timeout_seconds + self.poll_seconds:g}): a dispatcher "
                "busy with a slow receiver would otherwise be taken for dead")
        return self
class TelemetrySettings(_Section):
    """``[telemetry]``: OpenTelemetry traces and metrics of the API, the engine and the
    providers (``tenantops.telemetry``). Off unless an exporter is configured: an OTLP/HTTP
    endpoint here, or Application Insights' connection string (the
    ``APPLICATIONINSIGHTS_CONNECTION_STRING`` app setting a Function App already has)."""

    otlp_endpoint: str | None = Field(
        default=None, pattern=r"^https?://[^\s?#]+$",
        description="OTLP/HTTP base URL (http://collector:4318); traces go to <url>/v1/traces "
        "and metrics to <url>/v1/metrics")
    otlp_headers: dict[str, SecretStr] = Field(
        default_factory=dict, description="headers sent with every OTLP export (an API key, "
        "say); never logged")
    otlp_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    azure_monitor_connection_string: SecretStr | None = Field(
        default=None, description="Application Insights connection string; "
        "APPLICATIONINSIGHTS_CONNECTION_STRING when unset (needs the azure extra)")
    use_app_insights_environment: bool = Field(
        default=True, description="read APPLICATIONINSIGHTS_CONNECTION_STRING when "
        "azure_monitor_connection_string is unset")
    service_name: str = Field(
        default="tenantops", min_length=1, max_length=128,
        description="service.name of every span and metric")
    sample_ratio: float = Field(
        default=1.0, ge=0, le=1, description="share of new traces recorded; a trace started "
        "by a caller follows the caller's decision")
    metric_interval_seconds: float = Field(
        default=60.0, ge=1, le=3600, description="how often metrics are exported")

    def app_insights_connection_string(
        self, environ: Mapping[str, str] = os.environ
    ) -> str | None:
        """The Application Insights connection string to export to: the setting, else
        ``APPLICATIONINSIGHTS_CONNECTION_STRING`` (unless ``use_app_insights_environment``
        is off); None for neither."""
        if self.azure_monitor_connection_string is not None:
            return self.azure_monitor_connection_string.get_secret_value() or None
        if self.use_app_insights_environment:
            return environ.get("APPLICATIONINSIGHTS_CONNECTION_STRING", "").strip() or None
        return None

    def enabled(self, environ: Mapping[str, str] = os.environ) -> bool:
        """Whether any exporter is configured (telemetry is off otherwise)."""
        return bool(self.otlp_endpoint) or self.app_insights_connection_string(environ) is not None


_PLAN_NAME = re.compile(r"^[a-z][a-z0-9-]{0,15}$")
_IDENTIFIER = r"^[a-z][a-z0-9_]{0,62}$"
_AZURE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
DEFAULT_PLANS = ("free", "standard", "premium")
"""The plans there are with no ``[plans]`` table: each gives the tenant its own database on
the servers of pool ``default`` (what every tenant had before plans decided anything)."""


class PlanDatabaseSettings(_Section):
    """``[plans.<name>.database]``: where a tenant of the plan keeps its data."""

    mode: Literal["database", "schema"] = Field(
        default="database", description="database: its own database; schema: a schema of its "
        "own in a shared, pooled database (postgres only)")
    pool: str = Field(default="default", pattern=_POOL_NAME,
                      description="the server pool its tenants are placed on")
    shared_database: str = Field(
        default="tenantops_shared", pattern=_IDENTIFIER,
        description="schema mode: the pooled database on each server that holds the schemas")
    elastic_pool: str | None = Field(
        default=None, pattern=_AZURE_NAME,
        description="azure-sql: the elastic pool of the plan's databases (default: "
        "providers.database.azure_sql.elastic_pool)")
    sku: str | None = Field(
        default=None, pattern=_AZURE_NAME,
        description="azure-sql: a single database of this SKU instead of an elastic pool "
        "(S0, GP_S_Gen5_1, ...)")

    @model_validator(mode="after")
    def _one_home(self) -> PlanDatabaseSettings:
        if self.elastic_pool and self.sku:
            raise ValueError("set elastic_pool or sku, not both: an Azure SQL database is "
                             "either in an elastic pool or a single database with its own SKU")
        if self.shared_database.startswith("tenant_"):
            raise ValueError(f"shared_database {self.shared_database!r} must not start with "
                             "'tenant_': tenants' own databases are named tenant_<slug>")
        return self


class PlanOrganizationSettings(_Section):
    """``[plans.<name>.organization]``: what the plan gives the tenant's organization."""

    attributes: dict[str, str] = Field(
        default_factory=dict,
        description="organization attributes: features and limits as the tenant app reads "
        "them (Keycloak organization attributes 'tenantops-plan-<key>')")

    @field_validator("attributes")
    @classmethod
    def _keys(cls, value: dict[str, str]) -> dict[str, str]:
        for key, item in value.items():
            if not re.fullmatch(r"[a-z][a-z0-9_.-]{0,47}", key):
                raise ValueError(f"attribute {key!r} must be 1-48 of a-z, 0-9, '_', '.', '-', "
                                 "starting with a letter")
            if len(item) > 255:
                raise ValueError(f"attribute {key!r} must be at most 255 characters")
        return value


class PlanSettings(_Section):
    """``[plans.<name>]``: what a plan means to each provider (docs/placement.md)."""

    description: str = Field(default="", max_length=200)
    database: PlanDatabaseSettings = Field(default_factory=PlanDatabaseSettings)
    organization: PlanOrganizationSettings = Field(default_factory=PlanOrganizationSettings)


def _default_plans() -> dict[str, PlanSettings]:
    return {name: PlanSettings() for name in DEFAULT_PLANS}


def check_plans(plans: Mapping[str, PlanSettings], database: DatabaseProviderSettings) -> None:
    """Refuse, naming the setting, a plan that no server can serve: a pool with no server,
    a mode or an Azure option the database provider does not have."""
    if not plans:
        raise ValueError("plans is empty: tenants need at least one plan (or leave [plans] "
                         f"out for the defaults {', '.join(DEFAULT_PLANS)})")
    pools: dict[str, list[str]] = {}
    for server in database.server_list():
        pools.setdefault(server.pool, []).append(server.name)
    for name, plan in plans.items():
        if not _PLAN_NAME.match(name):
            raise ValueError(f"plans.{name}: a plan's name must be 1-16 of a-z, 0-9 and '-', "
                             "starting with a letter")
        wanted = plan.database
        if wanted.pool not in pools:
            known = "; ".join(f"{pool}: {', '.join(names)}" for pool, names in pools.items())
            raise ValueError(
                f"plans.{name}.database.pool = {wanted.pool!r}: no server is in that pool "
                f"(pools: {known}); add a [[providers.database.servers]] entry with pool = "
                f"{wanted.pool!r}")
        if wanted.mode == "schema" and database.name != "postgres":
            raise ValueError(
                f"plans.{name}.database.mode = 'schema': the {database.name} provider gives "
                "each tenant its own database only (schemas in a pooled database need "
                "providers.database.name = 'postgres')")
        for option in ("elastic_pool", "sku"):
            if getattr(wanted, option) is not None and database.name != "azure-sql":
                raise ValueError(
                    f"plans.{name}.database.{option} is for the azure-sql provider; "
                    f"providers.database.name is {database.name!r}")


class ProvidersSettings(BaseModel):
    """Which provider serves each kind of resource; every default is embedded."""

    secrets: SecretsProviderSettings = Field(default_factory=SecretsProviderSettings)
    database: DatabaseProviderSettings = Field(default_factory=DatabaseProviderSettings)
    dns: DnsProviderSettings = Field(default_factory=DnsProviderSettings)
    organization: OrganizationProviderSettings = Field(
        default_factory=OrganizationProviderSettings
    )
    webhost: WebHostProviderSettings = Field(default_factory=WebHostProviderSettings)


class Settings(BaseSettings):
    """The whole configuration tree."""

    model_config = SettingsConfigDict(
        env_prefix="TENANTOPS_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    data_dir: Path = Path(".tenantops")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    dev_mode: bool | None = Field(
        default=None,
        description="a laptop or CI installation: custom domains under the special-use .test "
        "top-level domain are accepted. Unset: on exactly when auth.authority is on a loopback "
        "address (an emulator; Entra ID never is). Never on in production")
    domains: DomainSettings = Field(default_factory=DomainSettings)
    emulator: EmulatorSettings = Field(default_factory=EmulatorSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)
    identity: IdentitySettings = Field(default_factory=IdentitySettings)
    catalog: CatalogSettings = Field(default_factory=CatalogSettings)
    engine: EngineSettings = Field(default_factory=EngineSettings)
    drift: DriftSettings = Field(default_factory=DriftSettings)
    providers: ProvidersSettings = Field(default_factory=ProvidersSettings)
    azure: AzureSettings = Field(default_factory=AzureSettings)
    events: EventsSettings = Field(default_factory=EventsSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    migrations: MigrationsSettings = Field(default_factory=MigrationsSettings)
    fleet: FleetSettings = Field(default_factory=FleetSettings)
    rotation: RotationSettings = Field(default_factory=RotationSettings)
    certificates: CertificateSettings = Field(default_factory=CertificateSettings)
    steps: list[CustomStepSettings] = Field(
        default_factory=list, description="steps of your own, placed in the plans "
        "([[steps]]; docs/custom-steps.md)")
    plans: dict[str, PlanSettings] = Field(
        default_factory=_default_plans,
        description="what each plan means to the providers ([plans.<name>]; "
        "docs/placement.md); with none, free, standard and premium, each a database of its "
        "own")

    @field_validator("plans")
    @classmethod
    def _check_plans(cls, plans: dict[str, PlanSettings], info: ValidationInfo
                     ) -> dict[str, PlanSettings]:
        providers = info.data.get("providers")
        if isinstance(providers, ProvidersSettings):
            check_plans(plans, providers.database)
        return plans

    @field_validator("steps")
    @classmethod
    def _check_steps(cls, steps: list[CustomStepSettings]) -> list[CustomStepSettings]:
        if steps:
            # Imported here: the checks need the plans, which need this module loaded.
            from tenantops.provisioning.custom_steps.checks import check_custom_steps

            try:
                check_custom_steps(steps)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return steps

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))


def _problem(error: Any) -> str:
    """One validation error as ``setting = value: rule``; a list (``[[steps]]``) is not
    repeated, its rule names what in it is wrong."""
    where = ".".join(str(p) for p in error["loc"])
    if tuple(error["loc"]) == ("plans",) and isinstance(error.get("input"), dict):
        return str(error["msg"]).removeprefix("Value error, ")
    if tuple(error["loc"]) == ("steps",) and isinstance(error.get("input"), list):
        return f"{where}: {str(error['msg']).removeprefix('Value error, ')}"
    return f"{where} = {_shown_input(error)}: {error['msg']}"


def load_settings(config_file: Path | None = None, **overrides: object) -> Settings:
    """Read the settings tree; raise `ConfigError` naming the setting, value and rule.

    ``config_file`` (or ``TENANTOPS_CONFIG``) must exist when given; the default
    ``tenantops.toml`` is optional.
    """
    explicit = config_file or (
        Path(os.environ["TENANTOPS_CONFIG"]) if os.environ.get("TENANTOPS_CONFIG") else None
    )
    path = explicit or Path(DEFAULT_CONFIG_FILE)
    if explicit is not None and not explicit.is_file():
        raise ConfigError(
            f"configuration file {explicit} does not exist; create it or unset TENANTOPS_CONFIG"
        )
    toml_file = path if path.is_file() else None

    class _Settings(Settings):
        model_config = SettingsConfigDict(toml_file=toml_file)

    try:
        return _Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        where = f"{toml_file} or " if toml_file else ""
        where += "TENANTOPS_* environment"
        problems = "; ".join(_problem(err) for err in exc.errors())
        raise ConfigError(f"invalid configuration ({where}): {problems}") from exc


_SECRET_SETTING = re.compile(r"secret|password|key", re.IGNORECASE)


def _shown_input(error: object) -> str:
    """The rejected value as a message may show it: never the value of a secret setting
    (a webhook secret that fails its check is still somebody's secret)."""
    details = error if isinstance(error, dict) else {}
    location = [str(part) for part in details.get("loc", ())]
    if any(_SECRET_SETTING.search(part) for part in location):
        return "'<hidden>'"
    value = details.get("input")
    if isinstance(value, (dict, list)) and _holds_secret(value):
        return "{...}" if isinstance(value, dict) else "[...]"
    return repr(value)


def _holds_secret(value: object) -> bool:
    """Whether a value holds, at any depth, a key that names a secret (a server entry's
    admin_password inside providers.database, say)."""
    if isinstance(value, dict):
        return any(_SECRET_SETTING.search(str(k)) or _holds_secret(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_secret(item) for item in value)
    return False
