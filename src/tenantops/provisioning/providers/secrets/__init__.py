"""Secrets providers: where generated credentials (database passwords) are kept.

The value of a secret never leaves the provider except through `SecretsProvider.read`,
called by whoever must use it (the database provider setting a login's password, the
tenant app connecting); it is never an output, a log line or a step record.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from dataclasses import dataclass

from tenantops.errors import PermanentProviderError
from tenantops.provisioning.providers.base import Provider, Resource

__all__ = ["Secret", "SecretsProvider"]

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


class SecretsProvider(Provider):
    """Generates and keeps secrets."""

    kind = "secrets"
    resource_types = (Secret,)

    @abstractmethod
    def read(self, name: str) -> str:
        """The secret's value; `PermanentProviderError` when there is no such secret."""
