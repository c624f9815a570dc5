"""Build the providers named in configuration, wired to one another.

Each kind has a table of names to factories; ``providers.<kind>.name`` picks one. Building
does no I/O (folders are created, servers started and databases opened on first use).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tenantops.catalog import Catalog
from tenantops.config import Settings
from tenantops.errors import ConfigError, PermanentProviderError
from tenantops.provisioning.placement import database_of
from tenantops.provisioning.providers.base import (
    EmbeddedService,
    Middleware,
    Provider,
    ProviderKind,
)
from tenantops.provisioning.providers.catalog import CatalogProvider
from tenantops.provisioning.providers.database import DatabaseProvider
from tenantops.provisioning.providers.database.postgres import PostgresDatabases
from tenantops.provisioning.providers.database.sqlite import SqliteDatabases
from tenantops.provisioning.providers.dns import DnsProvider, RecordType
from tenantops.provisioning.providers.dns.rfc2136 import Rfc2136Dns
from tenantops.provisioning.providers.dns.zone_file import ZoneFileDns
from tenantops.provisioning.providers.organization import OrganizationProvider
from tenantops.provisioning.providers.organization.keycloak import KeycloakOrganizations
from tenantops.provisioning.providers.organization.local import LocalOrganizations
from tenantops.provisioning.providers.secrets import SecretsProvider
from tenantops.provisioning.providers.secrets.local import LocalSecrets
from tenantops.provisioning.providers.webhost import WebHostProvider
from tenantops.provisioning.providers.webhost.local_edge import LocalEdge
from tenantops.provisioning.providers.webhost.sample_app import TenantView

if TYPE_CHECKING:
    from tenantops.provisioning.plans.base import PlanStep

__all__ = ["Providers", "build_providers"]


@dataclass
class Providers:
    """One provider per kind, as the engine and previews use them."""

    catalog: CatalogProvider
    secrets: SecretsProvider
    database: DatabaseProvider
    dns: DnsProvider
    webhost: WebHostProvider
    organization: OrganizationProvider
    custom: dict[str, Provider] = field(default_factory=dict)

    def of_kind(self, kind: ProviderKind) -> Provider:
        provider = getattr(self, kind, None)
        if not isinstance(provider, Provider):
            raise PermanentProviderError(f"no provider of kind {kind!r}; check the plan step")
        return provider

    def for_step(self, step: PlanStep) -> Provider:
        """The provider that runs ``step``: its kind's, or the custom step it names."""
        if step.kind != "custom":
            return self.of_kind(step.kind)
        provider = self.custom.get(step.provider or "")
        if provider is None:
            raise PermanentProviderError(
                f"custom step {step.provider!r} is in this run's plan but not declared in the "
                f"settings ([[steps]] name = {step.provider!r}); declare it again, then retry "
                "the run", resource=step.name)
        return provider

    def all(self) -> list[Provider]:
        return [self.catalog, self.secrets, self.database, self.dns, self.webhost,
                self.organization, *self.custom.values()]

    def services(self) -> list[EmbeddedService]:
        """Embedded servers, in start order (DNS before the app before the edge)."""
        return [service for provider in self.all() for service in provider.services()]

    def use(self, middleware: Sequence[Middleware]) -> None:
        """Run every provider call through ``middleware`` (call logs, fault injection)."""
        for provider in self.all():
            provider.use(middleware)


def _folder(configured: Path | None, settings: Settings, default: str) -> Path:
    return (configured or settings.data_dir / default).resolve()


def _pick(kind: str, name: str, table: dict[str, Callable[[], Provider]]) -> Provider:
    factory = table.get(name)
    if factory is None:
        raise ConfigError(
            f"providers.{kind}.name = {name!r} is not a known {kind} provider; use one of "
            f"{', '.join(sorted(table))}"
        )
    return factory()


def _azure(module: str, cls: str, settings: Settings, **extra: Any) -> Provider:
    """An Azure provider, imported only when configured (the Azure SDKs are an extra)."""
    try:
        loaded = importlib.import_module(f"tenantops.provisioning.providers.{module}")
    except ImportError as exc:
        raise ConfigError(
            f"the Azure providers need the azure extra ({exc.name} is missing); install "
            "tenantops[azure]"
        ) from exc
    provider = getattr(loaded, cls).from_settings(settings, **extra)
    assert isinstance(provider, Provider)
    return provider


