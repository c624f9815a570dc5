"""The audit trail is append-only in code and in the database, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError
from sqlalchemy.orm import Session

from tenantops.catalog import AuditEntry, Catalog
from tenantops.catalog.models import AuditRow
from tenantops.errors import CatalogError

pytestmark = pytest.mark.integration  # PostgreSQL


def entry(**changes: object) -> AuditEntry:
    values: dict[str, object] = {
        "request_id": "a" * 32, "channel": "api", "action": "tenant.onboard", "method": "POST",
        "route": "/api/tenants", "outcome": "succeeded", "status_code": 202, "tenant": "acme"}
    values.update(changes)
    return AuditEntry(**values)  # type: ignore[arg-type]


def test_appended_records_come_back_newest_first_with_their_filters(catalog: Catalog) -> None:
    first = catalog.audit.append(entry())
    second = catalog.audit.append(entry(tenant="globex", outcome="refused", status_code=403,
                                        principal_oid="oid-1", reason="insufficient_scope"))
    assert second.id > first.id
    assert second.recorded_at >= first.recorded_at
    records, total = catalog.audit.page()
    assert [r.id for r in records] == [second.id, first.id]
    assert total == 2
    assert catalog.audit.page(principal="oid-1")[0] == [second]
    assert catalog.audit.page(outcome="succeeded")[0] == [first]
    later = second.recorded_at + dt.timedelta(seconds=1)
    assert catalog.audit.page(since=later) == ([], 0)
    assert catalog.audit.page(until=later)[1] == 2


def test_an_over_long_value_is_shortened_not_lost(catalog: Catalog) -> None:
    record = catalog.audit.append(entry(principal_name="x" * 1000))
    assert record.principal_name is not None
    assert len(record.principal_name) == 256


@pytest.mark.parametrize("statement", [
    "UPDATE audit_records SET outcome = 'succeeded'",
    "DELETE FROM audit_records",
])
def test_rewriting_history_with_sql_is_refused_by_the_database(
        catalog: Catalog, statement: str) -> None:
    catalog.audit.append(entry(outcome="refused", status_code=401))
    with pytest.raises(DatabaseError, match="append-only"), catalog.engine.begin() as connection:
        connection.execute(text(statement))
    [record], _ = catalog.audit.page()
    assert record.outcome == "refused"


def test_truncating_the_trail_is_refused_on_postgresql(catalog: Catalog) -> None:
    if catalog.dialect != "postgresql":
        assert catalog.dialect == "sqlite"  # SQLite has no TRUNCATE; DELETE is refused above
        return
    catalog.audit.append(entry())
    with pytest.raises(DatabaseError, match="append-only"), catalog.engine.begin() as connection:
        connection.execute(text("TRUNCATE audit_records"))
    assert catalog.audit.page()[1] == 1


@pytest.mark.parametrize("change", ["update", "delete"])
def test_changing_a_record_through_the_orm_is_refused_in_code(
        catalog: Catalog, change: str) -> None:
    appended = catalog.audit.append(entry())
    with Session(catalog.engine) as session:
        row = session.get(AuditRow, appended.id)
        assert row is not None
        if change == "update":
            row.outcome = "failed"
        else:
            session.delete(row)
        with pytest.raises(CatalogError, match="append-only"):
            session.flush()
    assert catalog.audit.page()[0] == [appended]


def test_the_store_offers_no_way_to_change_or_remove_a_record(catalog: Catalog) -> None:
    public = {name for name in dir(catalog.audit) if not name.startswith("_")}
    assert public == {"append", "last_id", "page"}, "reads and one append, nothing else"


def test_the_newest_record_is_known_without_reading_the_trail(catalog: Catalog) -> None:
    assert catalog.audit.last_id() == 0
    first = catalog.audit.append(entry())
    assert catalog.audit.last_id() == first.id
    second = catalog.audit.append(entry())
    assert catalog.audit.last_id() == second.id > first.id
