"""Database providers: one database per tenant, with a login whose password is a secret."""

from __future__ import annotations

import re
from abc import abstractmethod
from dataclasses import dataclass

from tenantops.errors import PermanentProviderError
from tenantops.provisioning.providers.base import Provider, Resource

__all__ = ["Database", "DatabaseProvider"]

_IDENTIFIER = re.compile(r"[a-z][a-z0-9_]{0,62}")


@dataclass(frozen=True)
class Database(Resource):
    """Database ``name`` with login ``login``, whose password is the secret ``secret``."""

    name: str
    login: str
    secret: str

    def __post_init__(self) -> None:
        for label, value in (("database name", self.name), ("login", self.login)):
            if not _IDENTIFIER.fullmatch(value):
                raise PermanentProviderError(
                    f"{label} {value!r} must be 1 to 63 of a-z, 0-9 and '_', starting with a "
                    "letter"
                )

    @property
    def key(self) -> str:
        return f"database:{self.name}"


class DatabaseProvider(Provider):
    """Creates and drops tenant databases and their logins."""

    kind = "database"
    resource_types = (Database,)

    @abstractmethod
    def read_metadata(self, database: Database) -> dict[str, str]:
        """Connect as the tenant's login (password from the secrets provider) and read the
        ``tenantops_meta`` table: what the tenant app shows to prove it reads its database."""
