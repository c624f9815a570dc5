"""Runs of every kind opened one way, on SQLite and PostgreSQL: an update claims its new
domain and keeps the old one claimed while it retires it; a change to a tenant with a run in
progress is a conflict naming that run; the tenant's status decides which kinds may start;
repeated requests return their run; an update prepared from values changed meanwhile is
refused."""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field
from typing import Any

import pytest

from tenantops.catalog import Catalog, RunRequest, StepTemplate
from tenantops.errors import (
    DomainConflictError,
    RunConflictError,
    TenantConflictError,
    TenantStateError,
)

STEPS = [StepTemplate("one", "catalog:sqlite", "ensure")]


@dataclass(frozen=True)
class Spec:
    slug: str = "acme"
    display_name: str = "Acme"
    custom_domain: str = "portal.acme.test"
    plan: str = "standard"
    admin_email: str = "admin@acme.test"
    tags: dict[str, str] = field(default_factory=dict)


def onboarded(catalog: Catalog, spec: Spec | None = None) -> Spec:
    spec = spec or Spec()
    run = catalog.open_onboarding(spec, requested_by="t", steps=STEPS).run
    catalog.finish_run(run.id, "succeeded")
    return spec


def update_request(before: Spec, *, retiring: tuple[str, ...] | None = None,
                   suspended: bool = False, **after: Any) -> RunRequest:
    new = dataclasses.replace(before, **after)
    changes = {name: {"from": getattr(before, name), "to": value}
               for name, value in after.items()}
    if retiring is None:
        retiring = (before.custom_domain,) if "custom_domain" in after else ()
    return RunRequest("update", before.slug, "t", STEPS,
                      {"changes": changes, "suspended": suspended}, spec=new, retiring=retiring)


def state_request(kind: str, slug: str = "acme", *, reason: str = "why",
                  retiring: tuple[str, ...] = ()) -> RunRequest:
    return RunRequest(kind, slug, "t", STEPS, {"reason": reason},  # type: ignore[arg-type]
                      retiring=retiring)


def test_update_writes_the_new_values_and_keeps_the_old_domain_claimed(
        catalog: Catalog) -> None:
    before = onboarded(catalog)
    opened = catalog.open_run(update_request(before, custom_domain="www.acme.test",
                                             plan="premium"))
    assert opened.created
    assert (opened.run.kind, opened.run.status) == ("update", "pending")
    assert opened.run.options["changes"]["custom_domain"] == {
        "from": "portal.acme.test", "to": "www.acme.test"}
    tenant = catalog.get_tenant("acme")
    assert (tenant.status, tenant.custom_domain, tenant.plan) == (
        "updating", "www.acme.test", "premium")
    assert [(r.domain, r.run_id) for r in catalog.retiring_domains_of("acme")] == [
        ("portal.acme.test", opened.run.id)]
    assert catalog.tenant_for_hostname("portal.acme.test") == tenant
    with pytest.raises(DomainConflictError, match="is the custom domain of another tenant"):
        catalog.open_onboarding(Spec(slug="other", custom_domain="portal.acme.test"),
                                requested_by="t", steps=STEPS)
    with pytest.raises(DomainConflictError, match="below"):
        catalog.open_onboarding(Spec(slug="other", custom_domain="x.portal.acme.test"),
                                requested_by="t", steps=STEPS)
    catalog.finish_run(opened.run.id, "succeeded")
    assert catalog.get_tenant("acme").status == "active"
    catalog.retiring_domains.release("acme", ["portal.acme.test"])
    assert catalog.tenant_for_hostname("portal.acme.test") is None
    assert catalog.open_onboarding(Spec(slug="other", custom_domain="portal.acme.test"),
                                   requested_by="t", steps=STEPS).created


