"""Placement and moves on the embedded default (SQLite servers as folders), in process: plans
choose the pool, a new tenant goes to the least-loaded server with room, a full pool is
refused naming each server; a move copies the data, switches the tenant and removes the old
copy after its grace period; a failed move leaves the tenant on the old copy, and is
finished by a retry or undone by --abandon."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from tenantops.catalog import ServerSlot, choose_server
from tenantops.errors import PermanentProviderError, PlacementError, SpecError
from tenantops.provisioning import Engine
from tenantops.provisioning.engine import current_step
from tenantops.provisioning.placement import database_of, server_slots
from tenantops.provisioning.providers.base import Outcome, ProviderCall, Ready
from tenantops.provisioning.providers.catalog import DatabasePlacement
from tenantops.provisioning.providers.database.sqlite import SqliteDatabases
from tenantops.provisioning.run_requests import TenantChange

from .conftest import EngineFactory, spec_for
from .test_lifecycle import FailStep, finished, onboard


class HoldStep:
    """Holds the calls of one plan step (by name) until `release`; `reached` is set then."""

    def __init__(self, step: str) -> None:
        self.step = step
        self.reached = threading.Event()
        self.release = threading.Event()

    def __call__(self, call: ProviderCall, proceed: Callable[[], Outcome]) -> Outcome:
        ref = current_step()
        if ref is not None and ref.step == self.step:
            self.reached.set()
            if not self.release.wait(300):
                raise PermanentProviderError("the test never released the step")
        return proceed()


def servers(tmp_path: Path, **capacities: int | None) -> list[dict[str, object]]:
    return [{"name": name, "directory": str(tmp_path / name),
             **({"capacity": capacity} if capacity is not None else {})}
            for name, capacity in capacities.items()]


def sqlite_of(engine: Engine) -> SqliteDatabases:
    provider = engine.providers.database
    assert isinstance(provider, SqliteDatabases)
    return provider


def write_rows(engine: Engine, slug: str, count: int) -> None:
    """Data the tenant's app wrote: a table with ``count`` rows in its current copy."""
    with sqlite_of(engine).connect(database_of(slug, engine.catalog.placement_of(slug))) as db:
        db.execute("CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, item TEXT)")
        db.executemany("INSERT INTO orders (item) VALUES (?)",
                       [(f"item {n}",) for n in range(count)])


def rows_in(path: Path) -> int:
    with closing(sqlite3.connect(path)) as db:
        return int(db.execute("SELECT count(*) FROM orders").fetchone()[0])


def test_the_least_loaded_server_with_room_is_chosen_and_a_full_pool_is_refused() -> None:
    slots = [ServerSlot("a", capacity=2), ServerSlot("b", capacity=4), ServerSlot("c",
                                                                                  draining=True)]
    assert choose_server(slots, {"a": 1, "b": 1}, pool="default").name == "b"  # 1/4 < 1/2
    assert choose_server(slots, {"a": 0, "b": 1}, pool="default").name == "a"
    with pytest.raises(PlacementError) as caught:
        choose_server(slots, {"a": 2, "b": 4}, pool="default")
    assert str(caught.value) == (
        "no server of pool 'default' can take the tenant (a: full 2/2; b: full 4/4; c: "
        "draining); add a server to the pool, raise a capacity, or move tenants away")
    with pytest.raises(PlacementError, match="server 'c' is draining"):
        choose_server(slots, {}, pool="default", named="c")
    with pytest.raises(PlacementError, match=r"server 'z' is not in pool 'default' \(its "
                       r"servers: a, b, c\)"):
        choose_server(slots, {}, pool="default", named="z")


def test_tenants_are_spread_over_servers_and_the_placement_is_recorded(
        make_engine: EngineFactory, tmp_path: Path) -> None:
    engine = make_engine(providers={"database": {"servers": servers(
        tmp_path, one=1, two=2)}})
    for slug in ("acme", "bolt", "core"):
        onboard(engine, slug)

    where = {slug: engine.catalog.placement_of(slug) for slug in ("acme", "bolt", "core")}
    assert {slug: p.server for slug, p in where.items() if p} == {
        "acme": "one", "bolt": "two", "core": "two"}
    assert (tmp_path / "one" / "tenant_acme.sqlite").is_file()
    assert (tmp_path / "two" / "tenant_core.sqlite").is_file()
    assert engine.catalog.server_loads() == {"one": 1, "two": 2}
    assert engine.providers.secrets.read("core-database-url") == \
        f"sqlite:///{tmp_path / 'two' / 'tenant_core.sqlite'}"

    run = engine.wait(engine.onboard(spec_for("dune"), requested_by="ops").id)
    assert run.status == "failed"
    assert run.failed_step == "place_database"
    assert "no server of pool 'default' can take the tenant (one: full 1/1; two: full 2/2)" \
        in (run.error or "")


