"""Drift reports in the catalog (`DriftStore`): the last check per tenant, the drift events
written only when the finding changes, the fleet list and counts, and scheduled claims that
never give one tenant to two workers at once."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest

from tenantops.catalog import Catalog
from tenantops.errors import CatalogError, TenantNotFoundError
from tests.catalog.test_lifecycle_runs import Spec, onboarded

MISSING: list[dict[str, Any]] = [{"step": "create_organization", "resource": "organization:acme",
                                  "state": "missing", "differences": []}]
IN_SYNC: list[dict[str, Any]] = [{"step": "create_organization", "resource": "organization:acme",
                                  "state": "in_sync", "differences": []}]


def drift_events(catalog: Catalog, slug: str) -> list[str]:
    return [e.event.type for e in reversed(catalog.events.history(slug))
            if ".drift." in e.event.type]


def test_events_are_written_when_the_finding_changes_only(catalog: Catalog) -> None:
    onboarded(catalog)
    catalog.drift.record("acme", state="in_sync", resources=IN_SYNC, checked_by="t")
    catalog.drift.record("acme", state="missing", resources=MISSING, checked_by="t")
    catalog.drift.record("acme", state="missing", resources=MISSING, checked_by="t")
    catalog.drift.record("acme", state="in_sync", resources=IN_SYNC, checked_by="t")

    assert drift_events(catalog, "acme") == ["com.tenantops.drift.detected",
                                             "com.tenantops.drift.resolved"]
    [detected] = [e.event for e in catalog.events.history("acme")
                  if e.event.type.endswith("detected")]
    assert detected.data["drift"] == {"state": "missing", "resources": [
        {"resource": "organization:acme", "state": "missing", "differences": []}]}
    last = catalog.last_drift("acme")
    assert last is not None
    assert (last.state, last.status, last.off_track) == ("in_sync", "active", ())


def test_the_fleet_list_filters_by_state_and_counts_the_unchecked(catalog: Catalog) -> None:
    onboarded(catalog)
    onboarded(catalog, Spec("bravo", custom_domain="portal.bravo.test"))
    onboarded(catalog, Spec("charlie", custom_domain="portal.charlie.test"))
    catalog.drift.record("acme", state="missing", resources=MISSING, checked_by="t")
    catalog.drift.record("bravo", state="in_sync", resources=IN_SYNC, checked_by="t")

    missing, total = catalog.drift.page(states=["missing", "drifted"])
    assert ([r.slug for r in missing], total) == (["acme"], 1)
    everything, total = catalog.drift.page()
    assert (sorted(r.slug for r in everything), total) == (["acme", "bravo"], 2)
    assert catalog.drift.counts() == {"in_sync": 1, "drifted": 0, "missing": 1, "unknown": 0,
                                      "unchecked": 1}
    assert catalog.drift.settled_slugs() == ["acme", "bravo", "charlie"]


def test_an_unknown_state_or_tenant_is_refused(catalog: Catalog) -> None:
    onboarded(catalog)
    with pytest.raises(CatalogError, match="drift state 'sideways' is not one of in_sync"):
        catalog.drift.record("acme", state="sideways", resources=[],  # type: ignore[arg-type]
                             checked_by="t")
    with pytest.raises(TenantNotFoundError):
        catalog.drift.record("nosuch", state="in_sync", resources=[], checked_by="t")
    assert catalog.last_drift("acme") is None


def test_a_due_tenant_is_claimed_by_one_worker_only(catalog: Catalog) -> None:
    for index in range(6):
        onboarded(catalog, Spec(f"t{index}x", custom_domain=f"portal.t{index}x.test"))
    every, hold = dt.timedelta(hours=1), dt.timedelta(minutes=5)
    claims: dict[str, list[str]] = {}
    start = threading.Barrier(3)

    def claim(worker: str) -> None:
        start.wait()
        claims[worker] = catalog.drift.claim_due(every=every, by=worker, limit=10,
                                                 claim_for=hold)

    threads = [threading.Thread(target=claim, args=(f"w{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    claimed = [slug for slugs in claims.values() for slug in slugs]
    assert sorted(claimed) == [f"t{i}x" for i in range(6)]  # each once, none twice
    assert catalog.drift.claim_due(every=every, by="w9", limit=10, claim_for=hold) == []
    catalog.drift.record("t0x", state="in_sync", resources=IN_SYNC, checked_by="t")
    # Checked just now: not due again within the interval; the others stay claimed.
    assert catalog.drift.claim_due(every=every, by="w9", limit=10, claim_for=hold) == []
    # A claim older than claim_for is a dead worker's: it is taken over.
    assert sorted(catalog.drift.claim_due(every=every, by="w9", limit=10,
                                          claim_for=dt.timedelta(0))) == [
        f"t{i}x" for i in range(1, 6)]
