"""Every provider name the configuration accepts builds, with no I/O, from settings alone."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from tenantops.catalog import Catalog
from tenantops.config import (
    DatabaseProviderSettings,
    DnsProviderSettings,
    OrganizationProviderSettings,
    SecretsProviderSettings,
    Settings,
    WebHostProviderSettings,
)
from tenantops.errors import ConfigError
from tenantops.provisioning.providers.registry import build_providers

KINDS: dict[str, type[BaseModel]] = {
    "secrets": SecretsProviderSettings, "database": DatabaseProviderSettings,
    "dns": DnsProviderSettings, "organization": OrganizationProviderSettings,
    "webhost": WebHostProviderSettings,
}
CASES = [(kind, name) for kind, section in KINDS.items()
         for name in typing.get_args(section.model_fields["name"].annotation)]


@pytest.mark.parametrize(("kind", "name"), CASES, ids=[f"{k}-{n}" for k, n in CASES])
def test_every_configurable_provider_builds_without_io(tmp_path: Path, kind: str,
                                                       name: str) -> None:
    section: dict[str, object] = {"name": name}
    section.update({  # what each Azure provider needs to know before it can exist
        "key-vault": {"key_vault": {"vault_url": "https://kv.vault.azure.net"}},
        "azure-sql": {"azure_sql": {"server": "sql", "elastic_pool": "pool"}},
        "azure-postgres": {"azure_postgres": {"server": "pg"}},
        "azure-app-service": {"azure_app_service": {"app_name": "app"}},
    }.get(name, {}))
    settings = Settings(
        data_dir=tmp_path / "never-created",
        azure={"subscription_id": "00000000-0000-0000-0000-000000000000",
               "resource_group": "rg-tenantops"},
        providers={kind: section},
    )
    catalog = Catalog(f"sqlite:///{tmp_path / 'never-created' / 'catalog.sqlite'}")
    providers = build_providers(settings, catalog, serve=False)
    provider = providers.of_kind(kind)  # type: ignore[arg-type]
    assert provider.name == name
    assert not (tmp_path / "never-created").exists(), "building a provider did I/O"


def test_unknown_provider_name_lists_the_known_ones(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    object.__setattr__(settings.providers.dns, "name", "route53")
    with pytest.raises(ConfigError, match=r"providers\.dns\.name = 'route53' is not a known dns "
                       r"provider; use one of azure-dns, rfc2136, zone-file"):
        build_providers(settings, Catalog(f"sqlite:///{tmp_path / 'c.sqlite'}"), serve=False)
