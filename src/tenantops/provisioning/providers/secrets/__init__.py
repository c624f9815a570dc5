"""Secrets providers: where generated credentials (database passwords) are kept.

The value of a secret never leaves the provider except through `SecretsProvider.read`,
called by whoever must use it (the database provider setting a login's password, the
tenant app connecting); it is never an output, a log line or a step record.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from tenantops.errors import PermanentProviderError
from tenantops.provisioning.providers.base import Provider, Resource

__all__ = ["Secret", "SecretVersion", "SecretsProvider"]

_SECRET_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,126}")


@dataclass(frozen=True)
class Secret(Resource):
    """A random secret called ``name``; ``ensure`` generates it once and keeps it."""

    name: str

    def __post_init__(self) -> None:
        if not _SECRET_NAME.fullmatch(self.name):
            raise PermanentProviderError(
                f"secret name {self.name!r} must be 1 to 127 of a-z, 0-9 and '-', starting "
                "with a letter or digit"
            )

    @property
    def key(self) -> str:
        return f"secret:{self.name}"


@dataclass(frozen=True)
class SecretVersion(Resource):
    """A new random value of secret ``name``, made once for ``version`` (a rotation's run):
    ``ensure`` replaces the value unless the secret already holds the one made for
    ``version``, so a replayed step does not rotate twice (docs/fleet.md)."""

    name: str
    version: str

    def __post_init__(self) -> None:
        Secret(self.name)
        if not re.fullmatch(r"[A-Za-z0-9:/_.-]{1,100}", self.version):
            raise PermanentProviderError(
                f"secret version {self.version!r} must be 1 to 100 of A-Z, a-z, 0-9 and :/_.-")

    @property
    def key(self) -> str:
        return f"secret:{self.name}"


class SecretsProvider(Provider):
    """Generates and keeps secrets; `SecretVersion` replaces a secret's value (a rotation)."""

    kind = "secrets"
    resource_types: ClassVar[tuple[type[Resource], ...]] = (Secret, SecretVersion)

    @abstractmethod
    def read(self, name: str) -> str:
        """The secret's value; `PermanentProviderError` when there is no such secret."""
