"""One settings tree for every part of tenantops.

Values come, highest priority first, from: keyword arguments, ``TENANTOPS_*`` environment
variables (nested with ``__``, e.g. ``TENANTOPS_AUTH__CLIENT_ID``), then the TOML file
(``tenantops.toml`` in the working directory, or the path in ``TENANTOPS_CONFIG``).
With nothing configured, tenantops runs fully embedded under ``./.tenantops/``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from tenantops.errors import ConfigError

__all__ = [
    "ApiSettings",
    "AuthSettings",
    "EmulatorSettings",
    "IdentitySettings",
    "Settings",
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


class AuthSettings(_Section):
    """Server side: which tokens the API accepts (``tenantops.auth``)."""

    authority: str = "https://login.microsoftonline.com"
    tenant_id: str | None = None
    client_id: str | None = Field(default=None, description="the API app registration's client ID")
    extra_audiences: list[str] = Field(default_factory=list)
    allowed_applications: list[str] = Field(default_factory=list)
    allowed_identities: list[str] = Field(default_factory=list)
    allowed_tenants: list[str] = Field(default_factory=list)
    trust_easy_auth_principal: bool = Field(
        default=False,
        description="trust X-MS-CLIENT-PRINCIPAL; safe only behind App Service Authentication",
    )
    leeway_seconds: int = Field(default=60, ge=0, le=600)
    jwks_min_refresh_seconds: float = Field(default=60.0, ge=0)
    ca_bundle: Path | None = Field(
        default=None, description="CA bundle to trust for the authority (the emulator's)"
    )


class ApiSettings(_Section):
    """Where the API listens (``serve``) and where clients find it (``--api-url``)."""

    url: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)


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


class Settings(BaseSettings):
    """The whole configuration tree."""

    model_config = SettingsConfigDict(
        env_prefix="TENANTOPS_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    data_dir: Path = Path(".tenantops")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    emulator: EmulatorSettings = Field(default_factory=EmulatorSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    identity: IdentitySettings = Field(default_factory=IdentitySettings)

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
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])} = {err.get('input')!r}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration ({where}): {problems}") from exc
