"""The public names of tenantops.provisioning and tenantops.catalog exist, and importing the
spec stays cheap (no DBOS, no SQLAlchemy)."""

from __future__ import annotations

import subprocess
import sys
from types import ModuleType

import pytest

import tenantops.catalog
import tenantops.provisioning
import tenantops.provisioning.providers


@pytest.mark.parametrize("module", [
    tenantops.provisioning, tenantops.catalog, tenantops.provisioning.providers,
])
def test_every_exported_name_resolves_and_the_list_is_sorted(module: ModuleType) -> None:
    names = list(module.__all__)
    assert names == sorted(names)
    for name in names:
        assert getattr(module, name) is not None, name


@pytest.mark.integration
def test_importing_the_spec_loads_neither_dbos_nor_sqlalchemy() -> None:
    code = ("import sys, tenantops.provisioning; "
            "print(sorted(m for m in ('dbos', 'sqlalchemy') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"
