"""``local`` secrets: one file per secret in a folder only the owner can read (0700/0600)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from tenantops.errors import PermanentProviderError
from tenantops.provisioning.providers.base import Outcome, Ready, Resource
from tenantops.provisioning.providers.secrets import (
    ConnectionSecret,
    Secret,
    SecretsProvider,
    SecretVersion,
)

__all__ = ["LocalSecrets"]


class LocalSecrets(SecretsProvider):
    """Secrets as files ``<directory>/<name>``, created with ``O_EXCL`` so two concurrent
    ``ensure`` calls agree on one value."""

    name = "local"

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.directory = directory

    def _path(self, name: str) -> Path:
        return self.directory / Secret(name).name

    def _rotate(self, resource: SecretVersion) -> Outcome:
        """The new value is written to a temporary file and renamed over the old one (a
        reader sees the old value or the new, whole); ``<name>.version`` records which
        rotation made it."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self._path(resource.name)
        marker = path.with_name(f"{path.name}.version")
        if path.is_file() and path.stat().st_size and marker.is_file() and (
                marker.read_text().strip() == resource.version):
            return Ready({"secret": resource.name, "version": resource.version}, changed=False)
        for target, value in ((path, secrets.token_urlsafe(32)), (marker, resource.version)):
            temporary = target.with_name(f".{target.name}.new")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(value.encode())
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, target)
        return Ready({"secret": resource.name, "version": resource.version}, changed=True)

    def _ensure(self, resource: Resource) -> Outcome:
        if isinstance(resource, SecretVersion):
            return self._rotate(resource)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.directory, 0o700)
        if isinstance(resource, ConnectionSecret):
            return self._write(resource)
        if not isinstance(resource, Secret):
            raise PermanentProviderError(f"not a secret: {resource.key}")
        path = self._path(resource.name)
        value = secrets.token_urlsafe(32).encode()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            if path.stat().st_size == 0:
                # A writer was killed between create and write; finish its job.
                path.write_bytes(value)
                return Ready({"secret": resource.name}, changed=True)
            return Ready({"secret": resource.name}, changed=False)
        with os.fdopen(fd, "wb") as handle:
            handle.write(value)
            handle.flush()
            os.fsync(handle.fileno())
        return Ready({"secret": resource.name}, changed=True)

    def _write(self, resource: ConnectionSecret) -> Outcome:
        """The connection's value, written whole (a temporary file renamed into place)."""
        value = self.connection_value(resource).encode()
        path = self._path(resource.name)
        if path.is_file() and path.read_bytes() == value:
            return Ready({"secret": resource.name, "location": resource.location},
                         changed=False)
        partial = path.with_name(f".{path.name}.writing")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(value)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
        return Ready({"secret": resource.name, "location": resource.location}, changed=True)

    def _remove(self, resource: Resource) -> Outcome:
        if not isinstance(resource, (Secret, ConnectionSecret, SecretVersion)):
            raise PermanentProviderError(f"not a secret: {resource.key}")
        path = self._path(resource.name)
        existed = path.exists()
        path.unlink(missing_ok=True)
        path.with_name(f"{path.name}.version").unlink(missing_ok=True)
        return Ready({"secret": resource.name}, changed=existed)

    def _observe(self, resource: Resource) -> dict[str, Any] | None:
        if not isinstance(resource, (Secret, ConnectionSecret, SecretVersion)):
            raise PermanentProviderError(f"not a secret: {resource.key}")
        path = self._path(resource.name)
        if not path.is_file():
            return None
        if isinstance(resource, ConnectionSecret):
            # Compared, never shown: the value holds the password.
            same = path.read_bytes() == self.connection_value(resource).encode()
            return {"name": resource.name,
                    "location": resource.location if same else "<another>"}
        return {"name": resource.name}

    def read(self, name: str) -> str:
        try:
            value = self._path(name).read_text().strip()
        except FileNotFoundError:
            value = ""
        if not value:
            raise PermanentProviderError(
                f"secret {name!r} does not exist in {self.directory}; run the step that "
                "stores it first", provider=self.label, action="read", resource=f"secret:{name}",
            )
        return value
