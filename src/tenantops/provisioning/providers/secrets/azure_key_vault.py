"""``key-vault``: tenant secrets in an Azure Key Vault, through azure-keyvault-secrets.

- `ensure` generates the value once: a secret that exists is left as it is; one that was
  deleted but is still recoverable (soft delete, on for every vault) is recovered rather than
  replaced, since setting a secret of that name fails with 409 ``ObjectIsDeletedButRecoverable``
  until then. Key Vault has no create-if-absent, so two runs racing on one name could each
  write a version; the engine runs one run per tenant at a time, which rules that out.
- `remove` deletes the secret (soft delete) and, with ``purge_on_delete``, purges it; gone
  already is success.
- `read` returns the latest value. Values never appear in outputs, logs or messages.

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
from tenantops.provisioning.providers.base import Outcome, Ready, Resource
from tenantops.provisioning.providers.secrets import Secret, SecretsProvider

__all__ = ["KeyVaultSecrets"]


class KeyVaultSecrets(SecretsProvider):
    """Secrets in the vault at ``settings.vault_url``."""

    name = "key-vault"

    def __init__(self, connection: AzureConnection, settings: KeyVaultSecretsSettings) -> None:
        super().__init__()
        if not settings.vault_url or not settings.vault_url.startswith("https://"):
            raise ConfigError(
                "providers.secrets.key_vault.vault_url must be the vault's https URL, such as "
                "https://<vault>.vault.azure.net")
        self.connection = connection
        self.settings = settings
        self.vault_url = settings.vault_url.rstrip("/")
        self._client: SecretClient | None = None

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

    def _ensure(self, resource: Resource) -> Outcome:
        assert isinstance(resource, Secret)
        outputs = {"secret": resource.name, "vault": self.vault_url}
        existing = azure_get(f"read secret {resource.name} in {self.vault_url}",
                             lambda: self.client.get_secret(resource.name))
        if existing is not None:
            return Ready(outputs, changed=False)
        try:
            self.client.set_secret(resource.name, secrets.token_urlsafe(32),
                                   content_type="tenantops-generated")
        except HttpResponseError as exc:
            code, _ = arm_error_parts(exc)
            if exc.status_code == 409 and "ObjectIsDeletedButRecoverable" in code:
                azure_call(f"recover deleted secret {resource.name} in {self.vault_url}",
                           lambda: self.client.begin_recover_deleted_secret(
                               resource.name).wait())
                return Ready({**outputs, "recovered": True}, changed=True)
            raise translate_azure_error(
                exc, doing=f"store secret {resource.name} in {self.vault_url}") from exc
        except Exception as exc:
            raise translate_azure_error(
                exc, doing=f"store secret {resource.name} in {self.vault_url}") from exc
        return Ready(outputs, changed=True)

    def _remove(self, resource: Resource) -> Outcome:
        assert isinstance(resource, Secret)
        outputs = {"secret": resource.name, "vault": self.vault_url}
        existing = azure_get(f"read secret {resource.name} in {self.vault_url}",
                             lambda: self.client.get_secret(resource.name))
        changed = existing is not None
        if existing is not None:
            azure_call(f"delete secret {resource.name} in {self.vault_url}",
                       lambda: self.client.begin_delete_secret(resource.name).wait())
        if self.settings.purge_on_delete:
            deleted = azure_get(f"read deleted secret {resource.name}",
                                lambda: self.client.get_deleted_secret(resource.name))
            if deleted is not None:
                azure_call(f"purge deleted secret {resource.name} in {self.vault_url}",
                           lambda: self.client.purge_deleted_secret(resource.name))
                changed = True
        return Ready(outputs, changed=changed)

    def _observe(self, resource: Resource) -> dict[str, Any] | None:
        assert isinstance(resource, Secret)
        existing = azure_get(f"read secret {resource.name} in {self.vault_url}",
                             lambda: self.client.get_secret(resource.name))
        return None if existing is None else {"name": resource.name}

    def read(self, name: str) -> str:
        found = azure_get(f"read secret {name} in {self.vault_url}",
                          lambda: self.client.get_secret(name))
        if found is None or not found.value:
            raise PermanentProviderError(
                f"secret {name!r} does not exist in {self.vault_url}; run the step that stores "
                "it first", provider=self.label, action="read", resource=f"secret:{name}")
        return str(found.value)
