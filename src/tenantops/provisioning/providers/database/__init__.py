"""Database providers: one database per tenant, with a login whose password is a secret."""

from __future__ import annotations

import re
from abc import abstractmethod
from dataclasses import dataclass

from tenantops.errors import PermanentProviderError
from tenantops.provisioning.providers.base import Provider, Resource

__all__ = ["UNMANAGED_LOGINS", "Database", "DatabaseProvider"]

_IDENTIFIER = re.compile(r"[a-z][a-z0-9_]{0,62}")


@dataclass(frozen=True)
class Database(Resource):
    """Database ``name`` with login ``login``, whose password is the secret ``secret``.

    ``login_enabled``: whether the login may sign in. False while the tenant is suspended:
    the login cannot open a session and its open sessions are ended; nothing is dropped."""

    name: str
    login: str
    secret: str
    login_enabled: bool = True

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


UNMANAGED_LOGINS = (
    "tenantops makes the database but not its login on this provider (the tenant app's "
    "migrations make it: docs/azure.md), so it cannot disable it; while the tenant is "
    "suspended its hostname is served by the suspended-page app, so the app cannot use it for "
    "the tenant's users. To refuse the login itself, run DENY CONNECT / ALTER ROLE ... NOLOGIN "
    "in the tenant's database")
"""What a provider that does not hold the login says when asked to disable it."""


class DatabaseProvider(Provider):
    """Creates and drops tenant databases and their logins."""

    kind = "database"
    resource_types = (Database,)

    @abstractmethod
    def read_metadata(self, database: Database) -> dict[str, str]:
        """Connect as the tenant's login (password from the secrets provider) and read the
        ``tenantops_meta`` table: what the tenant app shows to prove it reads its database."""
