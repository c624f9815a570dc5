"""Fake of Azure Database for PostgreSQL Flexible Server (``Microsoft.DBforPostgreSQL``,
api-version 2026-10-01): servers and their databases.

Semantics kept (shared reference provisioning-apis.md, §4 "PostgreSQL Flexible Server"):

- ``PUT flexibleServers/{s}/databases/{db}`` (the SDK's ``begin_create``; there is no
  ``create_or_update``) is a long-running operation: 202 with ``Azure-AsyncOperation`` and
  ``Location``. The database exists (``GET`` 200) only once the operation is done, after
  ``creation_seconds`` of fake time; before that ``GET`` is 404 and a repeated PUT joins the
  running operation (202 again) instead of starting another.
- A PUT for an existing database answers **202** like any other: the specification (as
  generated into azure-mgmt-postgresqlflexibleservers 3.0.0, which accepts only 202 from
  ``Databases_Create``) lists no 200. The operation then completes at once. With another
  ``charset``/``collation`` the operation ends ``Failed`` (PostgreSQL cannot change a
  database's encoding; the error code ``InvalidParameterValue`` is the fake's, unconfirmed).
- ``DELETE`` is 202 until done, 204 when absent.
- While an operation runs on the server, another PUT or DELETE of a database answers
  ``ServerIsBusy`` "Cannot complete operation while server '<name>' is busy processing another
  operation. Try again later." (Azure/azure-postgresql#134); the HTTP status is unconfirmed,
  the fake answers 409.
- An operation can end ``Failed`` (`fail_next`) or be canceled (`cancel`); a failed or
  canceled creation leaves no database.
- Roles and grants are not ARM resources (§4); the fake has none. With ``data_plane`` (the
  admin URL of a real PostgreSQL server, which the tests start), a database the fake's
  operation creates is also created there, owned by that admin as the server administrator
  owns what ARM makes, and dropped there when ARM deletes it: SQL against "the flexible
  server" then reaches a real PostgreSQL, as it does on Azure.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from typing import Any

from tests.azure_fake._operations import AsyncOperations
from tests.azure_fake._transport import (
    ArmError,
    FakeClock,
    FakeResponse,
    FakeTransport,
    Incoming,
)

__all__ = ["FakePostgresFlexible"]

API_VERSION = "2026-10-01"
_SERVER = (r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/"
           r"Microsoft\.DBforPostgreSQL/flexibleServers/(?P<server>[^/]+)")


@dataclass
class _Server:
    name: str
    resource_group: str
    location: str
    databases: dict[str, dict[str, Any]] = field(default_factory=dict)
    creating: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    deleting: dict[str, str] = field(default_factory=dict)
    data_plane: str | None = None


class FakePostgresFlexible(FakeTransport):
    def __init__(self, *, clock: FakeClock | None = None, creation_seconds: float = 30.0,
                 subscription: str = "00000000-0000-0000-0000-000000000000",
                 data_plane: str | None = None) -> None:
        super().__init__(api_version=API_VERSION, clock=clock)
        self.creation_seconds = creation_seconds
        self.data_plane = data_plane
        self.servers: dict[str, _Server] = {}
        self.failures: list[tuple[str, str]] = []
        self.operations = AsyncOperations(
            self.clock, self.host,
            f"/subscriptions/{subscription}/providers/Microsoft.DBforPostgreSQL/locations/any/"
            "operations", API_VERSION)
        database = _SERVER + r"/databases/(?P<db>[^/]+)"
        self.route("GET", _SERVER, self._get_server)
        self.route("GET", database, self._get)
        self.route("PUT", database, self._put)
        self.route("DELETE", database, self._delete)
        self.route("GET", self.operations.pattern, self.operations.handle)

    def add_server(self, name: str, resource_group: str, location: str = "westeurope", *,
                   data_plane: str | None = None) -> None:
        """A flexible server; ``data_plane``: its own real PostgreSQL (else the fake's)."""
        self.servers[name.lower()] = _Server(name, resource_group, location,
                                             data_plane=data_plane)

    def fail_next(self, code: str, message: str) -> None:
        """The next create operation ends ``Failed`` with this error."""
        self.failures.append((code, message))

    def cancel(self, server: str, database: str) -> None:
        found = self.servers[server.lower()]
        op = found.creating.get(database.lower(), ("", {}))[0] or \
            found.deleting[database.lower()]
        self.operations.cancel(op)

    def _busy(self, server: _Server) -> ArmError | None:
        if server.creating or server.deleting:
            return ArmError(409, "ServerIsBusy",
                            f"Cannot complete operation while server '{server.name}' is busy "
                            "processing another operation. Try again later.")
        return None

    def _server(self, match: re.Match[str]) -> _Server:
        server = self.servers.get(match["server"].lower())
        if server is None or server.resource_group.lower() != match["rg"].lower():
            raise ArmError(404, "ResourceNotFound",
                           f"The Resource 'Microsoft.DBforPostgreSQL/flexibleServers/"
                           f"{match['server']}' under resource group '{match['rg']}' was not "
                           "found.")
        self._settle(server)
        return server

    def _settle(self, server: _Server) -> None:
        for name, (op, props) in list(server.creating.items()):
            if self.operations.done(op):
                if self.operations.outcome(op) == "Succeeded":
                    server.databases[name] = props
                    self._on_data_plane(server, "CREATE DATABASE {} TEMPLATE template0 "
                                        "ENCODING 'UTF8'", name)
                del server.creating[name]
        for name, op in list(server.deleting.items()):
            if self.operations.done(op):
                if self.operations.outcome(op) == "Succeeded":
                    server.databases.pop(name, None)
                    self._on_data_plane(server, "DROP DATABASE IF EXISTS {} WITH (FORCE)", name)
                del server.deleting[name]

    def _on_data_plane(self, server: _Server, statement: str, database: str) -> None:
        url = server.data_plane or self.data_plane
        if url is None:
            return
        import psycopg
        from psycopg import errors, sql

        with psycopg.connect(url, autocommit=True) as admin, \
                contextlib.suppress(errors.DuplicateDatabase):
            admin.execute(sql.SQL(statement).format(sql.Identifier(database)))

    def _get_server(self, _request: Incoming, match: re.Match[str]) -> FakeResponse:
        server = self._server(match)
        return FakeResponse(200, {
            "id": match.group(0), "name": server.name, "location": server.location,
            "type": "Microsoft.DBforPostgreSQL/flexibleServers",
            "properties": {"state": "Ready", "version": "16",
                           "fullyQualifiedDomainName":
                           f"{server.name}.postgres.database.azure.com"}})

    def _body(self, match: re.Match[str], name: str, props: dict[str, Any]) -> dict[str, Any]:
        return {"id": match.group(0), "name": name,
                "type": "Microsoft.DBforPostgreSQL/flexibleServers/databases",
                "properties": dict(props)}

    def _get(self, _request: Incoming, match: re.Match[str]) -> FakeResponse:
        server, name = self._server(match), match["db"].lower()
        if name not in server.databases:
            raise ArmError(404, "ResourceNotFound",
                           f"The requested resource of type 'Microsoft.DBforPostgreSQL/"
                           f"flexibleServers/databases' with name '{match['db']}' was not "
                           "found.")
        return FakeResponse(200, self._body(match, match["db"], server.databases[name]))

    def _put(self, request: Incoming, match: re.Match[str]) -> FakeResponse:
        server, name = self._server(match), match["db"].lower()
        props = dict((request.body or {}).get("properties") or {})
        wanted = {"charset": props.get("charset") or "UTF8",
                  "collation": props.get("collation") or "en_US.utf8"}
        busy = self._busy(server)
        if busy is not None:
            raise busy
        existing = server.databases.get(name)
        if existing is not None and name not in server.deleting:
            op = self.operations.start(0.0)
            if existing != wanted:
                self.operations.fail(op, "InvalidParameterValue",
                                     f"Database '{match['db']}' exists with charset "
                                     f"{existing['charset']} and collation "
                                     f"{existing['collation']}; they cannot be changed.")
            return self.operations.accepted(op)
        op = self.operations.start(self.creation_seconds)
        if self.failures:
            self.operations.fail(op, *self.failures.pop(0))
        server.creating[name] = (op, wanted)
        return self.operations.accepted(op)

    def _delete(self, _request: Incoming, match: re.Match[str]) -> FakeResponse:
        server, name = self._server(match), match["db"].lower()
        if name not in server.databases and name not in server.creating:
            return FakeResponse(204)
        busy = self._busy(server)
        if busy is not None:
            raise busy
        if name not in server.databases:
            return FakeResponse(204)
        op = self.operations.start(self.creation_seconds / 2)
        server.deleting[name] = op
        return self.operations.accepted(op)
