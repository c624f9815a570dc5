"""Organizations of the ``local`` organization provider, kept in the catalog."""

from __future__ import annotations

import pytest

from tenantops.catalog import Catalog, DomainTakenError


def test_ensure_is_idempotent_and_converges(catalog: Catalog) -> None:
    store = catalog.organizations
    created, changed = store.ensure(alias="acme", name="Acme", redirect_url="https://a/",
                                    domains=["portal.acme.test"])
    assert changed
    again, changed_again = store.ensure(alias="acme", name="Acme", redirect_url="https://a/",
                                        domains=["portal.acme.test"])
    assert not changed_again
    assert again == created
    renamed, changed = store.ensure(alias="acme", name="Acme Inc", redirect_url="https://a/",
                                    domains=["www.acme.test"])
    assert changed
    assert (renamed.name, renamed.domains) == ("Acme Inc", ("www.acme.test",))


def test_a_domain_belongs_to_one_organization(catalog: Catalog) -> None:
    catalog.organizations.ensure(alias="acme", name="Acme", redirect_url="https://a/",
                                 domains=["portal.acme.test"])
    with pytest.raises(DomainTakenError, match="already belongs to organization 'acme'"):
        catalog.organizations.ensure(alias="evil", name="Evil", redirect_url="https://e/",
                                     domains=["portal.acme.test"])


def test_invitations_are_idempotent_and_go_with_the_organization(catalog: Catalog) -> None:
    store = catalog.organizations
    store.ensure(alias="acme", name="Acme", redirect_url="https://a/", domains=["a.acme.test"])
    first, created = store.invite("acme", "admin@acme.test", "admin")
    second, created_again = store.invite("acme", "admin@acme.test", "admin")
    assert created
    assert not created_again
    assert first == second
    organization = store.get("acme")
    assert organization is not None
    assert [i.email for i in organization.invitations] == ["admin@acme.test"]
    assert store.delete("acme")
    assert not store.delete("acme")
    assert store.get("acme") is None
    assert store.list() == []
