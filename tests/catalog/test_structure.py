"""The catalog keeps one module per aggregate behind the `Catalog` facade, and its
production code guards invariants with errors, not ``assert`` (gone under ``python -O``)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import tenantops.catalog
from tenantops.catalog import (
    AuditStore,
    BudgetStore,
    Catalog,
    EventStore,
    IdempotencyStore,
    OrganizationStore,
    RunStore,
    StepStore,
    TenantStore,
    WorkerStore,
)

CATALOG_DIR = Path(tenantops.catalog.__file__).parent


@pytest.mark.parametrize("path", sorted(CATALOG_DIR.rglob("*.py")), ids=lambda p: p.name)
def test_catalog_code_has_no_assert_statements(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    asserts = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Assert)]
    assert asserts == [], f"{path.name} guards invariants with assert on lines {asserts}"


def test_each_aggregate_has_its_own_store_reachable_from_the_facade(tmp_path: Path) -> None:
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    stores = {
        "tenants": TenantStore, "runs": RunStore, "steps": StepStore,
        "worker_registry": WorkerStore, "idempotency_keys": IdempotencyStore,
        "budgets": BudgetStore, "organizations": OrganizationStore, "events": EventStore,
        "audit": AuditStore,
    }
    for attribute, store in stores.items():
        assert isinstance(getattr(catalog, attribute), store), attribute
    assert not (tmp_path / "catalog.sqlite").exists(), "constructing the facade did I/O"


def test_the_facade_holds_no_sql_of_its_own() -> None:
    source = (CATALOG_DIR / "repository.py").read_text(encoding="utf-8")
    for construct in ("select(", "update(", "delete(", "insert("):
        assert construct not in source, f"repository.py builds {construct}...) itself"
