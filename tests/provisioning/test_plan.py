"""Plans: onboarding order, offboarding as its reverse, and what the catalog records."""

from __future__ import annotations

from pathlib import Path

from tenantops.catalog import Catalog
from tenantops.provisioning.plan import StepInputs, offboarding_plan, onboarding_plan, plan_for
from tenantops.provisioning.providers.registry import build_providers

from .conftest import fast_settings, spec_for


def test_onboarding_follows_app_service_order() -> None:
    names = [s.name for s in onboarding_plan().steps]
    assert names.index("create_cname_record") < names.index("wait_for_dns")
    assert names.index("create_verification_record") < names.index("bind_hostname")
    assert names.index("bind_hostname") < names.index("issue_certificate")
    assert names.index("issue_certificate") < names.index("bind_certificate")
    assert names.index("store_database_secret") < names.index("create_database")
    assert (names[0], names[-1]) == ("register_tenant", "activate_tenant")


def test_offboarding_undoes_onboarding_in_reverse() -> None:
    offboarding = offboarding_plan()
    assert {s.verb for s in offboarding.steps} == {"remove"}
    names = [s.name for s in offboarding.steps]
    assert names == [
        "deactivate_tenant", "remove_organization", "unbind_certificate", "delete_certificate",
        "unbind_hostname", "delete_verification_record", "delete_cname_record",
        "drop_database", "delete_database_secret", "deregister_tenant",
    ]
    kept = [s.name for s in offboarding_plan(keep_database=True).steps]
    assert "drop_database" not in kept
    assert "delete_database_secret" not in kept
    assert [s.name for s in plan_for("offboard", {"keep_database": True}).steps] == kept


def test_resources_are_named_after_the_tenant(tmp_path: Path) -> None:
    settings = fast_settings(tmp_path / "data")
    providers = build_providers(settings, Catalog(f"sqlite:///{tmp_path / 'c.sqlite'}"),
                                serve=False)
    inputs = StepInputs(spec_for("big-co"), providers, settings)
    keys = [step.build(inputs).key for step in onboarding_plan().steps
            if step.name != "bind_certificate"]
    assert keys == [
        "tenant:big-co", "secret:big-co-database-password", "database:tenant_big_co",
        "dns:CNAME:app.big-co.test", "dns:TXT:asuid.app.big-co.test",
        "dns-answers:CNAME:app.big-co.test,TXT:asuid.app.big-co.test",
        "hostname:app.big-co.test", "certificate:app.big-co.test",
        "organization:big-co", "invitation:big-co:admin@big-co.test", "activation:big-co",
    ]
    templates = onboarding_plan().templates(providers)
    assert templates[2].provider == "database:sqlite"
    assert templates[0].provider == "catalog:sqlite"
