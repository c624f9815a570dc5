"""Reading an import file (``tenantops import FILE``, the dashboard's import page) into the
entries `tenantops.provisioning.adoption` checks one by one. Standard library only: the CLI
imports it without loading the engine (tests/test_cli_imports.py)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from tenantops.errors import ImportFileError

__all__ = ["read_import"]


_RESOURCE_COLUMNS = ("database", "login", "secret", "organization_id")


def _csv_entries(text: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    reader = csv.DictReader(io.StringIO(text))
    for line, row in enumerate(reader, start=2):
        entry: dict[str, Any] = {}
        resources: dict[str, str] = {}
        for column, value in row.items():
            if column is None:
                raise ImportFileError(f"line {line}: more values than the header has columns")
            value = (value or "").strip()
            if not value:
                continue
            if column in _RESOURCE_COLUMNS:
                resources[column] = value
            elif column == "tags":
                tags: dict[str, str] = {}
                for item in value.split(";"):
                    key, sep, tag = item.partition("=")
                    if not sep or not key.strip():
                        raise ImportFileError(f"line {line}: tag {item!r} must be key=value")
                    tags[key.strip()] = tag.strip()
                entry["tags"] = tags
            elif column == "suspended":
                if value.lower() not in ("true", "false"):
                    raise ImportFileError(
                        f"line {line}: suspended {value!r} must be true or false")
                entry["suspended"] = value.lower() == "true"
            else:
                entry[column] = value
        if resources:
            entry["resources"] = resources
        entries.append(entry)
    return entries


def read_import(text: str, *, source: str, csv_format: bool) -> list[Any]:
    """The entries of an import file's ``text`` (``tenantops import FILE`` and the
    dashboard's import page read files the same way): JSON, a list of entries or
    ``{"tenants": [...]}``; or CSV, a header row naming the columns, the resource names and
    ``suspended`` columns of their own, ``tags`` as ``key=value;key=value``. Each entry is
    checked later, alone (`parse_entry`). `ImportFileError` naming ``source`` or the CSV line
    when the text cannot be read as entries."""
    if csv_format:
        return _csv_entries(text)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportFileError(f"{source}: not JSON ({exc}); use a .csv name for CSV") from None
    if isinstance(data, dict) and "tenants" in data:
        data = data["tenants"]
    if not isinstance(data, list):
        raise ImportFileError(
            f"{source}: must hold a list of tenants (or {{\"tenants\": [...]}})")
    return data
