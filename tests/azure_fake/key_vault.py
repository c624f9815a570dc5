"""Fake of a Key Vault's secrets (data plane, ``https://<vault>.vault.azure.net``,
api-version 2026-04-01, the default of azure-keyvault-secrets 4.12).

Not ARM, but the same kind of fake: an azure-core transport under the real ``SecretClient``.
Semantics kept, with their sources:

- Authentication is challenge-based (`tokens.check_key_vault_token`): a request without a
  bearer token gets 401 with ``WWW-Authenticate: Bearer authorization=".../<tenant>",
  resource="https://vault.azure.net"`` and "AKV10000: Request is missing a Bearer, PoP, or
  MTLS_POP token." (recording ``recordings/keyvault_secrets_recover.json``); a token for
  another audience gets "AKV10022: Invalid audience" (see tokens.py).
- RBAC (a vault with ``enableRbacAuthorization``): each operation needs its data action
  (``permissions.py``); without it, 403 ``ForbiddenByRbac`` (authorization.py).
- ``PUT /secrets/{name}`` adds a new version (200); ``GET /secrets/{name}/`` returns the
  latest, 404 ``SecretNotFound`` when there is none (recording).
- Soft delete (on for every vault): ``DELETE /secrets/{name}`` answers 200 with the deleted
  bundle at once, but the deletion **completes asynchronously**: ``GET /deletedsecrets/{name}``
  answers 404 until it has (the recording shows one 404, then 200; azure-keyvault-secrets'
  ``DeleteRecoverPollingMethod`` documents the same). ``delete_seconds`` of fake time model it.
  Setting a secret of that name meanwhile is 409 ``Conflict`` with inner code
  ``ObjectIsBeingDeleted``; once deleted, 409 inner ``ObjectIsDeletedButRecoverable`` "Secret
  <name> is currently in a deleted but recoverable state, and its name cannot be reused; in
  this state, the secret can only be recovered or purged." (both inner codes:
  azure-sdk-for-net Key Vault secrets sample "Getting error details"; the message of the
  first: MicrosoftDocs, quoted in Azure/azure-rest-api-specs#9222; the message of
  ``ObjectIsBeingDeleted`` is unconfirmed).
- ``POST /deletedsecrets/{name}/recover`` answers 200 at once, and the recovery too completes
  asynchronously: ``GET /secrets/{name}/`` is 404 until it has (recording: one 404, then
  200). ``recover_seconds`` model it.
- ``DELETE /deletedsecrets/{name}`` purges (204, recording and specification). With
  ``purge_protection`` on, it is refused: 403 ``Forbidden`` "Operation "purge" is not allowed
  because purge protection is enabled for this vault. Key Vault service will automatically
  purge it after the retention period has passed." (Azure/sap-automation#200,
  microsoft/AzureTRE#1951). A purge also completes asynchronously: for ``purge_seconds`` the
  name still answers 409 ``ObjectIsBeingDeleted`` to a set (the inner code while a purge runs
  is unconfirmed; it is the code the sample names for a deletion in progress).
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
)
from tests.azure_fake.tokens import TokenProblem, check_key_vault_token

__all__ = ["FakeKeyVault"]

API_VERSION = "2026-04-01"
_CREATED = 1_796_515_200


@dataclass
class _Secret:
    versions: list[tuple[str, str, str | None]] = field(default_factory=list)
    deleted_at: float | None = None
    """Fake time the delete was accepted; the deletion is visible after ``delete_seconds``."""
    recovered_at: float | None = None
    purged_at: float | None = None


class FakeKeyVault(FakeTransport):
    """One vault, ``https://{name}.vault.azure.net``, in the fake tenant."""

    def __init__(self, name: str = "tenantops-kv", *, clock: FakeClock | None = None,
                 resource_group: str = "rg-tenantops",
                 subscription: str = "00000000-0000-0000-0000-000000000000",
                 purge_protection: bool = False, delete_seconds: float = 2.0,
                 recover_seconds: float = 2.0, purge_seconds: float = 2.0) -> None:
        super().__init__(api_version=API_VERSION, clock=clock)
        self.name = name
        self.host = f"{name}.vault.azure.net"
        self.resource_id = (f"/subscriptions/{subscription}/resourceGroups/{resource_group}"
                            f"/providers/Microsoft.KeyVault/vaults/{name}")
        self.purge_protection = purge_protection
        self.delete_seconds = delete_seconds
        self.recover_seconds = recover_seconds
        self.purge_seconds = purge_seconds
        self.secrets: dict[str, _Secret] = {}
        self._versions = itertools.count(1)
        self.route("GET", r"/secrets", self._list)
        self.route("PUT", r"/secrets/(?P<name>[^/]+)", self._set)
        self.route("GET", r"/secrets/(?P<name>[^/]+)/?(?P<version>[^/]*)", self._get)
        self.route("DELETE", r"/secrets/(?P<name>[^/]+)", self._delete)
        self.route("GET", r"/deletedsecrets/(?P<name>[^/]+)", self._get_deleted)
        self.route("DELETE", r"/deletedsecrets/(?P<name>[^/]+)", self._purge)
        self.route("POST", r"/deletedsecrets/(?P<name>[^/]+)/recover", self._recover)

    @property
    def tenant_id(self) -> str:
        return self.entra.tenant

    @property
    def url(self) -> str:
        return f"https://{self.host}"

    def check_token(self, authorization: str | None
                    ) -> tuple[dict[str, Any] | None, TokenProblem | None]:
        return check_key_vault_token(self.entra, authorization)

    def token_refused(self, problem: TokenProblem) -> FakeResponse:
        return FakeResponse(problem.status, {"error": {"code": problem.code,
                                                       "message": problem.message}},
                            dict(problem.headers))

    def resource_scope(self, path: str) -> str:
        return self.resource_id + path.rstrip("/")

    # -- state ------------------------------------------------------------------------------

    def _elapsed(self, since: float | None, seconds: float) -> bool:
        return since is not None and self.clock.now() - since >= seconds

    def _state(self, name: str) -> str:
        """absent, active, recovering, deleting, deleted or purging."""
        secret = self.secrets.get(name)
        if secret is None:
            return "absent"
        if secret.purged_at is not None:
            if self._elapsed(secret.purged_at, self.purge_seconds):
                del self.secrets[name]
                return "absent"
            return "purging"
        if secret.deleted_at is not None:
            return "deleted" if self._elapsed(secret.deleted_at, self.delete_seconds) \
                else "deleting"
        if secret.recovered_at is not None and \
                not self._elapsed(secret.recovered_at, self.recover_seconds):
            return "recovering"
        return "active" if secret.versions else "absent"

    def _bundle(self, name: str, secret: _Secret, *, with_value: bool = True) -> dict[str, Any]:
        version, value, content_type = secret.versions[-1]
        body: dict[str, Any] = {
            "id": f"{self.url}/secrets/{name}/{version}",
            "attributes": {"enabled": True, "created": _CREATED, "updated": _CREATED,
                           "recoveryLevel": "Recoverable" if self.purge_protection
                           else "Recoverable+Purgeable", "recoverableDays": 90},
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
                        "correct recovery command. For help resolving this issue, please see "
                        "https://go.microsoft.com/fwlink/?linkid=2125182")

    def _deleted_not_found(self, name: str) -> ArmError:
        return ArmError(404, "SecretNotFound", f"Deleted Secret not found: {name}")

    @staticmethod
    def _conflict(name: str, inner: str) -> FakeResponse:
        message = (f"Secret {name} is currently in a deleted but recoverable state, and its "
                   "name cannot be reused; in this state, the secret can only be recovered or "
                   "purged." if inner == "ObjectIsDeletedButRecoverable" else
                   f"Secret {name} is currently being deleted.")
        return FakeResponse(409, {"error": {"code": "Conflict", "message": message,
                                            "innererror": {"code": inner}}})

    # -- handlers ---------------------------------------------------------------------------

    def _list(self, _request: Incoming, _match: re.Match[str]) -> FakeResponse:
        value = [{"id": f"{self.url}/secrets/{name}",
                  "attributes": self._bundle(name, s)["attributes"]}
                 for name, s in list(self.secrets.items()) if self._state(name) == "active"]
        return FakeResponse(200, {"value": value, "nextLink": None})

    def _set(self, request: Incoming, match: re.Match[str]) -> FakeResponse:
        name = match["name"].lower()
        state = self._state(name)
        if state in ("deleting", "purging"):
            return self._conflict(name, "ObjectIsBeingDeleted")
        if state == "deleted":
            return self._conflict(name, "ObjectIsDeletedButRecoverable")
        secret = self.secrets.setdefault(name, _Secret())
        body = request.body or {}
        version = f"{next(self._versions):032x}"
        secret.versions.append((version, str(body.get("value", "")), body.get("contentType")))
        return FakeResponse(200, self._bundle(name, secret))

    def _get(self, _request: Incoming, match: re.Match[str]) -> FakeResponse:
        name = match["name"].lower()
        if self._state(name) != "active":
            raise self._not_found(name)
        return FakeResponse(200, self._bundle(name, self.secrets[name]))

    def _deleted_body(self, name: str, secret: _Secret) -> dict[str, Any]:
        return {**self._bundle(name, secret, with_value=False),
                "recoveryId": f"{self.url}/deletedsecrets/{name}",
                "deletedDate": _CREATED, "scheduledPurgeDate": _CREATED + 90 * 86400}

    def _delete(self, _request: Incoming, match: re.Match[str]) -> FakeResponse:
        name = match["name"].lower()
        if self._state(name) != "active":
            raise self._not_found(name)
        secret = self.secrets[name]
        secret.deleted_at = self.clock.now()
        secret.recovered_at = None
        return FakeResponse(200, self._deleted_body(name, secret))

    def _get_deleted(self, _request: Incoming, match: re.Match[str]) -> FakeResponse:
        name = match["name"].lower()
        if self._state(name) != "deleted":
            raise self._deleted_not_found(name)
        return FakeResponse(200, self._deleted_body(name, self.secrets[name]))

    def _purge(self, _request: Incoming, match: re.Match[str]) -> FakeResponse:
        name = match["name"].lower()
        if self._state(name) != "deleted":
            raise self._deleted_not_found(name)
        if self.purge_protection:
            raise ArmError(403, "Forbidden",
                           'Operation "purge" is not allowed because purge protection is '
                           "enabled for this vault. Key Vault service will automatically purge "
                           f"it after the retention period has passed.\r\nVault: {self.name};"
                           "location=westeurope")
        self.secrets[name].purged_at = self.clock.now()
        return FakeResponse(204)

    def _recover(self, _request: Incoming, match: re.Match[str]) -> FakeResponse:
        name = match["name"].lower()
        if self._state(name) != "deleted":
            raise self._deleted_not_found(name)
        secret = self.secrets[name]
        secret.deleted_at = None
        secret.recovered_at = self.clock.now()
        return FakeResponse(200, self._bundle(name, secret, with_value=False))
