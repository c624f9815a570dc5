"""Claims the catalog decides in the transaction that opens a run, on SQLite and PostgreSQL:
a custom domain equal to, above or below another live tenant's, and ``Idempotency-Key``s
scoped to their caller. Concurrent claims: exactly one wins."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from tenantops.catalog import Catalog, IdempotencyClaim, OpenedRun, StepTemplate
from tenantops.errors import (
    DomainConflictError,
    IdempotencyKeyReusedError,
    TenantConflictError,
)

STEPS = [StepTemplate("register", "catalog:sqlite", "ensure")]


@dataclass(frozen=True)
class Spec:
    slug: str
    custom_domain: str
    display_name: str = "Tenant"
    plan: str = "standard"
    admin_email: str = "admin@tenant.test"
    tags: dict[str, str] = field(default_factory=dict)


def open_tenant(catalog: Catalog, slug: str, domain: str, **kwargs: object) -> OpenedRun:
    return catalog.open_onboarding(Spec(slug, domain), requested_by="t", steps=STEPS,
                                   **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(("claimed", "relation"), [
    ("portal.shared.test", "equal"),
    ("x.portal.shared.test", "below"),
    ("asuid.portal.shared.test", "below"),
    ("_tenantops-challenge.portal.shared.test", "below"),
    ("deep.x.portal.shared.test", "below"),
])
def test_claim_equal_to_or_below_another_tenants_domain_is_refused_naming_nobody(
        catalog: Catalog, claimed: str, relation: str) -> None:
    open_tenant(catalog, "incumbent", "portal.shared.test")
    with pytest.raises(DomainConflictError) as caught:
        open_tenant(catalog, "second", claimed)
    error = caught.value
    assert (error.relation, error.holder, error.holder_domain) == (
        relation, "incumbent", "portal.shared.test")
    message = str(error)
    assert "incumbent" not in message
    assert "portal.shared.test" not in message.replace(claimed, "")
    assert "another tenant" in message
    assert catalog.find_tenant("second") is None
    assert len(catalog.list_runs()) == 1


def test_claim_above_another_tenants_domain_is_refused(catalog: Catalog) -> None:
    open_tenant(catalog, "incumbent", "x.portal.shared.test")
    with pytest.raises(DomainConflictError) as caught:
        open_tenant(catalog, "second", "portal.shared.test")
    assert caught.value.relation == "above"
    assert "is above the custom domain of another tenant" in str(caught.value)


def test_conflict_names_the_other_tenant_only_when_asked(catalog: Catalog) -> None:
    open_tenant(catalog, "incumbent", "portal.shared.test")
    with pytest.raises(DomainConflictError) as caught:
        open_tenant(catalog, "second", "x.portal.shared.test")
    named = str(caught.value.naming_holder())
    assert "is below the custom domain of tenant 'incumbent' (portal.shared.test)" in named
    assert isinstance(caught.value, TenantConflictError)


def test_siblings_and_lookalikes_are_not_conflicts(catalog: Catalog) -> None:
    open_tenant(catalog, "incumbent", "portal.shared.test")
    open_tenant(catalog, "second", "shop.shared.test")
    open_tenant(catalog, "third", "xportal.shared.test")
    open_tenant(catalog, "fourth", "portal.shared.test2")
    assert len(catalog.list_tenants()) == 4


def test_domain_of_an_offboarded_tenant_is_free_again(catalog: Catalog) -> None:
    open_tenant(catalog, "incumbent", "portal.shared.test")
    catalog.set_tenant_status("incumbent", "offboarded")
    assert open_tenant(catalog, "second", "x.portal.shared.test").created


@pytest.mark.parametrize("domains", [
    ["portal.race.test"] * 8,
    ["race.test.shop", "a.race.test.shop", "b.a.race.test.shop", "asuid.race.test.shop",
     "c.race.test.shop", "x.b.a.race.test.shop", "asuid.a.race.test.shop", "z.c.race.test.shop"],
], ids=["equal", "nested"])
def test_concurrent_overlapping_claims_are_refused_but_one(
        catalog: Catalog, domains: list[str]) -> None:
    outcomes = _race(len(domains), lambda i: open_tenant(catalog, f"racer{i}", domains[i]))
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert all(isinstance(e, DomainConflictError) for e in errors), errors
    held = [t.custom_domain for t in catalog.list_tenants()]
    for i, one in enumerate(held):
        for j, other in enumerate(held):
            if i != j:
                assert one != other, held
                assert not one.endswith(f".{other}"), held
    if domains[0] == domains[1]:
        assert len(held) == 1
    assert len(catalog.list_runs()) == len(held)


# -- idempotency keys -------------------------------------------------------------------------

def claim(scope: str, key: str, fingerprint: str) -> IdempotencyClaim:
    return IdempotencyClaim(scope, key, fingerprint)


def test_same_key_and_request_returns_the_first_run(catalog: Catalog) -> None:
    first = open_tenant(catalog, "keyed", "keyed.test.shop",
                        idempotency=claim("tid/alice", "k-1", "f1"))
    again = open_tenant(catalog, "keyed", "keyed.test.shop",
                        idempotency=claim("tid/alice", "k-1", "f1"))
    assert (first.created, again.created) == (True, False)
    assert again.run.id == first.run.id
    assert catalog.find_idempotency_key("tid/alice", "k-1") == ("f1", first.run.id)


def test_key_reused_with_another_request_is_refused_and_opens_nothing(catalog: Catalog) -> None:
    first = open_tenant(catalog, "keyed", "keyed.test.shop",
                        idempotency=claim("tid/alice", "k-1", "f1"))
    with pytest.raises(IdempotencyKeyReusedError) as caught:
        open_tenant(catalog, "other", "other.test.shop",
                    idempotency=claim("tid/alice", "k-1", "f2"))
    assert caught.value.run_id == first.run.id
    assert catalog.find_tenant("other") is None


def test_key_of_another_caller_is_another_key(catalog: Catalog) -> None:
    alice = open_tenant(catalog, "alpha", "alpha.test.shop",
                        idempotency=claim("tid/alice", "shared-key", "f1"))
    bob = open_tenant(catalog, "bravo", "bravo.test.shop",
                      idempotency=claim("tid/bob", "shared-key", "f2"))
    assert bob.created
    assert bob.run.id != alice.run.id
    assert catalog.find_idempotency_key("tid/bob", "shared-key") == ("f2", bob.run.id)


def test_twenty_concurrent_requests_with_one_key_make_one_run(catalog: Catalog) -> None:
    outcomes = _race(20, lambda i: open_tenant(
        catalog, f"burst{i}", f"burst{i}.test.shop",
        idempotency=claim("tid/alice", "burst-key", f"spec-{i}")))
    opened = [o for o in outcomes if isinstance(o, OpenedRun)]
    refused = [o for o in outcomes if isinstance(o, IdempotencyKeyReusedError)]
    assert len(opened) == 1, outcomes
    assert len(refused) == 19, outcomes
    assert {e.run_id for e in refused} == {opened[0].run.id}
    assert len(catalog.list_runs()) == 1
    assert len(catalog.list_tenants()) == 1


def _race(count: int, request: Callable[[int], OpenedRun]) -> list[OpenedRun | BaseException]:
    barrier = threading.Barrier(count)
    outcomes: list[OpenedRun | BaseException] = [RuntimeError("did not run")] * count

    def attempt(i: int) -> None:
        barrier.wait()
        try:
            outcomes[i] = request(i)
        except BaseException as exc:  # collected and asserted by the caller
            outcomes[i] = exc

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes
