"""The local CA: a leaf left truncated by a killed writer is issued anew, not fatal."""

from __future__ import annotations

import stat
from pathlib import Path

from cryptography import x509

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
