from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from tenantops.catalog import Catalog
from tenantops.catalog.models import SEARCH_OBJECTS, Base


def test_construction_does_no_io(tmp_path: Path) -> None:
    Catalog(f"sqlite:///{tmp_path / 'deep' / 'catalog.sqlite'}")
    assert not (tmp_path / "deep").exists()


def test_migrations_build_exactly_the_models(catalog: Catalog) -> None:
    with catalog.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={
            "include_name": lambda name, kind, parent: name not in SEARCH_OBJECTS})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_migrating_twice_changes_nothing(catalog: Catalog) -> None:
    before = sorted(inspect(catalog.engine).get_table_names())
    catalog.migrate()
    assert sorted(inspect(catalog.engine).get_table_names()) == before
    assert {"tenants", "runs", "steps", "organizations", "organization_domains",
            "organization_members", "organization_invitations"} <= set(before)


def test_unsupported_url_names_the_setting(tmp_path: Path) -> None:
    import pytest

    from tenantops.errors import CatalogError

    with pytest.raises(CatalogError, match=r"catalog\.url"):
        Catalog("mysql://root@localhost/tenants").migrate()
