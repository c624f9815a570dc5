"""Fake of a Key Vault's secrets (data plane, ``https://<vault>.vault.azure.net``,
api-version 2026-04-01, the default of azure-keyvault-secrets 4.12).

Not ARM, but the same kind of fake: an azure-core transport under the real ``SecretClient``.
Semantics kept (Key Vault documentation, "About secrets" and "soft-delete overview"):

- Authentication is challenge-based: a request without a bearer token gets 401 with
  ``WWW-Authenticate: Bearer authorization="https://login.microsoftonline.com/<tenant>",
  resource="https://vault.azure.net"``; the SDK's ``ChallengeAuthPolicy`` then asks the
  credential for ``https://vault.azure.net/.default`` and checks the resource matches the vault's
  domain.
- ``PUT /secrets/{name}`` adds a new version (200); ``GET /secrets/{name}/`` returns the
  latest, 404 ``SecretNotFound`` when there is none.
- Soft delete (on for every vault since 2020): ``DELETE /secrets/{name}`` moves the secret to
  ``/deletedsecrets/{name}``; setting a secret of that name then fails with 409 ``Conflict``
  (inner code ``ObjectIsDeletedButRecoverable``) until it is recovered
  (``POST /deletedsecrets/{name}/recover``) or purged (``DELETE /deletedsecrets/{name}``).
- Secret values are never logged by the fake; tests read them through the SDK.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Any

from tests.azure_fake._transport import (
    ArmError,
    FakeClock,
    FakeResponse,
    FakeTransport,
    Incoming,
    RecordedRequest,
)

__all__ = ["FakeKeyVault"]

API_VERSION = "2026-04-01"


@dataclass
class _Secret:
    versions: list[tuple[str, str, str | None]] = field(default_factory=list)
    deleted: bool = False


class FakeKeyVault(FakeTransport):
    """One vault, ``https://{name}.vault.azure.net``, in tenant ``tenant_id``."""

    def __init__(self, name: str = "tenantops-kv", *, clock: FakeClock | None = None,
                 tenant_id: str = "11111111-1111-1111-1111-111111111111") -> None:
        super().__init__(api_version=API_VERSION, clock=clock)
        self.host = f"{name}.vault.azure.net"
        self.tenant_id = tenant_id
        self.secrets: dict[str, _Secret] = {}
        self._versions = itertools.count(1)
        self.route("PUT", r"/secrets/(?P<name>[^/]+)", self._set)
        self.route("GET", r"/secrets/(?P<name>[^/]+)/?(?P<version>[^/]*)", self._get)
        self.route("DELETE", r"/secrets/(?P<name>[^/]+)", self._delete)
        self.route("GET", r"/deletedsecrets/(?P<name>[^/]+)", self._get_deleted)
        self.route("DELETE", r"/deletedsecrets/(?P<name>[^/]+)", self._purge)
        self.route("POST", r"/deletedsecrets/(?P<name>[^/]+)/recover", self._recover)

    @property
    def url(self) -> str:
        return f"https://{self.host}"

    def authenticate(self, incoming: Incoming, recorded: RecordedRequest) -> FakeResponse | None:
        if recorded.authenticated:
            return None
        return FakeResponse(401, {"error": {"code": "Unauthorized",
                                            "message": "AKV10000: Request is missing a Bearer "
                                            "or PoP token."}}, {
            "WWW-Authenticate": f'Bearer authorization="https://login.microsoftonline.com/'
                                f'{self.tenant_id}", resource="https://vault.azure.net"'})

    def _bundle(self, name: str, secret: _Secret, *, with_value: bool = True) -> dict[str, Any]:
        version, value, content_type = secret.versions[-1]
        body: dict[str, Any] = {
            "id": f"{self.url}/secrets/{name}/{version}",
            "attributes": {"enabled": True, "created": 1764460800, "updated": 1764460800,
                           "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90},
            "tags": {},
        }
        if content_type is not None:
            body["contentType"] = content_type
        if with_value:
            body["value"] = value
        return body

    def _not_found(self, name: str) -> ArmError:
        return ArmError(404, "SecretNotFound",
                        f"A secret with (name/id) {name} was not found in this key vault. If you "
                        "recently deleted this secret you may be able to recover it using the "
                        "correct recovery command.")

    def _set(self, request: Incoming, match: re.Match[str]) -> FakeResponse:
        name = match["name"].lower()
        secret = self.secrets.setdefault(name, _Secret())
        if secret.deleted:
            return FakeResponse(409, {"error": {
                "code": "Conflict",
                "message": f"Secret {name} is currently in a deleted but recoverable state, and "
                "its name cannot be reused; in this state, the secret can only be recovered or "
                "purged.", "innererror": {"code": "ObjectIsDeletedButRecoverable"}}})
        body = request.body or {}
        version = f"{next(self._versions):032x}"
        secret.versions.append((version, str(body.get("value", "")), body.get("contentType")))
        return FakeResponse(200, self._bundle(name, secret))

    def _get(self, _request: Incoming, match: re.Match[str]) -> FakeResponse:
        name = match["name"].lower()
        secret = self.secrets.get(name)
        if secret is None or secret.deleted or not secret.versions:
            raise self._not_found(name)
        return FakeResponse(200, self._bundle(name, secret))

    def _deleted_body(self, name: str, secret: _Secret) -> dict[str, Any]:
        return {**self._bundle(name, secret, with_value=False),
                "recoveryId": f"{self.url}/deletedsecrets/{name}",
                "deletedDate": 1764460800, "scheduledPurgeDate": 1772236800}

    def _delete(self, _request: Incoming, match: re.Match[str]) -> FakeResponse:
        name = match["name"].lower()
        secret = self.secrets.get(name)
        if secret is None or secret.deleted:
            raise self._not_found(name)
        secret.deleted = True
        return FakeResponse(200, self._deleted_body(name, secret))

    def _get_deleted(self, _request: Incoming, match: re.Match[str]) -> FakeResponse:
        name = match["name"].lower()
        secret = self.secrets.get(name)
        if secret is None or not secret.deleted:
            raise ArmError(404, "SecretNotFound", f"Deleted Secret not found: {name}")
        return FakeResponse(200, self._deleted_body(name, secret))

    def _purge(self, _request: Incoming, match: re.Match[str]) -> FakeResponse:
        name = match["name"].lower()
        secret = self.secrets.get(name)
        if secret is None or not secret.deleted:
            raise ArmError(404, "SecretNotFound", f"Deleted Secret not found: {name}")
        del self.secrets[name]
        return FakeResponse(204)

    def _recover(self, _request: Incoming, match: re.Match[str]) -> FakeResponse:
        name = match["name"].lower()
        secret = self.secrets.get(name)
        if secret is None or not secret.deleted:
            raise ArmError(404, "SecretNotFound", f"Deleted Secret not found: {name}")
        secret.deleted = False
        return FakeResponse(200, self._bundle(name, secret, with_value=False))