def build_providers(settings: Settings, catalog: Catalog, *, serve: bool = True) -> Providers:
    """The configured providers; ``serve=False`` leaves out embedded servers (a process that
    only plans or previews, say)."""
    config = settings.providers
    secrets = _pick("secrets", config.secrets.name, {
        "local": lambda: LocalSecrets(_folder(config.secrets.directory, settings, "secrets")),
        "key-vault": lambda: _azure("secrets.azure_key_vault", "KeyVaultSecrets", settings),
    })
    assert isinstance(secrets, SecretsProvider)
    folder = _folder(config.database.directory, settings, "databases")
    servers = config.database.servers
    database = _pick("database", config.database.name, {
        "sqlite": lambda: SqliteDatabases(folder, secrets, servers={
            s.name: s.directory or folder for s in config.database.server_list()}),
        "postgres": lambda: PostgresDatabases.from_settings(config.database.postgres, secrets,
                                                            servers),
        "azure-sql": lambda: _azure("database.azure_sql", "AzureSqlDatabases", settings),
        "azure-postgres": lambda: _azure("database.azure_postgres", "AzurePostgresDatabases",
                                         settings, secrets=secrets),
    })
    assert isinstance(database, DatabaseProvider)
    dns_settings = config.dns.model_copy(update={"serve": config.dns.serve and serve})
    dns = _pick("dns", config.dns.name, {
        "zone-file": lambda: ZoneFileDns(dns_settings,
                                         _folder(config.dns.directory, settings, "dns")),
        "rfc2136": lambda: Rfc2136Dns(dns_settings),
        "azure-dns": lambda: _azure("dns.azure_dns", "AzureDns", settings),
    })
    assert isinstance(dns, DnsProvider)

    def lookup(name: str, record_type: str) -> list[str]:
        assert record_type in ("CNAME", "TXT", "A")
        kind: RecordType = record_type  # type: ignore[assignment]
        return dns.answers(name, kind)

    def tenant_view(hostname: str) -> TenantView | None:
        tenant = catalog.tenant_for_hostname(hostname)
        if tenant is None:
            return None
        metadata: dict[str, str] = {}
        if tenant.database_name and tenant.database_login and tenant.database_secret:
            # As the tenant's app signs in: with the login in use (after a credential
            # rotation, the second one; the owner cannot sign in any more).
            metadata = database.read_metadata(replace(
                database_of(tenant.slug, catalog.placement_of(tenant.slug)),
                login=tenant.database_login, secret=tenant.database_secret))
        return TenantView(tenant.slug, tenant.display_name, metadata)

    webhost = _pick("webhost", config.webhost.name, {
        "local-edge": lambda: LocalEdge(
            config.webhost, _folder(config.webhost.directory, settings, "edge"),
            lookup=lookup, tenant_lookup=tenant_view, serve=serve),
        "azure-app-service": lambda: _azure("webhost.azure_app_service", "AzureAppService",
                                            settings),
    })
    assert isinstance(webhost, WebHostProvider)
    organization = _pick("organization", config.organization.name, {
        "local": lambda: LocalOrganizations(catalog),
        "keycloak": lambda: KeycloakOrganizations(config.organization.keycloak),
    })
    assert isinstance(organization, OrganizationProvider)
    return Providers(CatalogProvider(catalog), secrets, database, dns, webhost, organization,
                     custom=_custom_steps(settings, secrets))


def _custom_steps(settings: Settings, secrets: SecretsProvider) -> dict[str, Provider]:
    """A provider per ``[[steps]]`` entry (loaded on first use: no I/O here)."""
    from tenantops.provisioning.custom_steps import CommandStep, PythonStep

    built: dict[str, Provider] = {}
    for step in settings.steps:
        built[step.name] = (CommandStep(step, secrets) if step.type == "command"
                            else PythonStep(step))
    return built
