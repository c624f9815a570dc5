"""``key-vault``: tenant secrets in an Azure Key Vault, through azure-keyvault-secrets.

Key Vault deletes, recovers and purges **asynchronously** (the recorded sessions of the SDK's
own tests show ``GET /deletedsecrets`` answering 404 right after the delete, and ``GET
/secrets`` 404 right after the recover; see docs/azure.md). No worker thread waits for that:

- `ensure` generates the value once: a secret that exists is left as it is. One that an
  earlier offboarding deleted is recovered rather than replaced (setting a secret of that
  name fails with 409 ``ObjectIsDeletedButRecoverable`` until then), and the step is
  `Pending` until the recovered secret is readable, so its old value is kept. While Key Vault
  is still deleting or purging the name (409 ``ObjectIsBeingDeleted``) the step is `Pending`
  and says so. Key Vault has no create-if-absent, so two runs racing on one name could each
  write a version; the engine runs one run per tenant at a time, which rules that out.
- `remove` deletes the secret (soft delete) and returns; with ``purge_on_delete`` it is
  `Pending` until the deletion is complete, then purges. A vault with purge protection
  refuses the purge (403): the secret then stays soft-deleted until its scheduled purge date
  and the step succeeds, saying so in its outputs (``purge_refused``); a later onboarding of
  the same tenant recovers it.
- `read` returns the latest value. Values never appear in outputs, logs or messages.
- A `ConnectionSecret` (the tenant app's connection, switched by a move) is written when
  its value differs from the latest version: a new version, the old ones kept by Key Vault.

What is in progress (a recovery, a deletion awaiting its purge) is remembered in the process
only: after a restart the next call reads the vault again and carries on, except that a purge
pending at the restart is not retried (the secret stays recoverable).

The identity needs the "Key Vault Secrets Officer" role on the vault (RBAC vaults).
"""

from __future__ import annotations

import secrets
from typing import Any

from azure.core.exceptions import HttpResponseError
from azure.keyvault.secrets import SecretClient

from tenantops.config import KeyVaultSecretsSettings, Settings
from tenantops.errors import ConfigError, PermanentProviderError
from tenantops.provisioning.providers.azure.calls import azure_call, azure_get
from tenantops.provisioning.providers.azure.connection import AzureConnection
from tenantops.provisioning.providers.azure.errors import arm_error_parts, translate_azure_error
from tenantops.provisioning.providers.base import Outcome, Pending, Ready, Resource
from tenantops.provisioning.providers.secrets import (
    ConnectionSecret,
    Secret,
    SecretsProvider,
    SecretVersion,
)

__all__ = ["KeyVaultSecrets"]


