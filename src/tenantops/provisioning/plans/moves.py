"""A move: a tenant's data copied to another server (or into the other mode), checked,
switched to, and the old copy removed after a grace period.

A move is an update run whose options carry ``move`` (``tenantops tenants move``, or a plan
change whose profile the current copy does not satisfy): the tenant is ``updating`` while it
runs, a failed move leaves the tenant ``failed`` with the run to retry, and its history shows
it as a change. The options also carry ``placement``, the copy the tenant is served from
when the run was opened (the source).

The steps, in order (`move_steps`):

1. ``place_target``: choose the target server (the named one, or the least-loaded of the
   profile's pool with room) and record the target copy;
2. ``create_target``: the target's login and empty database (or the pooled database);
3. ``freeze_writes``: the source's login cannot sign in, its sessions are ended (the
   write freeze starts);
4. ``copy_data``: ``pg_dump | pg_restore`` (PostgreSQL), SQLite's backup API;
5. ``check_copy``: every table has as many rows on both sides;
6. ``open_target``: the target's login may sign in (the freeze ends);
7. ``switch_connection``: the secret ``<slug>-database-url`` names the target;
8. ``switch_placement``: the catalog serves the tenant from the target (the old copy is
   *retiring*);
9. ``wait_for_copy_grace_period``: the old copy is kept ``grace_seconds``;
10. ``drop_old_copy`` and ``forget_old_copy``.

Until step 8 the catalog serves the tenant from the source, untouched but for its login:
a move that fails (or is cancelled) at steps 3-8 ends the write freeze at once (the source's
login signs in again, `StepUndo`), so the tenant is served from its old copy while the
cause is fixed; retrying the run freezes it again and copies afresh, and ``tenantops tenants
move SLUG --abandon`` undoes the move (`abandon_steps`: the target copy dropped and
forgotten, the source's login enabled again). A move opened while an earlier one left a
target copy drops that copy first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tenantops.errors import ProvisioningError
from tenantops.provisioning.placement import (
    connection_secret_of,
    database_of,
    login_of,
    password_secret_of,
)
from tenantops.provisioning.plans.base import PlanStep, StepInputs, StepUndo
from tenantops.provisioning.plans.onboarding import placed, placement_step
from tenantops.provisioning.providers.base import Resource
from tenantops.provisioning.providers.catalog import (
    CopyRetirement,
    PlacementRecord,
    PlacementSwitch,
)
from tenantops.provisioning.providers.database import CopyCheck, Database, DatabaseCopy
from tenantops.provisioning.providers.secrets import ConnectionSecret

__all__ = ["abandon_steps", "move_steps"]


def _record(o: Mapping[str, Any]) -> dict[str, object]:
    return {"database_name": o["database"], "database_login": o["login"],
            "database_secret": o["secret"]}


def _options(options: Mapping[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    move, source = options.get("move"), options.get("placement")
    if not isinstance(move, Mapping) or not isinstance(source, Mapping):
        raise ProvisioningError(
            "the move's options have no move or placement; the run's options were changed "
            "by hand or are damaged")
    return move, source


Serving = Callable[[StepInputs], Mapping[str, Any]]


def _drop(copy: Mapping[str, Any], serving: Serving, name: str, what: str
          ) -> list[PlanStep]:
    """Drop the copy ``copy`` and forget it; the login stays when ``serving`` (the copy the
    tenant keeps) is on the same server."""
    def drop(i: StepInputs) -> Resource:
        same = str(serving(i).get("server")) == str(copy.get("server"))
        return database_of(i.spec.slug, copy, keep_login=same)

    def forget(i: StepInputs) -> Resource:
        return PlacementRecord(i.spec.slug, str(copy["server"]), str(copy["database"]),
                               None if copy.get("schema") is None else str(copy["schema"]))
    return [
        PlanStep(f"drop_{name}", "database", "remove", drop,
                 f"drop {what} ({copy.get('server')}: {copy.get('database')}"
                 f"{'.' + str(copy['schema']) if copy.get('schema') else ''})"),
        PlanStep(f"forget_{name}", "catalog", "remove", forget,
                 f"forget {what} in the catalog"),
    ]


def abandon_steps(options: Mapping[str, Any]) -> list[PlanStep]:
    """Undo a move that did not switch: drop its target copy (``move.stale``), and let the
    source's login sign in again (unless the tenant is suspended)."""
    move, source = _options(options)
    stale = move.get("stale")
    suspended = bool(options.get("suspended"))
    steps = _drop(stale, lambda _i: source, "abandoned_copy",
                  "the copy the unfinished move made") if isinstance(stale, Mapping) else []

    def reopen(i: StepInputs) -> Resource:
        return database_of(i.spec.slug, source, login_enabled=not suspended)
    steps.append(PlanStep(
        "reopen_source", "database", "ensure", reopen,
        "the tenant's login signs in to its data again (the write freeze ends)",
        lambda _i, o: _record(o)))
    return steps