def test_a_plan_places_its_tenants_on_its_pool(make_engine: EngineFactory,
                                               tmp_path: Path) -> None:
    engine = make_engine(
        providers={"database": {"servers": [
            *servers(tmp_path, shared=None),
            {"name": "gold-1", "pool": "dedicated", "directory": str(tmp_path / "gold-1")}]}},
        plans={"standard": {}, "premium": {"database": {"pool": "dedicated"}}})
    onboard(engine, "acme")
    run = engine.wait(engine.onboard(spec_for("bolt", plan="premium"), requested_by="ops").id)
    assert run.status == "succeeded", run.error

    acme, bolt = engine.catalog.placement_of("acme"), engine.catalog.placement_of("bolt")
    assert acme is not None
    assert acme.server == "shared"
    assert bolt is not None
    assert bolt.server == "gold-1"
    with pytest.raises(SpecError) as caught:
        engine.onboard(spec_for("core", plan="free"), requested_by="ops")
    assert str(caught.value) == ("invalid tenant spec: plan = 'free': must be one of "
                                 "standard, premium (the plans in the settings: [plans]); "
                                 "correct these fields and try again")


def test_a_move_copies_the_data_switches_and_removes_the_old_copy(
        make_engine: EngineFactory, tmp_path: Path) -> None:
    engine = make_engine(providers={"database": {"servers": servers(
        tmp_path, one=None, two=None)}})
    onboard(engine, "acme")
    assert engine.catalog.placement_of("acme").server == "one"  # type: ignore[union-attr]
    write_rows(engine, "acme", 250)

    run = finished(engine, engine.move("acme", server="two", grace_seconds=0,
                                       requested_by="ops"))

    assert run.kind == "update"
    assert [s.name for s in run.steps] == [
        "place_target", "create_target", "freeze_writes", "copy_data", "check_copy",
        "open_target", "switch_connection", "switch_placement", "wait_for_copy_grace_period",
        "drop_old_copy", "forget_old_copy"]
    check = next(s for s in run.steps if s.name == "check_copy")
    # orders, and the provider's own tables: tenantops_meta (2 rows), tenantops_logins (1)
    assert check.outputs == {"tables": 3, "rows": 253}
    placements = engine.catalog.placements_of("acme")
    assert [(p.state, p.server) for p in placements] == [("current", "two")]
    assert rows_in(tmp_path / "two" / "tenant_acme.sqlite") == 250
    assert not (tmp_path / "one" / "tenant_acme.sqlite").exists()
    current = database_of("acme", placements[0])
    assert sqlite_of(engine).read_metadata(current)["database"] == "tenant_acme"
    assert engine.catalog.get_tenant("acme").status == "active"
    secret = engine.providers.secrets.read("acme-database-url")
    assert secret == f"sqlite:///{tmp_path / 'two' / 'tenant_acme.sqlite'}"


