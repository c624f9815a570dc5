"""The package's public surface is exactly its __all__."""

from __future__ import annotations

import types

import pytest

import tenantops.api
import tenantops.auth


@pytest.mark.parametrize("package", [tenantops.auth, tenantops.api], ids=lambda p: p.__name__)
def test_all_lists_exactly_the_public_names(package: types.ModuleType) -> None:
    public = {
        name for name, value in vars(package).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
        and name != "annotations"
    }

    assert set(package.__all__) == public
    assert sorted(package.__all__, key=lambda n: (not n.isupper(), n)) == list(package.__all__)
