"""Fixtures of the provider tests on the real servers."""

from __future__ import annotations

import secrets as random
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from .servers import postgres_url


@pytest.fixture
def pooled() -> Iterator[str]:
    """The name of a pooled database of this test's own on the shared PostgreSQL (schema-mode
    tenants' home), dropped after the test."""
    name = f"tenantops_pool_{random.token_hex(4)}"
    yield name
    with psycopg.connect(postgres_url(), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))
