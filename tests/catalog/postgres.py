"""A throwaway PostgreSQL database per test, on the server scripts/services/postgres.sh starts.

The server's URL comes from ``TENANTOPS_TEST_POSTGRES_URL``. Without it the PostgreSQL
variants fail, saying how to start the server: a missing server never passes unnoticed.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.support.integration import require_integration

POSTGRES_URL_VARIABLE = "TENANTOPS_TEST_POSTGRES_URL"


def postgres_server_url() -> str:
    require_integration("PostgreSQL")
    url = os.environ.get(POSTGRES_URL_VARIABLE, "")
    if not url:
        reason = (f"{POSTGRES_URL_VARIABLE} is not set: start PostgreSQL 15 with "
                  "scripts/services/postgres.sh (scripts/test does) and export the line it prints")
        pytest.fail(f"these tests need PostgreSQL: {reason}")
    return url


@contextmanager
def postgres_database() -> Iterator[str]:
    """Create an empty database, yield its URL, drop it afterwards."""
    server = make_url(postgres_server_url())
    name = f"tenantops_test_{uuid.uuid4().hex[:12]}"
    admin = server.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server.set(drivername="postgresql", database=name).render_as_string(
            hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
