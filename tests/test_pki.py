"""The local CA: a leaf left truncated by a killed writer is issued anew, not fatal."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tenantops.errors import ConfigError
from tenantops.pki import LocalCA


def test_a_truncated_leaf_certificate_is_issued_again(tmp_path: Path) -> None:
    ca = LocalCA(tmp_path / "ca")
    first = ca.issue(["app.acme.test"], tmp_path / "certs", "app.acme.test")
    reused = ca.issue(["app.acme.test"], tmp_path / "certs", "app.acme.test")
    assert reused.certificate == first.certificate

    # What a worker killed mid-write used to leave behind:
    first.cert_path.write_bytes(first.cert_path.read_bytes()[:100])
    again = ca.issue(["app.acme.test"], tmp_path / "certs", "app.acme.test")

    assert again.certificate != first.certificate
    assert x509.load_pem_x509_certificate(again.cert_path.read_bytes()) == again.certificate


def test_files_are_written_whole_with_their_modes_and_no_leftovers(tmp_path: Path) -> None:
    ca = LocalCA(tmp_path / "ca")
    leaf = ca.issue(["app.acme.test"], tmp_path / "certs", "app.acme.test")
    assert stat.S_IMODE(leaf.key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "ca" / "ca.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(leaf.cert_path.stat().st_mode) == 0o644
    leftovers = [p.name for p in tmp_path.rglob(".*.tmp")]
    assert leftovers == []


def test_a_ca_key_of_another_kind_is_refused_with_what_to_do(tmp_path: Path) -> None:


    folder = tmp_path / "ca"
    LocalCA(folder).issue(["app.acme.test"], tmp_path / "certs", "app.acme.test")
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (folder / "ca.key").write_bytes(other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    with pytest.raises(ConfigError) as caught:
        LocalCA(folder).issue(["other.acme.test"], tmp_path / "certs", "other.acme.test")
    message = str(caught.value)
    assert f"{folder / 'ca.key'} does not hold the elliptic-curve key of the local CA" in message
    assert f"remove {folder} to make a new CA" in message
    assert "BEGIN" not in message, "the key itself is never shown"
