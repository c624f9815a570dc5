"""Fake of Azure SQL (``Microsoft.Sql``, api-version 2025-01-01): servers, elastic pools and
databases.

Semantics kept (shared reference provisioning-apis.md, §4 "Azure SQL"):

- ``PUT servers/{s}/databases/{db}`` is a long-running operation: 202 with
  ``Azure-AsyncOperation`` and ``Location`` (ARM async pattern, see `_operations`). The
  database is readable at once with ``status: Creating`` and becomes ``Online`` after
  ``creation_seconds`` of fake time. PUT converges: the same body again changes nothing (200
  once online); another ``elasticPoolId`` moves it (``status: Scaling`` until done).
- A PUT or DELETE while another operation on the database runs answers 409
  ``ConflictingDatabaseOperation`` (the code: azure-service-operator#1274; the message is
  unconfirmed).
- An operation can end ``Failed`` (`fail_next`) or be canceled (`cancel`); a failed or
  canceled creation leaves no database, a failed move leaves it where it was (unconfirmed:
  no recording shows what a failed create leaves behind).
- ``location`` must be the server's region, and ``elasticPoolId`` must name a pool of the
  same server; otherwise 400 (the codes ``InvalidLocation``/``ElasticPoolNotFound`` are the
  fake's; ARM's exact codes are not in the reference).
- ``DELETE`` is 202 until done (the database stays readable until then), 204 when absent.
- ``GET`` of an absent database is 404 ``ResourceNotFound``.
"""

from __future__ import annotations

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

__all__ = ["FakeAzureSql"]

API_VERSION = "2025-01-01"
_SERVER = (r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/"
           r"Microsoft\.Sql/servers/(?P<server>[^/]+)")


@dataclass
class _Database:
    name: str
    location: str
    properties: dict[str, Any]
    operation: str
    pending: dict[str, Any] | None = None
    deleting: str | None = None


@dataclass
class _Server:
    name: str
    resource_group: str
    location: str
    pools: set[str] = field(default_factory=set)
    databases: dict[str, _Database] = field(default_factory=dict)