def test_claiming_a_domain_another_tenant_is_retiring_is_refused(catalog: Catalog) -> None:
    before = onboarded(catalog)
    catalog.open_run(update_request(before, custom_domain="www.acme.test"))
    for claimed, how in (("portal.acme.test", "is the custom domain of"),
                         ("deep.portal.acme.test", "is below the custom domain of"),
                         ("acme.test", "is above the custom domain of")):
        with pytest.raises(DomainConflictError, match=how) as caught:
            catalog.open_onboarding(Spec(slug="mallory", custom_domain=claimed),
                                    requested_by="t", steps=STEPS)
        assert caught.value.holder == "acme"
    assert catalog.find_tenant("mallory") is None


def test_update_to_another_tenants_domain_is_refused_and_nothing_changes(
        catalog: Catalog) -> None:
    before = onboarded(catalog)
    onboarded(catalog, Spec(slug="globex", custom_domain="portal.globex.test"))
    with pytest.raises(DomainConflictError) as caught:
        catalog.open_run(update_request(before, custom_domain="portal.globex.test"))
    assert caught.value.holder == "globex"
    tenant = catalog.get_tenant("acme")
    assert (tenant.status, tenant.custom_domain) == ("active", "portal.acme.test")
    assert catalog.retiring_domains_of("acme") == []
    assert len(catalog.list_runs("acme")) == 1


def test_a_change_while_a_run_is_in_progress_names_that_run(catalog: Catalog) -> None:
    before = onboarded(catalog)
    first = catalog.open_run(update_request(before, plan="premium")).run
    repeated = catalog.open_run(update_request(before, plan="premium"))
    assert (repeated.created, repeated.run.id) == (False, first.id)
    for request in (update_request(before, display_name="Acme 2"), state_request("suspend")):
        with pytest.raises(RunConflictError, match=rf"run in progress \(update run {first.id}, "
                           r"pending\); wait for it or cancel it") as caught:
            catalog.open_run(request)
        assert caught.value.active_run_id == first.id
    with pytest.raises(RunConflictError, match=first.id):
        catalog.open_offboarding("acme", requested_by="t", keep_database=False, steps=STEPS)


def test_a_change_prepared_from_stale_values_is_refused(catalog: Catalog) -> None:
    before = onboarded(catalog)
    run = catalog.open_run(update_request(before, plan="premium")).run
    catalog.finish_run(run.id, "succeeded")
    with pytest.raises(TenantConflictError,
                       match=r"changed since this update was prepared \(plan: now 'premium', "
                             r"the change was made from 'standard'\)"):
        catalog.open_run(update_request(before, plan="free"))
    with pytest.raises(TenantConflictError, match=r"it serves no retiring domains, the plan was "
                                                  r"made for portal\.acme\.test"):
        catalog.open_run(update_request(dataclasses.replace(before, plan="premium"),
                                        display_name="X", retiring=("portal.acme.test",)))


def test_suspend_and_resume_move_the_tenant_through_its_statuses(catalog: Catalog) -> None:
    onboarded(catalog)
    suspension = catalog.open_run(state_request("suspend", reason="unpaid")).run
    assert catalog.get_tenant("acme").status == "suspending"
    assert suspension.options == {"reason": "unpaid"}
    catalog.finish_run(suspension.id, "succeeded")
    assert catalog.get_tenant("acme").status == "suspended"
    again = catalog.open_run(state_request("suspend", reason="other"))
    assert (again.created, again.run.id) == (False, suspension.id)
    resumption = catalog.open_run(state_request("resume")).run
    assert catalog.get_tenant("acme").status == "resuming"
    catalog.finish_run(resumption.id, "succeeded")
    assert catalog.get_tenant("acme").status == "active"
    repeated = catalog.open_run(state_request("resume"))
    assert (repeated.created, repeated.run.id) == (False, resumption.id)


def test_resuming_an_active_tenant_says_there_is_nothing_to_resume(catalog: Catalog) -> None:
    onboarded(catalog)
    with pytest.raises(TenantStateError, match="'acme' is active, not suspended; there is "
                                               "nothing to resume"):
        catalog.open_run(state_request("resume"))