def test_a_failed_move_leaves_the_tenant_on_its_old_copy_until_retried(
        make_engine: EngineFactory, tmp_path: Path) -> None:
    failing = FailStep("check_copy")
    engine = make_engine(failing, providers={"database": {"servers": servers(
        tmp_path, one=None, two=None)}})
    onboard(engine, "acme")
    write_rows(engine, "acme", 10)

    run = engine.wait(engine.move("acme", server="two", grace_seconds=0,
                                  requested_by="ops").id)
    assert run.status == "failed"
    assert run.failed_step == "check_copy"
    assert run.error is not None
    assert run.error.endswith("the write freeze ended: the tenant's login signs in to its old "
                              "copy again; a retry starts again from freeze_writes")
    assert [(p.state, p.server) for p in engine.catalog.placements_of("acme")] == [
        ("current", "one"), ("target", "two")]
    assert rows_in(tmp_path / "one" / "tenant_acme.sqlite") == 10
    # Served from the old copy meanwhile: its login signs in, and the app goes on writing.
    source = database_of("acme", engine.catalog.placement_of("acme"))
    assert sqlite_of(engine).read_metadata(source)["database"] == "tenant_acme"
    assert {s.name: s.status for s in run.steps if s.name in (
        "freeze_writes", "copy_data", "check_copy")} == {
        "freeze_writes": "pending", "copy_data": "pending", "check_copy": "failed"}
    write_rows(engine, "acme", 5)

    failing.fix()
    done = finished(engine, engine.retry(run.id))
    assert done.id == run.id
    assert [(p.state, p.server) for p in engine.catalog.placements_of("acme")] == [
        ("current", "two")]
    # Frozen and copied again: the rows written after the failure moved too.
    assert rows_in(tmp_path / "two" / "tenant_acme.sqlite") == 15
    assert done.step("freeze_writes").attempts == 2
    assert done.step("copy_data").attempts == 2


def test_an_abandoned_move_drops_its_copy_and_opens_the_old_one_again(
        make_engine: EngineFactory, tmp_path: Path) -> None:
    engine = make_engine(FailStep("copy_data"), providers={"database": {"servers": servers(
        tmp_path, one=None, two=None)}})
    onboard(engine, "acme")
    run = engine.wait(engine.move("acme", server="two", requested_by="ops").id)
    assert run.status == "failed"
    source = database_of("acme", engine.catalog.placement_of("acme"))
    assert sqlite_of(engine).read_metadata(source)["database"] == "tenant_acme"  # thawed

    undo = finished(engine, engine.move("acme", abandon=True, requested_by="ops"))

    assert [s.name for s in undo.steps] == [
        "drop_abandoned_copy", "forget_abandoned_copy", "reopen_source"]
    assert [(p.state, p.server) for p in engine.catalog.placements_of("acme")] == [
        ("current", "one")]
    assert sqlite_of(engine).read_metadata(source)["database"] == "tenant_acme"
    assert not (tmp_path / "two" / "tenant_acme.sqlite").exists()
    assert engine.catalog.get_tenant("acme").status == "active"


def test_a_cancelled_move_ends_its_write_freeze(
        make_engine: EngineFactory, tmp_path: Path) -> None:
    gate = HoldStep("copy_data")
    engine = make_engine(gate, providers={"database": {"servers": servers(
        tmp_path, one=None, two=None)}})
    onboard(engine, "acme")
    run = engine.move("acme", server="two", requested_by="ops")
    assert gate.reached.wait(60), "the move did not reach copy_data"
    source = database_of("acme", engine.catalog.placement_of("acme"))
    with pytest.raises(Exception, match="disabled"):
        sqlite_of(engine).read_metadata(source)  # frozen while it copies
    engine.cancel(run.id, requested_by="ops")
    gate.release.set()
    cancelled = engine.wait(run.id)
    assert cancelled.status == "cancelled"
    deadline = time.monotonic() + 60
    while True:  # the workflow ends the freeze as it stops, just after the run is closed
        try:
            assert sqlite_of(engine).read_metadata(source)["database"] == "tenant_acme"
            break
        except Exception:
            assert time.monotonic() < deadline, "the freeze did not end within 60 s"
            time.sleep(0.05)


def test_a_move_nowhere_or_to_a_server_outside_the_pool_is_refused(
        make_engine: EngineFactory, tmp_path: Path) -> None:
    engine = make_engine(providers={"database": {"servers": servers(tmp_path, one=None)}})
    onboard(engine, "acme")
    with pytest.raises(PlacementError) as caught:
        engine.move("acme", abandon=True, requested_by="ops")
    assert str(caught.value).startswith("tenant 'acme' has no unfinished move to abandon")
    with pytest.raises(PlacementError) as caught:
        engine.move("acme", server="elsewhere", requested_by="ops")
    assert str(caught.value) == (
        "server 'elsewhere' is not in pool 'default' of plan 'standard' (its servers: one); "
        "name one of them, or change the tenant's plan")
    with pytest.raises(PlacementError, match="already is on server 'one' in database mode"):
        engine.move("acme", server="one", requested_by="ops")
    assert engine.catalog.latest_run("acme").kind == "onboard"  # type: ignore[union-attr]
    assert [(p.state, p.server) for p in engine.catalog.placements_of("acme")] == [
        ("current", "one")]


