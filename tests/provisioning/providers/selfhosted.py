"""Settings and providers for running the engine on the self-hosted servers: catalog and
DBOS on PostgreSQL, tenant databases on PostgreSQL, DNS on BIND or Knot (RFC 2136),
organizations on Keycloak; the web host stays the embedded local edge (without its TLS
server), checking the asuid record through the RFC 2136 provider's authoritative lookup."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg import sql

from tenantops.catalog import Catalog
from tenantops.config import Settings
from tenantops.provisioning.providers.catalog import CatalogProvider
from tenantops.provisioning.providers.database.postgres import PostgresDatabases
from tenantops.provisioning.providers.dns.rfc2136 import Rfc2136Dns
from tenantops.provisioning.providers.organization.keycloak import KeycloakOrganizations
from tenantops.provisioning.providers.registry import Providers
from tenantops.provisioning.providers.secrets.local import LocalSecrets
from tenantops.provisioning.providers.webhost.local_edge import LocalEdge

from .servers import DnsServer, dns_settings, keycloak_settings, postgres_url


def _with_dbname(name: str) -> str:
    base = postgres_url().rsplit("/", 1)[0]
    return f"{base}/{name}"


@contextlib.contextmanager
def scratch_databases(*purposes: str) -> Iterator[list[str]]:
    """Fresh, empty databases on the test server (names returned), dropped afterwards."""
    suffix = secrets.token_hex(4)
    names = [f"tenantops_{purpose}_{suffix}" for purpose in purposes]
    with psycopg.connect(postgres_url(), autocommit=True) as admin:
        for name in names:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield names
    finally:
        with psycopg.connect(postgres_url(), autocommit=True) as admin:
            for name in names:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                              .format(sql.Identifier(name)))


def selfhosted_settings(
    data_dir: Path, *, catalog_db: str, engine_db: str, dns_server: DnsServer,
    executor_id: str = "selfhosted-tests",
) -> Settings:
    """Settings naming the real providers, as an operator's tenantops.toml would."""
    dns = dns_settings(dns_server)
    keycloak = keycloak_settings()
    return Settings.model_validate({
        "data_dir": data_dir,
        "dev_mode": True,  # the test servers' zone is example.test (RFC 6761 .test)
        "catalog": {"url": _with_dbname(catalog_db)},
        "engine": {
            "system_database_url": _with_dbname(engine_db),
            "executor_id": executor_id,
            "retry_initial_seconds": 0.2,
            "retry_max_seconds": 2.0,
            "serve_embedded": False,
        },
        "providers": {
            "database": {"name": "postgres", "postgres": {"admin_url": postgres_url(),
                                                          "connection_limit": 5}},
            "dns": dns.model_dump(),
            "organization": {"name": "keycloak", "keycloak": keycloak.model_dump()},
            "webhost": {"default_hostname": "tenants.edge.example.net",
                        "verification_id": "5E1F0A0B0C0D0E0F1011121314151617",
                        "port": 0, "app_port": 0},
        },
    })


def selfhosted_providers(settings: Settings, catalog: Catalog) -> Providers:
    """What the provider registry builds for these settings (it does not know the
    self-hosted providers' names yet; see docs/providers.md)."""
    config = settings.providers
    secrets_store = LocalSecrets(settings.data_dir / "secrets")
    dns = Rfc2136Dns(config.dns)

    def lookup(name: str, record_type: str) -> list[str]:
        assert record_type in ("CNAME", "TXT", "A")
        return dns.lookup(name, record_type)  # type: ignore[arg-type]

    return Providers(
        catalog=CatalogProvider(catalog),
        secrets=secrets_store,
        database=PostgresDatabases.from_settings(config.database.postgres, secrets_store),
        dns=dns,
        webhost=LocalEdge(config.webhost, settings.data_dir / "edge", lookup=lookup,
                          serve=False),
        organization=KeycloakOrganizations(config.organization.keycloak),
    )