class KeyVaultSecrets(SecretsProvider):
    """Secrets in the vault at ``settings.vault_url``; ``poll_seconds`` is how long a `Pending`
    step waits for Key Vault to finish a deletion, recovery or purge."""

    name = "key-vault"

    def __init__(self, connection: AzureConnection, settings: KeyVaultSecretsSettings, *,
                 poll_seconds: float = 5.0) -> None:
        super().__init__()
        if not settings.vault_url or not settings.vault_url.startswith("https://"):
            raise ConfigError(
                "providers.secrets.key_vault.vault_url must be the vault's https URL, such as "
                "https://<vault>.vault.azure.net")
        self.connection = connection
        self.settings = settings
        self.vault_url = settings.vault_url.rstrip("/")
        self.poll_seconds = poll_seconds
        self._client: SecretClient | None = None
        self._recovering: set[str] = set()
        self._deleting: set[str] = set()

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyVaultSecrets:
        return cls(AzureConnection.from_settings(settings.azure),
                   settings.providers.secrets.key_vault)

    @property
    def client(self) -> SecretClient:
        if self._client is None:
            self._client = SecretClient(self.vault_url, self.connection.credential,
                                        **self.connection.client_options())
        return self._client

    def _current(self, name: str) -> Any:
        return azure_get(f"read secret {name} in {self.vault_url}",
                         lambda: self.client.get_secret(name))

    def _rotate(self, resource: SecretVersion) -> Outcome:
        """A new version of the secret (Key Vault keeps the earlier ones), its content type
        naming the rotation that made it, so a replayed step does not make another."""
        name = resource.name
        content_type = f"tenantops-generated; version={resource.version}"
        outputs = {"secret": name, "vault": self.vault_url, "version": resource.version}
        current = self._current(name)
        if current is not None and current.properties.content_type == content_type:
            return Ready(outputs, changed=False)
        azure_call(f"store a new version of secret {name} in {self.vault_url}",
                   lambda: self.client.set_secret(name, secrets.token_urlsafe(32),
                                                  content_type=content_type))
        return Ready(outputs, changed=True)

    def _ensure(self, resource: Resource) -> Outcome:
        if isinstance(resource, SecretVersion):
            return self._rotate(resource)
        if not isinstance(resource, (Secret, ConnectionSecret)):
            raise PermanentProviderError(f"not a secret: {resource.key}")
        name = resource.name
        outputs: dict[str, Any] = {"secret": name, "vault": self.vault_url}
        value: str | None = None
        if isinstance(resource, ConnectionSecret):
            value = self.connection_value(resource)
            outputs["location"] = resource.location
        current = self._current(name)
        if current is not None:
            if name in self._recovering:
                self._recovering.discard(name)
                if value is None or current.value == value:
                    return Ready({**outputs, "recovered": True}, changed=True)
            elif value is None or current.value == value:
                return Ready(outputs, changed=False)
        if name in self._recovering:
            return Pending(f"Key Vault is recovering secret {name} in {self.vault_url} (deleted "
                           "by an earlier offboarding); waiting until it is readable",
                           self.poll_seconds)
        doing = f"store secret {name} in {self.vault_url}"
        try:
            if value is None:
                self.client.set_secret(name, secrets.token_urlsafe(32),
                                       content_type="tenantops-generated")
            else:
                self.client.set_secret(name, value, content_type="tenantops-connection")
        except HttpResponseError as exc:
            code, _ = arm_error_parts(exc)
            if exc.status_code == 409 and "ObjectIsDeletedButRecoverable" in code:
                azure_call(f"recover deleted secret {name} in {self.vault_url}",
                           lambda: self.client.begin_recover_deleted_secret(name))
                self._recovering.add(name)
                return Pending(f"secret {name} was deleted by an earlier offboarding and is "
                               f"still recoverable in {self.vault_url}; recovering it (its "
                               "value is kept)", self.poll_seconds)
            if exc.status_code == 409 and "ObjectIsBeingDeleted" in code:
                return Pending(f"Key Vault is still deleting secret {name} in {self.vault_url} "
                               "(an offboarding of this tenant just removed it); waiting until "
                               "the name can be recovered or reused", self.poll_seconds)
            raise translate_azure_error(exc, doing=doing) from exc
        except Exception as exc:
            raise translate_azure_error(exc, doing=doing) from exc
        return Ready(outputs, changed=True)

    def _remove(self, resource: Resource) -> Outcome:
        if not isinstance(resource, (Secret, ConnectionSecret, SecretVersion)):
            raise PermanentProviderError(f"not a secret: {resource.key}")
        name = resource.name
        outputs: dict[str, Any] = {"secret": name, "vault": self.vault_url}
        self._recovering.discard(name)
        changed = False
        if self._current(name) is not None:
            azure_call(f"delete secret {name} in {self.vault_url}",
                       lambda: self.client.begin_delete_secret(name))
            self._deleting.add(name)
            changed = True
        if not self.settings.purge_on_delete:
            self._deleting.discard(name)
            return Ready(outputs, changed=changed)
        deleted = azure_get(f"read deleted secret {name} in {self.vault_url}",
                            lambda: self.client.get_deleted_secret(name))
        if deleted is None:
            if name in self._deleting:
                return Pending(f"Key Vault is completing the deletion of secret {name} in "
                               f"{self.vault_url}; it is purged once deleted", self.poll_seconds)
            return Ready(outputs, changed=changed)
        self._deleting.discard(name)
        try:
            self.client.purge_deleted_secret(name)
        except HttpResponseError as exc:
            _code, message = arm_error_parts(exc)
            if exc.status_code == 403 and "purge protection" in message.lower():
                when = deleted.scheduled_purge_date.isoformat() \
                    if deleted.scheduled_purge_date else "the end of its retention period"
                return Ready({**outputs, "purge_refused": (
                    f"the vault has purge protection, so Key Vault keeps secret {name} "
                    f"soft-deleted until {when} and purges it then; onboarding this tenant "
                    "again before that recovers it")}, changed=True)
            raise translate_azure_error(
                exc, doing=f"purge deleted secret {name} in {self.vault_url}") from exc
        except Exception as exc:
            raise translate_azure_error(
                exc, doing=f"purge deleted secret {name} in {self.vault_url}") from exc
        return Ready({**outputs, "purged": True}, changed=True)

    def _observe(self, resource: Resource) -> dict[str, Any] | None:
        if not isinstance(resource, (Secret, ConnectionSecret, SecretVersion)):
            raise PermanentProviderError(f"not a secret: {resource.key}")
        existing = self._current(resource.name)
        if existing is None:
            return None
        if isinstance(resource, ConnectionSecret):
            same = existing.value == self.connection_value(resource)
            return {"name": resource.name,
                    "location": resource.location if same else "<another>"}
        return {"name": resource.name}

    def read(self, name: str) -> str:
        found = self._current(name)
        if found is None or not found.value:
            raise PermanentProviderError(
                f"secret {name!r} does not exist in {self.vault_url}; run the step that stores "
                "it first", provider=self.label, action="read", resource=f"secret:{name}")
        return str(found.value)
