"""Replays of real Azure: the recorded sessions of the Azure SDK's own live tests
(``Azure/azure-sdk-assets``), trimmed into ``tests/azure_fake/recordings/``.

- The fake, sent the recorded requests in order, answers with the recorded statuses, the
  meaningful headers and the same body fields (so its asynchronous delete and recovery, 404
  then 200, are Azure's).
- The recorded responses, served in order by a replay transport, drive the ``key-vault``
  provider through ensure, observe and remove (with the purge waiting for the deletion).

Only Key Vault secrets have recordings among the operations tenantops uses; the others rest
on their specifications (docs/azure.md lists which)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from azure.core.pipeline.transport import HttpTransport
from azure.core.rest import HttpRequest

from tenantops.config import KeyVaultSecretsSettings
from tenantops.provisioning.providers.azure import AzureConnection
from tenantops.provisioning.providers.base import Pending, Ready
from tenantops.provisioning.providers.secrets import Secret
from tenantops.provisioning.providers.secrets.azure_key_vault import KeyVaultSecrets
from tests.azure_fake import SUBSCRIPTION, FakeAzure, FakeResponse
from tests.azure_fake._transport import build_response, parse_request

RECORDING = Path(__file__).parents[1] / "azure_fake" / "recordings" / \
    "keyvault_secrets_recover.json"


def entries(vault: str, name: str) -> list[dict[str, Any]]:
    text = RECORDING.read_text().replace("{vault}", vault).replace("{name}", name)
    found: list[dict[str, Any]] = json.loads(text)["entries"]
    return found


def test_the_recording_names_its_source() -> None:
    source = json.loads(RECORDING.read_text())["source"]

    assert source["repository"] == "Azure/azure-sdk-assets"
    assert source["path"].startswith("python/sdk/keyvault/azure-keyvault-secrets/tests/")
    assert len(source["commit"]) == 40


def test_the_fake_answers_the_recorded_session_as_key_vault_did() -> None:
    fake = FakeAzure()
    vault = fake.key_vault
    fake.authorization.grant(vault.resource_id, "Key Vault Secrets Officer")
    name = "recorded-secret"
    token = fake.credential().get_token("https://vault.azure.net/.default").token
    seen: list[tuple[int, set[str], dict[str, str]]] = []
    previous: tuple[str, str] | None = None

    for entry in entries(vault.host, name):
        if previous == (entry["method"], entry["path"]):
            vault.clock.advance(max(vault.delete_seconds, vault.recover_seconds))
        previous = (entry["method"], entry["path"])
        headers = {} if entry["status"] == 401 else {"Authorization": f"Bearer {token}"}
        response = fake.send(HttpRequest(entry["method"], f"{vault.url}{entry['path']}",
                                         params={"api-version": "2026-04-01"},
                                         json=entry.get("request"), headers=headers))
        body = response.json() if response.text() else {}
        seen.append((response.status_code, set(body), dict(response.headers)))

    expected = [(e["status"], set(e["body"])) for e in entries(vault.host, name)]
    assert [(status, keys - {"tags"}) for status, keys, _ in seen] == expected
    assert seen[0][2]["WWW-Authenticate"].endswith('resource="https://vault.azure.net"')


class ReplayTransport(HttpTransport):  # type: ignore[type-arg]
    """Answers each request with the next scripted response for its method and path."""

    def __init__(self, vault: str) -> None:
        self.host = vault
        self.script: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.sent: list[tuple[str, str]] = []

    def serve(self, *answers: dict[str, Any]) -> None:
        for answer in answers:
            self.script.setdefault((answer["method"], answer["path"].rstrip("/")), []).append(
                answer)

    def send(self, request: Any, **kwargs: Any) -> Any:
        incoming = parse_request(request)
        key = (incoming.method, incoming.path.rstrip("/"))
        self.sent.append(key)
        queue = self.script.get(key)
        assert queue, f"the provider sent {key}, which the replay has no answer for"
        answer = queue.pop(0)
        if answer["status"] == 401 and incoming.header("authorization"):
            answer = queue.pop(0)
        return build_response(request, FakeResponse(answer["status"], answer.get("body"),
                                                    dict(answer.get("headers", {}))))

    def open(self) -> None:
        return None

    def close(self) -> None:
        return None

    def __enter__(self) -> ReplayTransport:
        return self

    def __exit__(self, *args: object) -> None:
        return None

    def sleep(self, duration: float) -> None:
        return None


def test_the_recorded_answers_drive_the_provider_through_ensure_observe_and_remove() -> None:
    vault = f"kv-replay-{uuid.uuid4().hex[:8]}.vault.azure.net"  # no cached challenge
    name = "acme-database-password"
    put_401, put_200, delete, deleted_404, deleted_200, _, get_404, get_200 = \
        entries(vault, name)
    replay = ReplayTransport(vault)
    credential = FakeAzure().credential()
    secrets = KeyVaultSecrets(
        AzureConnection(credential, SUBSCRIPTION, transport=replay),
        KeyVaultSecretsSettings(vault_url=f"https://{vault}", purge_on_delete=True))
    secret = Secret(name)

    replay.serve(get_404, put_401, put_200)
    created = secrets.ensure(secret)
    replay.serve(get_200)
    observed = secrets.observe(secret)
    replay.serve(get_200, delete, deleted_404)
    deleting = secrets.remove(secret)
    purge = {"method": "DELETE", "path": f"/deletedsecrets/{name}", "status": 204}
    replay.serve(get_404, deleted_200, purge)  # 204: the specification (no recording purges)
    removed = secrets.remove(secret)

    assert isinstance(created, Ready)
    assert created.changed
    assert observed == {"name": name}
    assert isinstance(deleting, Pending)
    assert "completing the deletion" in deleting.reason
    assert isinstance(removed, Ready)
    assert removed.outputs["purged"] is True
    assert all(not queue for queue in replay.script.values()), replay.script
