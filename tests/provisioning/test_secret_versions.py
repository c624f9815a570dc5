"""A rotation's new secret value in the ``local`` secrets provider: made once per rotation
(a replayed step keeps it), swapped in whole (a reader never sees a partial file), private
(0600), never in outputs; a bad version is refused naming the rule."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tenantops.errors import PermanentProviderError
from tenantops.provisioning.providers.base import Ready
from tenantops.provisioning.providers.secrets import Secret, SecretVersion
from tenantops.provisioning.providers.secrets.local import LocalSecrets


def test_a_rotation_replaces_the_value_once_and_keeps_it_private(tmp_path: Path) -> None:
    provider = LocalSecrets(tmp_path / "secrets")
    provider.ensure(Secret("acme-database-password-b"))
    before = provider.read("acme-database-password-b")

    rotated = provider.ensure(SecretVersion("acme-database-password-b", "fleet:f1/1"))
    after = provider.read("acme-database-password-b")
    replayed = provider.ensure(SecretVersion("acme-database-password-b", "fleet:f1/1"))

    assert isinstance(rotated, Ready)
    assert rotated.changed
    assert isinstance(replayed, Ready)
    assert not replayed.changed
    assert after != before
    assert provider.read("acme-database-password-b") == after
    assert after not in repr(rotated.outputs)
    mode = stat.S_IMODE((tmp_path / "secrets" / "acme-database-password-b").stat().st_mode)
    assert mode == 0o600
    assert sorted(p.name for p in (tmp_path / "secrets").iterdir()) == [
        "acme-database-password-b", "acme-database-password-b.version"]
    provider.ensure(SecretVersion("acme-database-password-b", "fleet:f2/1"))
    assert provider.read("acme-database-password-b") not in (before, after)


def test_a_version_with_path_or_shell_characters_is_refused() -> None:
    with pytest.raises(PermanentProviderError, match="must be 1 to 100 of"):
        SecretVersion("acme-database-password", "../../etc/passwd; rm")
    with pytest.raises(PermanentProviderError, match="secret name"):
        SecretVersion("../acme", "v1")