def test_a_tenant_not_yet_onboarded_cannot_be_changed(catalog: Catalog) -> None:
    run = catalog.open_onboarding(Spec(), requested_by="t", steps=STEPS).run
    catalog.cancel_run(run.id)
    for kind in ("suspend", "update"):
        request = (update_request(Spec(), plan="free") if kind == "update"
                   else state_request(kind))
        with pytest.raises(TenantStateError,
                           match=rf"'acme' is failed: its onboard run {run.id} ended cancelled; "
                                 rf"retry that run \(tenantops runs retry {run.id}\)"):
            catalog.open_run(request)


def test_a_failed_update_can_be_put_right_by_another_update(catalog: Catalog) -> None:
    before = onboarded(catalog)
    first = catalog.open_run(update_request(before, custom_domain="www.acme.test")).run
    catalog.finish_run(first.id, "failed", error="boom", failed_step="one")
    assert catalog.get_tenant("acme").status == "failed"
    moved = dataclasses.replace(before, custom_domain="www.acme.test")
    back = catalog.open_run(update_request(moved, custom_domain="portal.acme.test",
                                           retiring=("www.acme.test",))).run
    assert catalog.get_tenant("acme").custom_domain == "portal.acme.test"
    assert [r.domain for r in catalog.retiring_domains_of("acme")] == ["www.acme.test"]
    catalog.finish_run(back.id, "succeeded")
    assert catalog.get_tenant("acme").status == "active"


def test_an_update_of_a_suspended_tenant_leaves_it_suspended(catalog: Catalog) -> None:
    before = onboarded(catalog)
    suspension = catalog.open_run(state_request("suspend")).run
    catalog.finish_run(suspension.id, "succeeded")
    with pytest.raises(TenantConflictError, match="is suspended now"):
        catalog.open_run(update_request(before, plan="free", suspended=False))
    run = catalog.open_run(update_request(before, plan="free", suspended=True)).run
    catalog.finish_run(run.id, "succeeded")
    assert catalog.get_tenant("acme").status == "suspended"


def test_offboarding_a_suspended_tenant_is_allowed(catalog: Catalog) -> None:
    onboarded(catalog)
    suspension = catalog.open_run(state_request("suspend")).run
    catalog.finish_run(suspension.id, "succeeded")
    off = catalog.open_offboarding("acme", requested_by="t", keep_database=False, steps=STEPS)
    assert off.created
    catalog.finish_run(off.run.id, "succeeded")
    assert catalog.get_tenant("acme").status == "offboarded"


def test_onboarding_again_with_the_current_spec_returns_the_onboarding_run(
        catalog: Catalog) -> None:
    before = onboarded(catalog)
    onboarding = catalog.list_runs("acme")[0]
    run = catalog.open_run(update_request(before, plan="premium")).run
    catalog.finish_run(run.id, "succeeded")
    again = catalog.open_onboarding(dataclasses.replace(before, plan="premium"),
                                    requested_by="t", steps=STEPS)
    assert (again.created, again.run.id) == (False, onboarding.id)
    with pytest.raises(TenantConflictError, match="tenantops tenants update"):
        catalog.open_onboarding(before, requested_by="t", steps=STEPS)


def test_concurrent_changes_open_exactly_one_run(catalog: Catalog) -> None:
    before = onboarded(catalog)
    requests = [update_request(before, plan="premium"), update_request(before, plan="free"),
                state_request("suspend"), state_request("suspend")] * 2
    outcomes: list[object] = []
    barrier = threading.Barrier(len(requests))

    def attempt(request: RunRequest) -> None:
        barrier.wait()
        try:
            outcomes.append(catalog.open_run(request))
        except (RunConflictError, TenantConflictError) as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=attempt, args=(r,)) for r in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    runs = catalog.list_runs("acme")
    assert len(runs) == 2  # the onboarding and exactly one change
    assert sum(1 for o in outcomes if getattr(o, "created", False)) == 1