def move_steps(options: Mapping[str, Any]) -> list[PlanStep]:
    """The steps of the move ``options`` describe (see the module docstring)."""
    move, source = _options(options)
    if move.get("abandon"):
        return abandon_steps(options)
    target: Mapping[str, Any] = move["target"]
    suspended = bool(options.get("suspended"))
    grace = float(move.get("grace_seconds", 0.0))
    stale = move.get("stale")
    steps: list[PlanStep] = []
    if isinstance(stale, Mapping):
        steps += _drop(stale, lambda _i: source, "abandoned_copy",
                       "the copy an unfinished move left")

    def there(i: StepInputs, *, enabled: bool, empty: bool = False) -> Database:
        return database_of(i.spec.slug, placed(i, "place_target", target),
                           login_enabled=enabled, empty=empty)

    def here(i: StepInputs) -> Database:
        return database_of(i.spec.slug, source, login_enabled=False)

    # Until the switch, a move stopped at any step (failed, or cancelled) ends its write
    # freeze: the tenant is served from the old copy, and a retry freezes it again before
    # it copies anything (the copy would otherwise miss the writes made meanwhile).
    thaw = StepUndo(
        lambda i: database_of(i.spec.slug, source, login_enabled=not suspended),
        "the write freeze ended: the tenant's login signs in to its old copy again",
        again_from="freeze_writes")

    def connection(i: StepInputs) -> Resource:
        # The login the copy is used with: after a credential rotation, the second one.
        opened = i.outputs.get("open_target") or {}
        return ConnectionSecret(connection_secret_of(i.spec.slug),
                                i.output("open_target", "location"),
                                str(opened.get("login") or login_of(i.spec.slug)),
                                str(opened.get("secret") or password_secret_of(i.spec.slug)))

    steps += [
        placement_step(target, name="place_target", state="target"),
        PlanStep("create_target", "database", "ensure",
                 lambda i: there(i, enabled=False, empty=True),
                 "make the login and the empty database that will hold the copy"),
        PlanStep("freeze_writes", "database", "ensure", here,
                 "the tenant's login cannot sign in to its data; its sessions are ended "
                 "(the write freeze starts)", undo=thaw),
        PlanStep("copy_data", "database", "ensure",
                 lambda i: DatabaseCopy(here(i), there(i, enabled=False)),
                 "copy the tenant's data to the target (pg_dump | pg_restore, or SQLite's "
                 "backup API)", undo=thaw),
        PlanStep("check_copy", "database", "ensure",
                 lambda i: CopyCheck(here(i), there(i, enabled=False)),
                 "check that every table has as many rows in the copy", undo=thaw),
        PlanStep("open_target", "database", "ensure",
                 lambda i: there(i, enabled=not suspended),
                 "the tenant's login signs in to the copy (the write freeze ends)",
                 lambda _i, o: _record(o), undo=thaw),
        PlanStep("switch_connection", "secrets", "ensure", connection,
                 "the tenant's connection secret names the copy", undo=thaw),
        PlanStep("switch_placement", "catalog", "ensure",
                 lambda i: PlacementSwitch(i.spec.slug, i.run_id),
                 "the catalog serves the tenant from the copy; the old one is retiring",
                 undo=thaw),
        PlanStep("wait_for_copy_grace_period", "catalog", "ensure",
                 lambda i: CopyRetirement(i.spec.slug, i.run_id, grace),
                 f"keep the old copy for the grace period ({grace:g} s)"),
        *_drop(source, lambda i: placed(i, "place_target", target), "old_copy",
               "the old copy"),
    ]
    return steps
