"""Lifecycle events in the catalog, on SQLite and PostgreSQL: each transition writes one
event in its own transaction, with types derived from the run's kind and status; the
history says what changed; routing, ordering per tenant and the dispatcher's lease."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pytest
from sqlalchemy import func, select

from tenantops.catalog import Catalog, StepTemplate
from tenantops.catalog.events import past_tense, record, tenant_subject, type_matches
from tenantops.catalog.models import EventRow
from tenantops.catalog.runs import _new_run
from tenantops.catalog.tenants import tenant_row
from tenantops.errors import CatalogError, EventDeliveryNotFoundError, TenantConflictError

STEPS = [StepTemplate("register_tenant", "catalog:catalog", "ensure"),
         StepTemplate("create_database", "database:sqlite", "ensure")]
T0 = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.timezone.utc)


@dataclass
class Spec:
    slug: str
    display_name: str = "Acme Corp"
    custom_domain: str = ""
    plan: str = "standard"
    admin_email: str = "admin@acme.test"
    tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.custom_domain = self.custom_domain or f"portal.{self.slug}.test"


def types_of(catalog: Catalog, slug: str) -> list[str]:
    return [e.type.removeprefix("com.tenantops.") for e in catalog.events.page(tenant=slug)]


def onboard(catalog: Catalog, slug: str, by: str = "ops@contoso.test") -> str:
    return catalog.open_onboarding(Spec(slug), requested_by=by, steps=STEPS).run.id


def test_an_onboarding_that_succeeds_writes_requested_started_onboarded(catalog: Catalog
                                                                          ) -> None:
    run_id = onboard(catalog, "acme")
    for step in STEPS:
        catalog.step_started(run_id, step.name)
        catalog.step_succeeded(run_id, step.name, {}, {})
    catalog.finish_run(run_id, "succeeded")

    events = catalog.events.page(tenant="acme")
    assert [e.type for e in events] == ["com.tenantops.run.requested",
                                        "com.tenantops.run.started",
                                        "com.tenantops.tenant.onboarded"]
    assert [e.seq for e in events] == sorted(e.seq for e in events)
    requested = events[0]
    assert requested.subject == tenant_subject("acme") == "tenants/acme"
    assert requested.run_id == run_id
    assert requested.actor == "ops@contoso.test"
    assert requested.data["run"] == {"id": run_id, "kind": "onboard", "status": "pending",
                                     "requested_by": "ops@contoso.test", "retries": 0}
    assert requested.data["tenant"]["status"] == "provisioning"
    assert requested.data["tenant"]["custom_domain"] == "portal.acme.test"
    assert events[2].data["tenant"]["status"] == "active"
    assert events[2].data["run"]["status"] == "succeeded"


def test_a_step_that_fails_then_a_retry_then_success(catalog: Catalog) -> None:
    run_id = onboard(catalog, "bravo")
    catalog.step_started(run_id, "register_tenant")
    catalog.step_succeeded(run_id, "register_tenant", {}, {})
    catalog.step_started(run_id, "create_database")
    catalog.step_failed(run_id, "create_database", "database:sqlite: disk full")
    catalog.finish_run(run_id, "failed", error="create_database failed: disk full",
                       failed_step="create_database")
    catalog.reopen_run(run_id, by="oncall@contoso.test")
    catalog.step_started(run_id, "create_database")
    catalog.step_succeeded(run_id, "create_database", {}, {})
    catalog.finish_run(run_id, "succeeded")

    assert types_of(catalog, "bravo") == [
        "run.requested", "run.started", "step.failed", "tenant.failed", "run.retried",
        "run.started", "tenant.onboarded"]
    events = catalog.events.page(tenant="bravo")
    step = events[2].data["step"]
    assert step == {"name": "create_database", "provider": "database:sqlite",
                    "action": "ensure", "attempts": 1, "error": "database:sqlite: disk full"}
    assert events[3].data["failed_step"] == "create_database"
    assert events[3].data["tenant"]["status"] == "failed"
    assert events[4].actor == "oncall@contoso.test"
    assert events[4].data["from_step"] == "create_database"
    assert events[4].data["run"]["retries"] == 1


def test_a_step_whose_wait_ran_out_fails_once_with_the_run(catalog: Catalog) -> None:
    run_id = onboard(catalog, "charlie")
    catalog.step_started(run_id, "register_tenant")
    catalog.step_waiting(run_id, "register_tenant", status="waiting", message="not yet")
    catalog.finish_run(run_id, "failed", error="still pending", failed_step="register_tenant")
    catalog.finish_run(run_id, "failed", error="again", failed_step="register_tenant")
    assert types_of(catalog, "charlie") == ["run.requested", "run.started", "step.failed",
                                            "tenant.failed"]


def test_cancel_and_offboard_name_who_asked(catalog: Catalog) -> None:
    run_id = onboard(catalog, "delta")
    catalog.cancel_run(run_id, by="alice@contoso.test")
    off = catalog.open_offboarding("delta", requested_by="bob@contoso.test",
                                   keep_database=True, steps=STEPS).run.id
    catalog.finish_run(off, "succeeded")
    events = catalog.events.page(tenant="delta")
    assert [(e.type.removeprefix("com.tenantops."), e.actor) for e in events] == [
        ("run.requested", "ops@contoso.test"), ("run.cancelled", "alice@contoso.test"),
        ("run.requested", "bob@contoso.test"), ("tenant.offboarded", "bob@contoso.test")]
    assert events[1].data["tenant"]["status"] == "failed"
    assert events[2].data["run"]["kind"] == "offboard"
    assert events[2].data["options"] == {"keep_database": True}


def test_a_new_kind_of_run_gets_events_without_code_of_its_own(catalog: Catalog) -> None:
    catalog.finish_run(onboard(catalog, "echo"), "succeeded")
    with catalog.database.session(write=True) as s:
        tenant = tenant_row(s, "echo")
        suspend = _new_run(s, tenant, "suspend", "ops@contoso.test",
                           {"reason": "unpaid", "api_secret": "hunter2"}, STEPS)
        suspend_id = suspend.id
    catalog.finish_run(suspend_id, "succeeded")
    events = catalog.events.page(tenant="echo", run_id=suspend_id)
    assert [e.type for e in events] == ["com.tenantops.run.requested",
                                        "com.tenantops.tenant.suspended"]
    assert events[0].data["run"]["kind"] == "suspend"
    assert events[0].data["options"] == {"reason": "unpaid", "api_secret": "[redacted]"}


@pytest.mark.parametrize(("kind", "word"), [
    ("onboard", "onboarded"), ("offboard", "offboarded"), ("update", "updated"),
    ("suspend", "suspended"), ("resume", "resumed"), ("move", "moved"),
    ("reconcile", "reconciled"), ("import", "imported"), ("migrate", "migrated")])
def test_past_tense_of_each_kind(kind: str, word: str) -> None:
    assert past_tense(kind) == word


def test_a_refused_request_writes_no_event(catalog: Catalog) -> None:
    onboard(catalog, "foxtrot")
    before = catalog.events.last_seq()
    with pytest.raises(TenantConflictError):
        catalog.open_onboarding(Spec("foxtrot", plan="premium"), requested_by="x",
                                steps=STEPS)
    catalog.open_onboarding(Spec("foxtrot"), requested_by="again", steps=STEPS)  # same run
    assert catalog.events.last_seq() == before


def test_the_event_is_written_in_the_transaction_of_the_change(catalog: Catalog) -> None:
    """A transaction that fails after the event was written leaves neither."""
    catalog.finish_run(onboard(catalog, "golf"), "failed", error="x")

    def change_that_fails() -> None:
        with catalog.database.session(write=True) as s:
            _new_run(s, tenant_row(s, "golf"), "onboard", "ops", {}, STEPS)
            raise RuntimeError("the change fails after its event was written")

    with pytest.raises(RuntimeError):
        change_that_fails()
    assert types_of(catalog, "golf") == ["run.requested", "tenant.failed"]
    with catalog.database.session(write=False) as s:
        assert s.scalar(select(func.count()).select_from(EventRow)) == 2


def test_record_refuses_a_type_outside_tenantops_prefix(catalog: Catalog) -> None:
    with catalog.database.session(write=True) as s, \
            pytest.raises(CatalogError, match=r"com\.tenantops\."):
        record(s, type="tenant.onboarded", subject="tenants/x", data={})


def test_history_says_what_changed_by_whom_in_which_run(catalog: Catalog) -> None:
    run_id = onboard(catalog, "hotel")
    catalog.finish_run(run_id, "succeeded")
    with catalog.database.session(write=True) as s:
        tenant = tenant_row(s, "hotel")
        update = _new_run(s, tenant, "update", "carol@contoso.test",
                          {"plan": "premium"}, STEPS)
        update_id = update.id
    with catalog.database.session(write=True) as s:
        tenant_row(s, "hotel").plan = "premium"  # what an update's step does
    catalog.finish_run(update_id, "succeeded")

    entries = catalog.events.history("hotel")
    assert [e.event.type.removeprefix("com.tenantops.") for e in entries] == [
        "tenant.updated", "run.requested", "tenant.onboarded", "run.requested"]
    updated, update_requested, onboarded, requested = entries
    # (the tenant's status after an update is the lifecycle's to decide, not the events')
    assert updated.changes["plan"] == ("standard", "premium")
    assert updated.event.actor == "carol@contoso.test"
    assert updated.event.run_id == update_id
    assert updated.run_kind == "update"
    assert update_requested.changes == {}, "opening the run changed no field here"
    assert onboarded.changes == {"status": ("provisioning", "active")}
    assert requested.changes["custom_domain"] == (None, "portal.hotel.test")
    older = catalog.events.history("hotel", before=onboarded.event.seq)
    assert [e.event.seq for e in older] == [requested.event.seq]


def test_page_filters_and_cursors(catalog: Catalog) -> None:
    first = onboard(catalog, "india")
    catalog.finish_run(first, "succeeded")
    second = onboard(catalog, "juliet")
    catalog.finish_run(second, "failed", error="boom")
    every = catalog.events.page()
    assert [e.tenant_slug for e in every] == ["india", "india", "juliet", "juliet"]
    assert [e.type for e in catalog.events.page(types=["com.tenantops.tenant.*"])] == [
        "com.tenantops.tenant.onboarded", "com.tenantops.tenant.failed"]
    assert [e.run_id for e in catalog.events.page(run_id=second)] == [second, second]
    assert [e.seq for e in catalog.events.page(after=every[1].seq, limit=1)] == [every[2].seq]
    assert [e.seq for e in catalog.events.page(newest_first=True, limit=2)] == [
        every[3].seq, every[2].seq]
    assert [e.seq for e in catalog.events.page(before=every[1].seq)] == [every[0].seq]
    stamp = every[2].time
    assert all(e.time >= stamp for e in catalog.events.page(since=stamp))
    assert catalog.events.page(until=every[0].time) == []
    assert catalog.events.page(types=["com.tenantops.fleet.*"]) == []
    assert catalog.events.get(every[0].id) == every[0]
    assert catalog.events.last_seq() == every[-1].seq


@pytest.mark.parametrize(("event_type", "patterns", "expected"), [
    ("com.tenantops.tenant.onboarded", [], True),
    ("com.tenantops.tenant.onboarded", ["*"], True),
    ("com.tenantops.tenant.onboarded", ["com.tenantops.tenant.*"], True),
    ("com.tenantops.run.started", ["com.tenantops.tenant.*"], False),
    ("com.tenantops.step.failed", ["com.tenantops.tenant.failed", "com.tenantops.*.failed"],
     True),
])
def test_type_filters(event_type: str, patterns: list[str], expected: bool) -> None:
    assert type_matches(event_type, patterns) is expected


def test_routing_sends_one_subject_in_order_and_a_parked_delivery_does_not_block(
        catalog: Catalog) -> None:
    for slug in ("kilo", "lima"):
        run_id = onboard(catalog, slug)
        catalog.finish_run(run_id, "succeeded")
    events = catalog.events.unrouted()
    assert len(events) == 4
    catalog.events.route({e.seq: ["webhook:a", "event-grid"] for e in events},
                         ordering_keys={e.seq: e.subject for e in events}, at=T0)
    assert catalog.events.unrouted() == []
    due = catalog.events.due(T0, sinks=["webhook:a"])
    assert [(d.sink, e.tenant_slug, e.type) for d, e in due] == [
        ("webhook:a", "kilo", "com.tenantops.run.requested"),
        ("webhook:a", "lima", "com.tenantops.run.requested")]
    kilo_first, lima_first = (d for d, _ in due)
    catalog.events.attempted(kilo_first.id, at=T0, delivered=False, status_code=503,
                             error="503", next_attempt_at=T0 + dt.timedelta(seconds=30))
    catalog.events.attempted(lima_first.id, at=T0, delivered=True, status_code=204)
    due = catalog.events.due(T0 + dt.timedelta(seconds=1), sinks=["webhook:a"])
    assert [(e.tenant_slug, e.type) for _, e in due] == [
        ("lima", "com.tenantops.tenant.onboarded")], "kilo waits for its first event"
    assert catalog.events.next_due() == T0
    catalog.events.attempted(kilo_first.id, at=T0, delivered=False, error="gone",
                             next_attempt_at=None)
    due = catalog.events.due(T0 + dt.timedelta(seconds=1), sinks=["webhook:a"])
    assert {(e.tenant_slug, e.type) for _, e in due} == {
        ("kilo", "com.tenantops.tenant.onboarded"), ("lima", "com.tenantops.tenant.onboarded")}
    parked = catalog.events.deliveries(status="parked")
    assert [(p.id, p.attempts, p.last_error) for p in parked] == [(kilo_first.id, 2, "gone")]
    assert parked[0].first_attempt_at == T0
    counts = catalog.events.counts()
    assert counts == {"pending": 6, "delivered": 1, "parked": 1, "unrouted": 0}
    again = catalog.events.redeliver(kilo_first.id)
    assert (again.status, again.first_attempt_at) == ("pending", None)
    with pytest.raises(EventDeliveryNotFoundError, match="tenantops events deliveries"):
        catalog.events.redeliver(999999)


def test_the_lease_lets_one_dispatcher_send(catalog: Catalog) -> None:
    events = catalog.events
    assert events.take_lease("w1:aaa", at=T0, seconds=30)
    assert events.lease_holder(T0) == "w1:aaa"
    assert not events.take_lease("w2:bbb", at=T0 + dt.timedelta(seconds=10), seconds=30)
    assert events.take_lease("w1:aaa", at=T0 + dt.timedelta(seconds=20), seconds=30), "renewal"
    assert not events.take_lease("w2:bbb", at=T0 + dt.timedelta(seconds=49), seconds=30)
    assert events.take_lease("w2:bbb", at=T0 + dt.timedelta(seconds=51), seconds=30), "expired"
    asked: list[str] = []

    def gone(holder: str) -> bool:
        asked.append(holder)
        return holder == "w2:bbb"

    assert events.take_lease("w2:ccc", at=T0 + dt.timedelta(seconds=52), seconds=30,
                             replaceable=gone), "a holder that is gone is replaced at once"
    assert not events.take_lease("w1:ddd", at=T0 + dt.timedelta(seconds=53), seconds=30,
                                 replaceable=gone)
    assert asked == ["w2:bbb", "w2:ccc"]
    events.release_lease("w2:ccc")
    assert events.lease_holder(T0 + dt.timedelta(seconds=53)) is None
    assert events.take_lease("w1:ddd", at=T0 + dt.timedelta(seconds=53), seconds=30)
