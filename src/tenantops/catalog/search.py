"""Tenant search: part of a slug, display name or custom domain, case-insensitively, through
an index where the database has one (migration 0015).

- **SQLite**: an FTS5 table with the trigram tokenizer (``tenants_search``, external content,
  kept by triggers) answers a search of three characters or more; a shorter one reads every
  tenant (it matches a large part of them anyway).
- **PostgreSQL**: ``lower(slug || ' ' || display_name || ' ' || custom_domain) LIKE
  '%text%'``, which a pg_trgm GIN index answers when the extension could be created; without
  it the same expression reads every tenant.

The result is the same either way (a test compares them); only the time differs.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, literal, literal_column, select, text

from tenantops.catalog.models import TenantRow

__all__ = ["FTS_TABLE", "MIN_INDEXED", "has_fts", "like_pattern", "search_clause"]

FTS_TABLE = "tenants_search"
MIN_INDEXED = 3
"""The trigram tokenizer finds substrings of at least three characters."""


def like_pattern(search: str) -> str:
    """``%search%`` in lower case, with LIKE's wildcards escaped (``\\``)."""
    escaped = search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _searched() -> Any:
    columns = TenantRow.__table__.c
    return func.lower(columns.slug + literal(" ") + columns.display_name + literal(" ")
                      + columns.custom_domain)


def has_fts(connection: Connection) -> bool:
    """Whether this SQLite database has the tenant search table (migration 0015 made it
    unless this SQLite lacks FTS5)."""
    if connection.dialect.name != "sqlite":
        return False
    return connection.execute(
        text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :name"),
        {"name": FTS_TABLE}).first() is not None


def search_clause(search: str, *, fts: bool) -> Any:
    """A WHERE clause on ``tenants`` for rows whose slug, display name or custom domain
    contains ``search`` (any case). ``fts``: the SQLite database has the FTS5 table."""
    if fts and len(search) >= MIN_INDEXED:
        # A phrase of the whole text: the trigram tokenizer matches it as a substring.
        phrase = '"' + search.replace('"', '""') + '"'
        matching: Any = select(literal_column("rowid")).select_from(text(FTS_TABLE)).where(
            text(f"{FTS_TABLE} MATCH :search_phrase").bindparams(search_phrase=phrase))
        return literal_column("tenants.rowid").in_(matching)
    return _searched().like(like_pattern(search), escape="\\")
