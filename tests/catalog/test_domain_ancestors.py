"""The domain claim reads parent domains from an index (``domain_ancestors``), not every
tenant: kept up to date when a tenant is onboarded again with another domain, filled for the
tenants that existed before the table, and planned as index lookups."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import event, insert

from tenantops.catalog import Catalog
from tenantops.catalog.domain_claims import domain_ancestors
from tenantops.catalog.models import TenantRow
from tenantops.errors import DomainConflictError

from .test_domain_claims import open_tenant

MIGRATIONS = Path(__file__).parents[2] / "src" / "tenantops" / "catalog" / "migrations"


def test_ancestors_are_the_parent_domains_nearest_first() -> None:
    assert domain_ancestors("Portal.Contoso.com.") == ["contoso.com", "com"]
    assert domain_ancestors("localhost") == []


def test_a_tenant_onboarded_again_with_another_domain_frees_the_old_one(
        catalog: Catalog) -> None:
    first = open_tenant(catalog, "incumbent", "portal.shared.test").run
    catalog.finish_run(first.id, "succeeded")
    catalog.set_tenant_status("incumbent", "offboarded")
    assert open_tenant(catalog, "incumbent", "shop.other.test").created
    assert open_tenant(catalog, "second", "x.portal.shared.test").created
    with pytest.raises(DomainConflictError) as caught:
        open_tenant(catalog, "third", "x.shop.other.test")
    assert (caught.value.relation, caught.value.holder) == ("below", "incumbent")


def test_tenants_registered_before_the_index_are_found_below_and_above(
        tmp_path: Path) -> None:
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    try:
        with catalog.engine.connect() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0006")
            connection.execute(insert(TenantRow), [{
                "id": "a" * 32, "slug": "incumbent", "display_name": "Incumbent",
                "custom_domain": "portal.shared.test", "plan": "standard",
                "admin_email": "a@shared.test", "tags": {}, "status": "active",
                "created_at": _now(), "updated_at": _now(), "dns_records": {}}])
            connection.commit()
        catalog.migrate()
        for claimed, relation in (("x.portal.shared.test", "below"),
                                  ("shared.test", "above")):
            with pytest.raises(DomainConflictError) as caught:
                open_tenant(catalog, "second", claimed)
            assert (caught.value.relation, caught.value.holder) == (relation, "incumbent")
    finally:
        catalog.close()


def test_the_claim_reads_no_table_whole_on_sqlite(tmp_path: Path) -> None:
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    catalog.migrate()
    open_tenant(catalog, "incumbent", "portal.shared.test")
    statements: list[tuple[str, Any]] = []

    def remember(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "custom_domain" in statement and statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    event.listen(catalog.engine, "before_cursor_execute", remember)
    try:
        open_tenant(catalog, "second", "shop.shared.test")
    finally:
        event.remove(catalog.engine, "before_cursor_execute", remember)
    claim = [(s, p) for s, p in statements if "slug !=" in s]
    assert len(claim) == 2
    with catalog.engine.connect() as connection:
        plans = [" / ".join(str(row[-1]) for row in connection.exec_driver_sql(
            f"EXPLAIN QUERY PLAN {statement}", tuple(parameters)))
            for statement, parameters in claim]
    catalog.close()
    assert all("SCAN" not in plan for plan in plans), plans
    assert "uq_tenants_live_custom_domain" in plans[0]
    assert "ix_domain_ancestors_ancestor" in plans[1]


def _now() -> Any:
    import datetime as dt

    return dt.datetime.now(dt.timezone.utc)