def test_a_plan_gives_its_organization_attributes_and_a_plan_change_replaces_them(
        make_engine: EngineFactory) -> None:
    engine = make_engine(plans={
        "standard": {"organization": {"attributes": {"seats": "25"}}},
        "premium": {"organization": {"attributes": {"seats": "500", "sso": "true"}}}})
    onboard(engine, "acme")
    organization = engine.catalog.organizations.get("acme")
    assert organization is not None
    assert organization.attributes == {"seats": "25"}

    preview = engine.preview_update("acme", TenantChange(plan="premium"))
    assert {c.step: c.action for c in preview.changes}["create_organization"] == "update"
    finished(engine, engine.update("acme", TenantChange(plan="premium"), requested_by="ops"))
    organization = engine.catalog.organizations.get("acme")
    assert organization is not None
    assert organization.attributes == {"seats": "500", "sso": "true"}
    # Same mode and pool: the data stays where it is.
    assert [(p.state, p.server) for p in engine.catalog.placements_of("acme")] == [
        ("current", "default")]


def test_offboarding_drops_the_copy_an_unfinished_move_left(
        make_engine: EngineFactory, tmp_path: Path) -> None:
    engine = make_engine(FailStep("check_copy"), providers={"database": {"servers": servers(
        tmp_path, one=None, two=None)}})
    onboard(engine, "acme")
    write_rows(engine, "acme", 3)
    moved = engine.wait(engine.move("acme", server="two", requested_by="ops").id)
    assert moved.status == "failed"
    assert (tmp_path / "two" / "tenant_acme.sqlite").is_file()

    run = finished(engine, engine.offboard("acme", requested_by="ops"))

    names = [s.name for s in run.steps]
    assert names.index("drop_other_copy") < names.index("drop_database")
    assert not (tmp_path / "two" / "tenant_acme.sqlite").exists()
    assert not (tmp_path / "one" / "tenant_acme.sqlite").exists()
    assert engine.catalog.placements_of("acme") == []
    assert engine.catalog.server_loads() == {}
    with pytest.raises(PermanentProviderError, match="acme-database-url"):
        engine.providers.secrets.read("acme-database-url")


def test_a_tenant_with_no_recorded_placement_on_unlisted_default_names_the_fix(
        make_engine: EngineFactory, tmp_path: Path) -> None:
    """Tenants made before placements were recorded (or adopted) are on 'default'; with
    servers listed and none named 'default', their runs fail saying that, not only that a
    server is unknown."""
    engine = make_engine(providers={"database": {"servers": servers(tmp_path, east=None)}})
    unplaced = database_of("legacy", None)
    assert unplaced.server == "default"
    with pytest.raises(PermanentProviderError) as caught:
        sqlite_of(engine).observe(unplaced)
    message = str(caught.value)
    assert "database server 'default' is not configured (servers: east)" in message
    assert ("A tenant with no recorded placement (onboarded before placements were recorded, "
            "or adopted) is on 'default'") in message
    assert "[[providers.database.servers]] entry named 'default'" in message
    placed = database_of("legacy", {"server": "west", "database": "tenant_legacy",
                                    "schema": None, "mode": "database"})
    with pytest.raises(PermanentProviderError) as other:
        sqlite_of(engine).observe(placed)
    assert "no recorded placement" not in str(other.value), "only 'default' gets the hint"


def test_a_placement_step_run_again_after_a_crash_reports_unchanged(
        make_engine: EngineFactory, tmp_path: Path) -> None:
    """A step whose checkpoint a crash lost runs again: the record its first execution made
    is found, "unchanged" (the crash tests count a resource reported created twice)."""
    engine = make_engine(providers={"database": {"servers": servers(tmp_path, one=None)}})
    run = onboard(engine, "echo")
    placement = engine.catalog.placement_of("echo")
    assert placement is not None
    again = DatabasePlacement(
        "echo", "current", run.id, "default", "database", placement.database, None,
        server_slots(engine.settings, "default"))
    outcome = engine.providers.catalog.ensure(again)
    assert isinstance(outcome, Ready)
    assert outcome.changed is False
    assert outcome.outputs["server"] == placement.server
