"""The placement store on SQLite and PostgreSQL: a copy is placed and recorded in one
transaction (concurrent placements never overfill a server), a repeated step gets the same
server, a switch makes the target current and the old copy retiring, and its grace period
starts once."""

from __future__ import annotations

import threading

import pytest

from tenantops.catalog import Catalog, Placement, ServerSlot
from tenantops.errors import CatalogError, PlacementError

from .test_domain_claims import STEPS, Spec


def tenant(catalog: Catalog, slug: str) -> str:
    opened = catalog.open_onboarding(Spec(slug, f"app.{slug}.test"), requested_by="t",
                                     steps=STEPS)
    return opened.run.id


def place(catalog: Catalog, slug: str, run_id: str, slots: list[ServerSlot], *,
          state: str = "current", named: str | None = None) -> Placement:
    return catalog.placements.place(
        slug, state=state, run_id=run_id, candidates=slots,  # type: ignore[arg-type]
        pool="default", mode="database", database=f"tenant_{slug}", schema=None,
        details={}, named=named)


def test_concurrent_placements_never_overfill_a_server(catalog: Catalog) -> None:
    slots = [ServerSlot("small", capacity=2), ServerSlot("tiny", capacity=1)]
    runs = {f"racer{i}": tenant(catalog, f"racer{i}") for i in range(6)}
    barrier = threading.Barrier(len(runs))
    outcomes: dict[str, Placement | BaseException] = {}

    def attempt(slug: str) -> None:
        barrier.wait()
        try:
            outcomes[slug] = place(catalog, slug, runs[slug], slots)
        except BaseException as exc:  # collected and asserted below
            outcomes[slug] = exc

    threads = [threading.Thread(target=attempt, args=(slug,)) for slug in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    placed = [o for o in outcomes.values() if isinstance(o, Placement)]
    refused = [o for o in outcomes.values() if not isinstance(o, Placement)]
    assert sorted(p.server for p in placed) == ["small", "small", "tiny"]
    assert len(refused) == 3
    assert all(isinstance(e, PlacementError) for e in refused), refused
    assert catalog.server_loads() == {"small": 2, "tiny": 1}


def test_a_repeated_placement_gets_the_same_server_and_a_switch_retires_the_old_copy(
        catalog: Catalog) -> None:
    run = tenant(catalog, "acme")
    slots = [ServerSlot("a"), ServerSlot("b")]
    first = place(catalog, "acme", run, slots)
    assert place(catalog, "acme", run, [ServerSlot("b")]).server == first.server == "a"

    with pytest.raises(CatalogError, match="has no copy made by run move-1"):
        catalog.placements.switch("acme", "move-1")
    target = place(catalog, "acme", "move-1", slots, state="target", named="b")
    with pytest.raises(PlacementError, match="still has a copy on server 'b' made by move "
                       "run move-1"):
        place(catalog, "acme", "move-2", slots, state="target", named="b")
    switched = catalog.placements.switch("acme", "move-1")
    assert (switched.state, switched.server) == ("current", target.server)
    assert catalog.placements.switch("acme", "move-1") == switched  # idempotent
    assert [(p.state, p.server, p.run_id) for p in catalog.placements_of("acme")] == [
        ("current", "b", "move-1"), ("retiring", "a", "move-1")]

    ends = catalog.placements.start_grace("acme", "move-1", 3600)
    assert catalog.placements.start_grace("acme", "move-1", 7200) == ends  # started once
    assert catalog.placements.release("acme", server="a", database="tenant_acme", schema=None)
    assert [p.state for p in catalog.placements_of("acme")] == ["current"]
    assert catalog.server_loads() == {"b": 1}
