"""Secrets providers: where generated credentials (database passwords) are kept, and the
tenant app's connection to its data (`ConnectionSecret`).

The value of a secret never leaves the provider except through `SecretsProvider.read`,
called by whoever must use it (the database provider setting a login's password, the
tenant app connecting); it is never an output, a log line or a step record.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import quote, urlsplit, urlunsplit

from tenantops.errors import PermanentProviderError
from tenantops.provisioning.providers.base import Provider, Resource

__all__ = ["ConnectionSecret", "Secret", "SecretVersion", "SecretsProvider", "connection_url"]

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
class ConnectionSecret(Resource):
    """Secret ``name``: how the tenant's app connects to its data, the URL ``location``
    (without a password) with ``login`` and the password kept in ``password_secret`` put in
    (`connection_url`). ``ensure`` writes it when it differs: a move switches it to the new
    copy of the data. ``remove`` deletes it."""

    name: str
    location: str
    login: str
    password_secret: str

    def __post_init__(self) -> None:
        Secret(self.name)
        Secret(self.password_secret)

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


def connection_url(location: str, login: str, password: str) -> str:
    """``location`` with ``login`` and ``password`` as its user information (a file URL,
    ``sqlite:///...``, has none and is returned as it is)."""
    parts = urlsplit(location)
    if parts.scheme == "sqlite" or not parts.hostname:
        return location
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = f"{quote(login, safe='')}:{quote(password, safe='')}@{host}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class SecretsProvider(Provider):
    """Generates and keeps secrets; `SecretVersion` replaces a secret's value (a rotation)."""

    kind = "secrets"
    resource_types: ClassVar[tuple[type[Resource], ...]] = (Secret, ConnectionSecret,
                                                             SecretVersion)

    def connection_value(self, resource: ConnectionSecret) -> str:
        """What a `ConnectionSecret` holds (reads the password)."""
        return connection_url(resource.location, resource.login,
                              self.read(resource.password_secret))

    @abstractmethod
    def read(self, name: str) -> str:
        """The secret's value; `PermanentProviderError` when there is no such secret."""
