"""Where a tenant's data goes: what its plan asks for (`DatabaseProfile`), which servers may
take it (`server_slots`), and the `Database` resource of a copy (`database_of`).

A plan's ``[plans.<name>.database]`` says the mode (a database of its own, or a schema in a
pooled database), the pool of servers, and on Azure SQL the elastic pool or SKU. The server
itself is chosen when the copy is placed (`tenantops.catalog.placement`), and recorded; every
later run reads the recorded placement, never the plan, to find the data. A plan change
whose profile the current copy does not satisfy (another mode, a pool without its server,
another pooled database) moves the data (`needs_move`).

Names are fixed by the slug: database ``tenant_<slug>`` (mode ``database``) or schema
``tenant_<slug>`` in the plan's pooled database (mode ``schema``), login ``<slug>_app``, its
password in the secret ``<slug>-database-password``, the connection in
``<slug>-database-url`` (``-`` in a slug becomes ``_`` in SQL names).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tenantops.catalog import Placement, ServerSlot
from tenantops.config import DEFAULT_SERVER, Settings
from tenantops.errors import SpecError, SpecProblem
from tenantops.provisioning.providers.database import Database, DatabaseMode

__all__ = [
    "DatabaseProfile",
    "connection_secret_of",
    "database_of",
    "default_placement",
    "login_of",
    "needs_move",
    "password_secret_of",
    "plan_profile",
    "server_slots",
]


def _identifier(slug: str) -> str:
    return slug.replace("-", "_")


def login_of(slug: str) -> str:
    return f"{_identifier(slug)}_app"


def password_secret_of(slug: str) -> str:
    return f"{slug}-database-password"


def connection_secret_of(slug: str) -> str:
    return f"{slug}-database-url"


@dataclass(frozen=True)
class DatabaseProfile:
    """What a plan asks of a tenant's data: ``mode``, the ``pool`` of servers, the pooled
    ``shared_database`` (schema mode), and on Azure SQL the ``elastic_pool`` or ``sku``."""

    plan: str
    mode: DatabaseMode
    pool: str
    shared_database: str
    elastic_pool: str | None = None
    sku: str | None = None

    def names(self, slug: str) -> tuple[str, str | None]:
        """(database, schema) of ``slug`` in this profile."""
        if self.mode == "schema":
            return self.shared_database, f"tenant_{_identifier(slug)}"
        return f"tenant_{_identifier(slug)}", None

    def details(self) -> dict[str, Any]:
        return {key: value for key, value in (("elastic_pool", self.elastic_pool),
                                              ("sku", self.sku)) if value is not None}

    def options(self, slug: str, server: str | None = None) -> dict[str, Any]:
        """As a run's options record what to place: the profile, the names, a named server."""
        database, schema = self.names(slug)
        return {"plan": self.plan, "mode": self.mode, "pool": self.pool,
                "database": database, "schema": schema, "details": self.details(),
                "server": server}


def plan_profile(plan: str, settings: Settings) -> DatabaseProfile:
    """The profile of ``plan``; `SpecError` (field ``plan``) for a plan the settings do not
    have."""
    found = settings.plans.get(plan)
    if found is None:
        raise SpecError([SpecProblem(
            "plan", plan, f"must be one of {', '.join(settings.plans)} (the plans in the "
            "settings: [plans])")])
    wanted = found.database
    return DatabaseProfile(plan, wanted.mode, wanted.pool, wanted.shared_database,
                           wanted.elastic_pool, wanted.sku)


def server_slots(settings: Settings, pool: str) -> tuple[ServerSlot, ...]:
    """The servers of ``pool``, with their capacity and whether they are draining."""
    return tuple(ServerSlot(s.name, s.capacity, s.draining)
                 for s in settings.providers.database.server_list() if s.pool == pool)


def default_placement(slug: str) -> Placement:
    """Where a tenant made before placements were recorded has its data."""
    return Placement("current", DEFAULT_SERVER, "database", f"tenant_{_identifier(slug)}")


def database_of(slug: str, placement: Placement | Mapping[str, Any] | None, *,
                login_enabled: bool = True, empty: bool = False,
                keep_login: bool = False) -> Database:
    """The `Database` of ``slug``'s copy ``placement`` (a record, or a run's options of one;
    None: `default_placement`). For code that works in tenants' databases: pass
    ``catalog.placement_of(slug)``, then ``providers.database.connect(...)``."""
    if placement is None:
        placement = default_placement(slug)
    elif not isinstance(placement, Placement):
        placement = Placement.from_options(placement)
    details = placement.details
    return Database(
        placement.database, login_of(slug), password_secret_of(slug),
        login_enabled=login_enabled, server=placement.server, schema=placement.schema,
        elastic_pool=details.get("elastic_pool"), sku=details.get("sku"), empty=empty,
        keep_login=keep_login)


def needs_move(current: Placement, profile: DatabaseProfile, settings: Settings,
               slug: str) -> bool:
    """Whether the copy ``current`` does not satisfy ``profile``: another mode or pooled
    database, or a server outside its pool. (An Azure SQL elastic pool or SKU is changed in
    place, without a move.)"""
    if (current.database, current.schema) != profile.names(slug):
        return True
    return current.server not in {slot.name for slot in server_slots(settings, profile.pool)}
