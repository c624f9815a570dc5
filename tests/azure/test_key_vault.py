"""The ``key-vault`` secrets provider against the Key Vault fake: generate once, read,
soft delete and recovery, purge, and values that never leak into outputs."""

from __future__ import annotations

import pytest

from tenantops.config import KeyVaultSecretsSettings
from tenantops.errors import PermanentProviderError
from tenantops.provisioning.providers.azure import AzureConnection
from tenantops.provisioning.providers.base import Pending, Ready
from tenantops.provisioning.providers.secrets import Secret, SecretVersion
from tenantops.provisioning.providers.secrets.azure_key_vault import KeyVaultSecrets
from tests.azure.conftest import AzureWorld, build_world, settle
from tests.azure_fake import SUBSCRIPTION, FakeAzure, FakeKeyVault

SECRET = Secret("acme-database-password")


def test_secret_is_generated_once_and_read_back(world: AzureWorld) -> None:
    first = world.secrets.ensure(SECRET)
    value = world.secrets.read(SECRET.name)
    again = world.secrets.ensure(SECRET)

    assert isinstance(first, Ready)
    assert first.changed
    assert isinstance(again, Ready)
    assert not again.changed
    assert len(value) >= 40
    assert world.secrets.read(SECRET.name) == value
    assert value not in repr(first.outputs)
    assert value not in repr(again.outputs)
    assert "https://vault.azure.net/.default" in world.credential.scopes
    (put,) = world.fake.calls("PUT", "/secrets/")
    assert put.api_version == "2026-04-01"
    assert put.body["contentType"] == "tenantops-generated"


def test_removed_secret_is_soft_deleted_and_recovered_by_the_next_ensure(
    world: AzureWorld,
) -> None:
    world.secrets.ensure(SECRET)
    value = world.secrets.read(SECRET.name)

    removed = world.secrets.remove(SECRET)
    again = world.secrets.remove(SECRET)
    world.fake.clock.advance(world.fake.key_vault.delete_seconds)
    recovered, calls = settle(world.secrets, "ensure", SECRET, world.fake)

    assert isinstance(removed, Ready)
    assert removed.changed
    assert isinstance(again, Ready)
    assert not again.changed
    assert recovered.outputs["recovered"] is True
    assert calls >= 2, "the recovery completes asynchronously, so the step waits for it"
    assert world.secrets.read(SECRET.name) == value
    assert len(world.fake.calls("POST", "/recover")) == 1


def test_onboarding_again_while_the_deletion_runs_waits_and_says_why(
    world: AzureWorld,
) -> None:
    world.secrets.ensure(SECRET)
    value = world.secrets.read(SECRET.name)
    world.secrets.remove(SECRET)

    waiting = world.secrets.ensure(SECRET)

    assert isinstance(waiting, Pending)
    assert "Key Vault is still deleting secret acme-database-password" in waiting.reason
    assert "waiting until the name can be recovered or reused" in waiting.reason
    recovered, _ = settle(world.secrets, "ensure", SECRET, world.fake)
    assert recovered.outputs["recovered"] is True
    assert world.secrets.read(SECRET.name) == value


def test_purge_on_delete_waits_for_the_deletion_then_purges(world: AzureWorld) -> None:
    secrets = KeyVaultSecrets(world.connection, KeyVaultSecretsSettings(
        vault_url=world.fake.key_vault.url, purge_on_delete=True))
    secrets.ensure(SECRET)
    old = secrets.read(SECRET.name)

    first = secrets.remove(SECRET)
    removed, _ = settle(secrets, "remove", SECRET, world.fake)
    created, _ = settle(secrets, "ensure", SECRET, world.fake)

    assert isinstance(first, Pending)
    assert "completing the deletion" in first.reason
    assert removed.outputs["purged"] is True
    assert "recovered" not in created.outputs
    assert secrets.read(SECRET.name) != old
    assert len(world.fake.calls("DELETE", "/deletedsecrets/")) == 1


def test_purge_protection_refuses_the_purge_and_offboarding_still_succeeds() -> None:
    world = build_world(FakeAzure(purge_protection=True))
    secrets = KeyVaultSecrets(world.connection, KeyVaultSecretsSettings(
        vault_url=world.fake.key_vault.url, purge_on_delete=True))
    secrets.ensure(SECRET)
    value = secrets.read(SECRET.name)

    removed, _ = settle(secrets, "remove", SECRET, world.fake)
    recovered, _ = settle(secrets, "ensure", SECRET, world.fake)

    assert "the vault has purge protection, so Key Vault keeps secret acme-database-password " \
           "soft-deleted until" in removed.outputs["purge_refused"]
    assert "onboarding this tenant again before that recovers it" in \
           removed.outputs["purge_refused"]
    assert recovered.outputs["recovered"] is True
    assert secrets.read(SECRET.name) == value


def test_reading_a_missing_secret_names_it_and_the_vault(world: AzureWorld) -> None:
    with pytest.raises(PermanentProviderError) as caught:
        world.secrets.read("nope")

    assert f"secret 'nope' does not exist in {world.fake.key_vault.url}" in str(caught.value)


def test_requests_without_a_token_get_the_key_vault_challenge(world: AzureWorld) -> None:
    # azure-keyvault caches a vault's challenge per process: use a vault no test used before.
    vault = FakeKeyVault("kv-challenge-test")
    secrets = KeyVaultSecrets(
        AzureConnection(world.credential, SUBSCRIPTION, transport=vault),
        KeyVaultSecretsSettings(vault_url=vault.url))

    secrets.ensure(SECRET)

    assert [r.authenticated for r in vault.requests] == [False, True, True]
    assert vault.requests[0].path == vault.requests[1].path


def test_a_rotation_makes_one_new_version_per_rotation_and_never_shows_it(
        world: AzureWorld) -> None:
    world.secrets.ensure(SECRET)
    before = world.secrets.read(SECRET.name)
    rotation = SecretVersion(SECRET.name, "fleet:f1/1")

    rotated = world.secrets.ensure(rotation)
    after = world.secrets.read(SECRET.name)
    replayed = world.secrets.ensure(rotation)
    again = world.secrets.ensure(SecretVersion(SECRET.name, "fleet:f2/1"))

    assert isinstance(rotated, Ready)
    assert rotated.changed
    assert isinstance(replayed, Ready)
    assert not replayed.changed  # a replayed step does not rotate twice
    assert isinstance(again, Ready)
    assert again.changed
    assert after != before
    assert world.secrets.read(SECRET.name) not in (before, after)
    assert after not in repr(rotated.outputs)
    puts = world.fake.calls("PUT", "/secrets/")
    assert [p.body["contentType"] for p in puts] == [
        "tenantops-generated", "tenantops-generated; version=fleet:f1/1",
        "tenantops-generated; version=fleet:f2/1"]
    assert len(world.fake.key_vault.secrets[SECRET.name].versions) == 3  # Key Vault keeps all