class FakeAzureSql(FakeTransport):
    def __init__(self, *, clock: FakeClock | None = None, creation_seconds: float = 60.0,
                 subscription: str = "00000000-0000-0000-0000-000000000000") -> None:
        super().__init__(api_version=API_VERSION, clock=clock)
        self.creation_seconds = creation_seconds
        self.servers: dict[str, _Server] = {}
        self.failures: list[tuple[str, str]] = []
        self.operations = AsyncOperations(
            self.clock, self.host,
            f"/subscriptions/{subscription}/providers/Microsoft.Sql/locations/any/operations",
            API_VERSION)
        database = _SERVER + r"/databases/(?P<db>[^/]+)"
        self.route("GET", _SERVER, self._get_server)
        self.route("GET", _SERVER + r"/elasticPools/(?P<pool>[^/]+)", self._get_pool)
        self.route("GET", database, self._get)
        self.route("PUT", database, self._put)
        self.route("DELETE", database, self._delete)
        self.route("GET", self.operations.pattern, self.operations.handle)

    def add_server(self, name: str, resource_group: str, location: str = "westeurope",
                   pools: tuple[str, ...] = ("tenants",)) -> None:
        self.servers[name.lower()] = _Server(name, resource_group, location, set(pools))

    def fail_next(self, code: str, message: str) -> None:
        """The next create or update operation ends ``Failed`` with this error."""
        self.failures.append((code, message))

    def cancel(self, server: str, database: str) -> None:
        """Cancel the operation running on ``database`` (as from the portal)."""
        db = self.servers[server.lower()].databases[database.lower()]
        self.operations.cancel(db.deleting or db.operation)

    def _server(self, match: re.Match[str]) -> _Server:
        server = self.servers.get(match["server"].lower())
        if server is None or server.resource_group.lower() != match["rg"].lower():
            raise ArmError(404, "ResourceNotFound",
                           f"The Resource 'Microsoft.Sql/servers/{match['server']}' under "
                           f"resource group '{match['rg']}' was not found.")
        return server

    def _get_server(self, _request: Incoming, match: re.Match[str]) -> FakeResponse:
        server = self._server(match)
        return FakeResponse(200, {
            "id": match.group(0), "name": server.name, "type": "Microsoft.Sql/servers",
            "location": server.location, "kind": "v12.0",
            "properties": {"state": "Ready", "version": "12.0",
                           "fullyQualifiedDomainName": f"{server.name}.database.windows.net"}})

    def _get_pool(self, _request: Incoming, match: re.Match[str]) -> FakeResponse:
        server = self._server(match)
        if match["pool"].lower() not in server.pools:
            raise ArmError(404, "ResourceNotFound",
                           f"The Resource 'Microsoft.Sql/servers/{server.name}/elasticPools/"
                           f"{match['pool']}' was not found.")
        return FakeResponse(200, {
            "id": match.group(0), "name": match["pool"], "location": server.location,
            "type": "Microsoft.Sql/servers/elasticPools",
            "sku": {"name": "StandardPool", "tier": "Standard", "capacity": 50},
            "properties": {"state": "Ready", "maxSizeBytes": 53687091200}})

    def _settle(self, server: _Server, db: _Database) -> _Database | None:
        if db.deleting is not None and self.operations.done(db.deleting):
            if self.operations.outcome(db.deleting) == "Succeeded":
                del server.databases[db.name.lower()]
                return None
            db.deleting = None
        outcome = self.operations.outcome(db.operation)
        if outcome in ("Failed", "Canceled"):
            if db.properties.get("status") == "Creating":
                del server.databases[db.name.lower()]
                return None
            db.pending = None
            db.properties["status"] = "Online"
            return db
        if self.operations.done(db.operation):
            if db.pending is not None:
                db.properties.update(db.pending)
                db.pending = None
            if db.properties.get("status") in ("Creating", "Scaling"):
                db.properties["status"] = "Online"
        return db

    def _body(self, match: re.Match[str], server: _Server, db: _Database) -> dict[str, Any]:
        return {"id": match.group(0), "name": db.name, "location": db.location,
                "type": "Microsoft.Sql/servers/databases", "kind": "v12.0,user,pool",
                "sku": {"name": "ElasticPool", "tier": "Standard"},
                "properties": {**db.properties, "databaseId": f"fake-{server.name}-{db.name}"}}

    def _get(self, _request: Incoming, match: re.Match[str]) -> FakeResponse:
        server = self._server(match)
        db = server.databases.get(match["db"].lower())
        if db is not None:
            db = self._settle(server, db)
        if db is None:
            raise ArmError(404, "ResourceNotFound",
                           f"The requested resource of type 'Microsoft.Sql/servers/databases' "
                           f"with name '{match['db']}' was not found.")
        return FakeResponse(200, self._body(match, server, db))

    def _put(self, request: Incoming, match: re.Match[str]) -> FakeResponse:
        server = self._server(match)
        body = request.body or {}
        props = dict(body.get("properties") or {})
        if str(body.get("location", "")).lower() != server.location.lower():
            raise ArmError(400, "InvalidLocation",
                           f"The location '{body.get('location')}' does not match the server's "
                           f"location '{server.location}'.")
        pool_id = str(props.get("elasticPoolId") or "")
        if pool_id and (pool_id.split("/")[-1].lower() not in server.pools or
                        f"/servers/{server.name}/".lower() not in pool_id.lower()):
            raise ArmError(400, "ElasticPoolNotFound",
                           f"The elastic pool '{pool_id}' was not found on server "
                           f"'{server.name}'.")
        wanted = {"elasticPoolId": pool_id or None,
                  "collation": props.get("collation") or "SQL_Latin1_General_CP1_CI_AS"}
        if props.get("maxSizeBytes"):
            wanted["maxSizeBytes"] = props["maxSizeBytes"]
        key = match["db"].lower()
        db = server.databases.get(key)
        if db is not None:
            db = self._settle(server, db)
        if db is None:
            op = self._start()
            server.databases[key] = _Database(match["db"], server.location,
                                              {**wanted, "status": "Creating"}, op)
            return self.operations.accepted(op)
        if not self.operations.done(db.operation) or db.deleting is not None:
            raise self._conflicting(server, db)
        if all(db.properties.get(k) == v for k, v in wanted.items()):
            return FakeResponse(200, self._body(match, server, db))
        db.operation = self._start()
        db.pending = wanted
        db.properties["status"] = "Scaling"
        return self.operations.accepted(db.operation)

    def _delete(self, _request: Incoming, match: re.Match[str]) -> FakeResponse:
        server = self._server(match)
        db = server.databases.get(match["db"].lower())
        if db is not None:
            db = self._settle(server, db)
        if db is None:
            return FakeResponse(204)
        if db.deleting is not None or not self.operations.done(db.operation):
            raise self._conflicting(server, db)
        db.deleting = self.operations.start(self.creation_seconds / 2)
        return self.operations.accepted(db.deleting)

    def _start(self) -> str:
        op = self.operations.start(self.creation_seconds)
        if self.failures:
            self.operations.fail(op, *self.failures.pop(0))
        return op

    @staticmethod
    def _conflicting(server: _Server, db: _Database) -> ArmError:
        return ArmError(409, "ConflictingDatabaseOperation",
                        f"An operation on database '{db.name}' of server '{server.name}' is in "
                        "progress; wait until it completes (message unconfirmed).")
