"""Signing keys persist, rotate, and stay published for the grace period."""

from __future__ import annotations

import base64
import ssl
import time
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tenantops.emulator.directory import API_CLIENT_ID, default_directory
from tenantops.emulator.keys import KeyStore
from tenantops.emulator.server import EmulatorServer
from tenantops.errors import EmulatorError
from tests.emulator.helpers import claims_of


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_keys_persist_across_instances(tmp_path: Path) -> None:
    first = KeyStore(tmp_path).active()
    second = KeyStore(tmp_path).active()
    assert first.kid == second.kid
    assert (tmp_path / f"{first.kid}.pem").stat().st_mode & 0o077 == 0


def test_rotated_out_key_stays_published_for_grace_period_then_goes(tmp_path: Path) -> None:
    clock = FakeClock()
    store = KeyStore(tmp_path, grace_seconds=3600, clock=clock)
    old = store.active()
    new = store.rotate()
    assert store.active().kid == new.kid != old.kid
    assert {k.kid for k in store.published()} == {old.kid, new.kid}
    clock.now += 3601
    assert {k.kid for k in store.published()} == {new.kid}
    newest = store.rotate()
    assert not (tmp_path / f"{old.kid}.pem").exists()
    assert {k.kid for k in store.published()} == {new.kid, newest.kid}


def test_running_emulator_picks_up_rotation_done_by_another_process(tmp_path: Path) -> None:
    server = EmulatorServer(default_directory(), tmp_path)
    with server as info:
        context = ssl.create_default_context(cafile=info.ca_bundle)
        before = server.state.keys.active().kid
        time.sleep(0.05)
        # What `tenantops emulator rotate-keys` does: a separate KeyStore on the same folder.
        rotated = KeyStore(tmp_path / "emulator" / "keys").rotate().kid
        time.sleep(1.1)  # the running store re-reads the manifest at most once a second
        keys = httpx.get(f"{info.authority}/{info.tenant_id}/discovery/v2.0/keys",
                         verify=context).json()["keys"]
        assert {k["kid"] for k in keys} == {before, rotated}
        token = httpx.get(f"{info.mi_url}/msi/token", params={
            "resource": API_CLIENT_ID, "api-version": "2019-08-01"},
            headers={"X-IDENTITY-HEADER": server.state.host_secret("aa-onboarding")}).json()
        header = token["access_token"].split(".")[0]
        assert rotated in httpx.Response(200, content=_b64(header)).text
        assert claims_of(token["access_token"])["aud"] == API_CLIENT_ID


def _b64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def test_a_signing_key_of_another_kind_is_refused_with_what_to_do(tmp_path: Path) -> None:
    kid = KeyStore(tmp_path).active().kid
    other = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / f"{kid}.pem").write_bytes(other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    with pytest.raises(EmulatorError) as caught:
        KeyStore(tmp_path).active()
    message = str(caught.value)
    assert f"{tmp_path / (kid + '.pem')} does not hold an RSA private key" in message
    assert f"remove {tmp_path} to start with new keys" in message
    assert "BEGIN" not in message, "the key itself is never shown"
