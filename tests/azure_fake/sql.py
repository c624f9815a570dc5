"""Fake of Azure SQL (``Microsoft.Sql``, api-version 2025-01-01): servers, elastic pools and
databases, in a pool or single databases of their own SKU.

Semantics kept. Sources: the shared reference provisioning-apis.md §4 "Azure SQL"; Azure's
REST API specification ``specification/sql/resource-manager/Microsoft.Sql/stable/2025-01-01/
Databases.json`` (``Azure/azure-rest-api-specs`` commit 483d5703fae8df07583bc67c68d34007b79f35e3)
and its examples (``examples/CreateDatabaseMin.json`` of 2025-01-01; ``examples/
PatchVCoreDatabase.json``, ``CreateVCoreDatabaseBySkuNameCapacity.json`` and
``CreateVCoreDatabaseByServiceObjective.json`` of ``stable/2023-08-01``, the 2025-01-01 copies
not being in the index searched). ``Azure/azure-sdk-assets`` holds no recording of a database
request for azure-mgmt-sql (only list operations under ``python/sdk/sql/azure-mgmt-sql/
tests/recordings/``), so nothing here is confirmed by a recording.

- ``PUT servers/{s}/databases/{db}`` (``Databases_CreateOrUpdate``) is a long-running
  operation: 202 with ``Azure-AsyncOperation`` and ``Location`` (ARM async pattern, see
  `_operations`; Databases.json lists 200, 201 and 202, final state via the async
  operation). The database is readable at once with ``status: Creating`` and becomes
  ``Online`` after ``creation_seconds`` of fake time. PUT converges: the same body again
  changes nothing (200 once online); another home moves it (``status: Scaling`` until done).
- ``PATCH`` (``Databases_Update``) changes an existing database in place: 202 with the same
  headers (Databases.json lists 200 and 202, final state via ``Location``), 200 when it
  changes nothing, 404 ``ResourceNotFound`` for an absent database.
- A database's home is ``sku`` + ``elasticPoolId``. A request's ``sku.name`` is a service
  objective name (``S0``, ``GP_Gen5_2``; ``PatchVCoreDatabase.json`` sends
  ``{"name": "BC_Gen4_4"}`` alone). ``GET`` answers ``sku`` as Azure normalises it (``S0`` is
  ``{"name": "Standard", "tier": "Standard", "capacity": 10}``, ``CreateDatabaseMin.json``),
  with ``currentServiceObjectiveName``/``currentSku`` what the database runs on and
  ``requestedServiceObjectiveName`` what it was asked to become; while a change runs, ``sku``
  and ``requestedServiceObjectiveName`` show the new SKU and ``current*`` the old one
  (``PatchVCoreDatabase.json``'s answer shows the new capacity in ``sku`` and the old
  objective in ``currentServiceObjectiveName``). A database in a pool has ``sku`` ``{"name":
  "ElasticPool", "tier": <the pool's>, "capacity": 0}`` and kind ``v12.0,user,pool``
  (exported ARM templates); its objective reads ``ElasticPool`` (the fake's assumption).
- Moving to a SKU leaves the pool: ``elasticPoolId`` is gone from ``GET`` afterwards. An
  ``elasticPoolId`` with any SKU but ``ElasticPool`` is 400
  ``ElasticPoolSkuCombinationInvalid``; ``ElasticPool`` without a pool is 400
  ``ElasticPoolNameRequired`` (codes and rules from Databases.json's error list; the
  messages are the fake's).
- A SKU name Azure does not offer is 400 ``InvalidSku`` "The sku '<name>' specified is
  invalid." (Azure/azure-sdk-for-java#44242 and Azure/azure-sdk-for-js#33101 quote it for a
  database create-or-update; Databases.json lists ``InvalidSku``). The edition name
  ``Standard`` that ``GET`` answers is such a name. The fake offers the SKUs in `SKUS`.
- A PUT, PATCH or DELETE while another operation on the database runs answers 409
  ``ConflictingDatabaseOperation`` (the code: Databases.json and azure-service-operator#1274;
  the message is the fake's).
- An operation can end ``Failed`` (`fail_next`) or be canceled (`cancel`); a failed or
  canceled creation leaves no database, a failed change leaves it where it was (unconfirmed:
  no recording shows what a failed create leaves behind).
- ``location`` must be the server's region, and ``elasticPoolId`` must name a pool of the
  same server; otherwise 400 (``InvalidLocation`` is the fake's code;
  ``ElasticPoolNotFound`` too: Databases.json names ``TargetElasticPoolDoesNotExist`` for it).
- ``PUT`` with ``createMode: Copy`` and ``sourceDatabaseId`` (``examples/
  CreateDatabaseCopyMode.json`` of 2025-01-01) makes the database a copy of the source, on
  any server of the subscription: ``status: Copying`` until done (the status is one of
  Databases.json's ``DatabaseStatus`` values), then ``Online`` with the source's tables as
  they were at the end. Azure's copy is a transactionally consistent snapshot of the source
  at a time after the request (New-AzSqlDatabaseCopy: "uses the snapshot at the current
  time"); when exactly is the fake's choice (the end), and a suspended tenant writes nothing
  meanwhile. ``GET`` of the copy shows neither ``createMode`` nor ``sourceDatabaseId``
  (the example's answer has neither). A source that does not exist is 400
  ``SourceDatabaseNotFound`` "The source database does not exist."; a target name taken is
  409 ``RemoteDatabaseExists`` (both from Databases.json's error list).
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
POOL_OBJECTIVE = "ElasticPool"
SKUS: dict[str, dict[str, Any]] = {
    # service objective -> the ``sku`` GET answers (CreateDatabaseMin.json for S0; the DTUs
    # of S1 and S2 as Azure's service broker plans list them; the vCore ones as
    # ``az sql db list-editions`` prints them, Azure/azure-sdk-for-js#33101).
    "Basic": {"name": "Basic", "tier": "Basic", "capacity": 5},
    "S0": {"name": "Standard", "tier": "Standard", "capacity": 10},
    "S1": {"name": "Standard", "tier": "Standard", "capacity": 20},
    "S2": {"name": "Standard", "tier": "Standard", "capacity": 50},
    "P1": {"name": "Premium", "tier": "Premium", "capacity": 125},
    "GP_Gen5_2": {"name": "GP_Gen5", "tier": "GeneralPurpose", "family": "Gen5", "capacity": 2},
    "BC_Gen4_2": {"name": "BC_Gen4", "tier": "BusinessCritical", "family": "Gen4",
                  "capacity": 2},
}
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
    tables: dict[str, int] = field(default_factory=dict)
    """What the database holds (table -> rows): tests fill it; a copy copies it."""
    copy_of: _Database | None = None
    """While a copy (``createMode: Copy``) runs: its source."""


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
        self.route("PATCH", database, self._patch)
        self.route("DELETE", database, self._delete)
        self.route("GET", self.operations.pattern, self.operations.handle)

    def add_server(self, name: str, resource_group: str, location: str = "westeurope",
                   pools: tuple[str, ...] = ("tenants",)) -> None:
        self.servers[name.lower()] = _Server(name, resource_group, location, set(pools))

    def fail_next(self, code: str, message: str) -> None:
        """The next create or update operation ends ``Failed`` with this error."""
        self.failures.append((code, message))

    def database(self, server: str, name: str) -> _Database | None:
        """Database ``name`` of ``server`` as a GET would find it now (None: 404)."""
        found = self.servers[server.lower()]
        db = found.databases.get(name.lower())
        return None if db is None else self._settle(found, db)

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
            if db.properties.get("status") in ("Creating", "Copying"):
                del server.databases[db.name.lower()]
                return None
            db.pending = None
            db.properties["status"] = "Online"
            return db
        if self.operations.done(db.operation):
            if db.pending is not None:
                db.properties.update(db.pending)
                db.pending = None
            if db.copy_of is not None:
                # A consistent snapshot of the source; the fake takes it at the end.
                db.tables = dict(db.copy_of.tables)
                db.copy_of = None
            if db.properties.get("status") in ("Creating", "Scaling", "Copying"):
                db.properties["status"] = "Online"
        return db

    @staticmethod
    def _sku_of(objective: str) -> dict[str, Any]:
        if objective == POOL_OBJECTIVE:
            return {"name": POOL_OBJECTIVE, "tier": "Standard", "capacity": 0}
        return dict(SKUS[objective])

    def _body(self, match: re.Match[str], server: _Server, db: _Database) -> dict[str, Any]:
        props = {k: v for k, v in db.properties.items() if v is not None}
        current = str(props.pop("currentServiceObjectiveName"))
        requested = str(db.pending["currentServiceObjectiveName"]) if db.pending else current
        pooled = bool(props.get("elasticPoolId"))
        return {"id": match.group(0), "name": db.name, "location": db.location,
                "type": "Microsoft.Sql/servers/databases",
                "kind": "v12.0,user,pool" if pooled else "v12.0,user",
                "sku": self._sku_of(requested),
                "properties": {**props, "databaseId": f"fake-{server.name}-{db.name}",
                               "currentServiceObjectiveName": current,
                               "requestedServiceObjectiveName": requested,
                               "currentSku": self._sku_of(current)}}

    @staticmethod
    def _home(server: _Server, sku: object, pool_id: str, *,
              current_pool: str = "") -> tuple[str, str | None]:
        """(service objective, elasticPoolId) a request asks for; ARM's 400 when Azure
        would refuse it."""
        if pool_id and (pool_id.split("/")[-1].lower() not in server.pools or
                        f"/servers/{server.name}/".lower() not in pool_id.lower()):
            raise ArmError(400, "ElasticPoolNotFound",
                           f"The elastic pool '{pool_id}' was not found on server "
                           f"'{server.name}'.")
        name = str(sku.get("name") or "") if isinstance(sku, dict) else ""
        if not name:
            pool = pool_id or current_pool
            return (POOL_OBJECTIVE, pool) if pool else ("S0", None)
        if name.lower() == POOL_OBJECTIVE.lower():
            pool = pool_id or current_pool
            if not pool:
                raise ArmError(400, "ElasticPoolNameRequired",
                               "The SKU 'ElasticPool' needs the elastic pool's elasticPoolId.")
            return POOL_OBJECTIVE, pool
        if pool_id:
            raise ArmError(400, "ElasticPoolSkuCombinationInvalid",
                           "Elastic pool and sku can be specified together only if sku is "
                           "specified as 'ElasticPool'.")
        objective = next((o for o in SKUS if o.lower() == name.lower()), None)
        if objective is None:
            raise ArmError(400, "InvalidSku", f"The sku '{name}' specified is invalid.")
        return objective, None

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
        objective, pool_id = self._home(server, body.get("sku"),
                                        str(props.get("elasticPoolId") or ""))
        wanted: dict[str, Any] = {
            "elasticPoolId": pool_id, "currentServiceObjectiveName": objective,
            "collation": props.get("collation") or "SQL_Latin1_General_CP1_CI_AS"}
        if props.get("maxSizeBytes"):
            wanted["maxSizeBytes"] = props["maxSizeBytes"]
        key = match["db"].lower()
        db = server.databases.get(key)
        if db is not None:
            db = self._settle(server, db)
        source = self._copy_source(props) if props.get("createMode") == "Copy" else None
        if db is None:
            op = self._start()
            server.databases[key] = _Database(
                match["db"], server.location,
                {**wanted, "status": "Creating" if source is None else "Copying"}, op,
                copy_of=source)
            return self.operations.accepted(op)
        if source is not None:
            raise ArmError(409, "RemoteDatabaseExists",
                           "The destination database name already exists on the destination "
                           "server.")
        return self._change(match, server, db, wanted)

    def _copy_source(self, props: dict[str, Any]) -> _Database:
        """The database ``sourceDatabaseId`` names (``createMode: Copy``); 400
        ``SourceDatabaseNotFound`` (code and text from Databases.json's error list) when
        there is none."""
        found = re.fullmatch(_SERVER + r"/databases/(?P<db>[^/]+)",
                             str(props.get("sourceDatabaseId") or ""), re.IGNORECASE)
        server = self.servers.get(found["server"].lower()) if found else None
        source = server.databases.get(found["db"].lower()) if server and found else None
        if source is not None and server is not None:
            source = self._settle(server, source)
        if source is None or source.properties.get("status") != "Online":
            raise ArmError(400, "SourceDatabaseNotFound", "The source database does not exist.")
        return source

    def _patch(self, request: Incoming, match: re.Match[str]) -> FakeResponse:
        server = self._server(match)
        db = server.databases.get(match["db"].lower())
        if db is not None:
            db = self._settle(server, db)
        if db is None:
            raise ArmError(404, "ResourceNotFound",
                           f"The requested resource of type 'Microsoft.Sql/servers/databases' "
                           f"with name '{match['db']}' was not found.")
        body = request.body or {}
        props = dict(body.get("properties") or {})
        current_pool = str(db.properties.get("elasticPoolId") or "")
        if "sku" in body or "elasticPoolId" in props:
            objective, pool_id = self._home(server, body.get("sku"),
                                            str(props.get("elasticPoolId") or ""),
                                            current_pool=current_pool)
        else:
            objective = str(db.properties["currentServiceObjectiveName"])
            pool_id = current_pool or None
        wanted = {"elasticPoolId": pool_id, "currentServiceObjectiveName": objective}
        if props.get("maxSizeBytes"):
            wanted["maxSizeBytes"] = props["maxSizeBytes"]
        return self._change(match, server, db, wanted)

    def _change(self, match: re.Match[str], server: _Server, db: _Database,
                wanted: dict[str, Any]) -> FakeResponse:
        """An existing database asked to become ``wanted``: 200 when it is, else the
        operation that makes it so (202)."""
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
