"""Drift and reconcile over HTTP (issue 15 §5), on the embedded providers: a tenant's
organization removed behind tenantops' back is reported by ``GET /api/tenants/{slug}/drift``,
listed by ``GET /api/drift``, previewed and restored by ``POST .../reconcile``; roles and
refusals."""

from __future__ import annotations

from typing import Any

from tenantops.provisioning.providers.organization import TenantOrganization
from tests.api.test_tenants import Api, api, spec

__all__ = ["api"]


def onboarded(api: Api, slug: str) -> None:
    run = api.writer.post("/api/tenants", spec(slug)).json()["run"]["id"]
    assert api.engine.wait(run, timeout=60).status == "succeeded"


def remove_organization(api: Api, slug: str) -> None:
    """What an operator deleting the organization by hand does to the embedded provider."""
    api.engine.providers.organization.remove(TenantOrganization(
        slug, slug, (f"www.{slug}.test",), f"https://www.{slug}.test/"))


def states(body: dict[str, Any]) -> dict[str, str]:
    return {r["step"]: r["state"] for r in body["resources"]}


def test_a_removed_organization_is_reported_listed_and_reconciled(api: Api) -> None:
    onboarded(api, "drifty")
    clean = api.reader.get("/api/tenants/drifty/drift")
    assert clean.status_code == 200
    assert clean.json()["state"] == "in_sync"
    assert states(clean.json())["create_organization"] == "in_sync"

    remove_organization(api, "drifty")
    response = api.reader.get("/api/tenants/drifty/drift")

    assert response.status_code == 200
    body = response.json()
    assert (body["tenant"], body["status"], body["state"]) == ("drifty", "active", "missing")
    [organization] = [r for r in body["resources"] if r["step"] == "create_organization"]
    assert (organization["state"], organization["action"], organization["resource"]) == (
        "missing", "create", "organization:drifty")
    assert body["checked_by"].startswith("app ")  # who asked: the reader's identity
    listed = api.reader.get("/api/drift", state="missing").json()
    assert "drifty" in [item["tenant"] for item in listed["items"]]
    assert listed["counts"]["missing"] >= 1
    cached = api.reader.get("/api/tenants/drifty/drift", cached="true").json()
    assert (cached["state"], cached["checked_at"]) == ("missing", body["checked_at"])

    preview = api.writer.post("/api/tenants/drifty/reconcile?dry_run=true")
    assert preview.status_code == 200
    actions = {c["step"]: c["action"] for c in preview.json()["changes"]}
    assert actions["create_organization"] == "create"
    assert "delete" not in actions.values()
    assert api.reader.get("/api/tenants/drifty/drift").json()["state"] == "missing"

    accepted = api.writer.post("/api/tenants/drifty/reconcile", {"reason": "org deleted"})
    assert accepted.status_code == 202
    run = accepted.json()["run"]
    assert (run["kind"], accepted.json()["tenant"]["status"]) == ("reconcile", "reconciling")
    assert run["options"]["reason"] == "org deleted"
    assert api.engine.wait(run["id"], timeout=60).status == "succeeded"
    after = api.reader.get("/api/tenants/drifty/drift").json()
    assert (after["state"], after["status"]) == ("in_sync", "active")
    assert "drifty" not in [i["tenant"] for i in
                            api.reader.get("/api/drift", state="missing").json()["items"]]


def test_a_fleet_check_reports_each_tenant_and_skips_the_unsettled(api: Api) -> None:
    onboarded(api, "fleeta")
    onboarded(api, "fleetb")
    remove_organization(api, "fleetb")

    response = api.reader.post("/api/drift/check", {"tenants": ["fleeta", "fleetb", "nosuch"]})

    assert response.status_code == 200
    body = response.json()
    assert {c["tenant"]: c["state"] for c in body["checked"]} == {
        "fleeta": "in_sync", "fleetb": "missing"}
    assert "no tenant with slug 'nosuch'" in body["skipped"]["nosuch"]
    assert (body["counts"]["in_sync"], body["counts"]["missing"]) == (1, 1)


def test_reconciling_a_tenant_with_tenants_read_only_is_refused(api: Api) -> None:
    onboarded(api, "guarded")
    refused = api.reader.post("/api/tenants/guarded/reconcile")
    assert refused.status_code == 403
    unknown = api.writer.post("/api/tenants/nosuch/reconcile")
    assert unknown.status_code == 404
    assert api.reader.get("/api/tenants/nosuch/drift").status_code == 404
    never = api.reader.get("/api/tenants/guarded/drift", cached="true")
    assert never.status_code == 404
    assert "was never checked for drift" in never.json()["error_description"]
    assert api.client.get("/api/drift").status_code == 401


def test_an_offboarded_tenant_is_neither_checked_nor_reconciled(api: Api) -> None:
    onboarded(api, "gone")
    run = api.operator.delete("/api/tenants/gone", confirm="gone").json()["id"]
    assert api.engine.wait(run, timeout=60).status == "succeeded"

    drift = api.reader.get("/api/tenants/gone/drift")
    reconcile = api.writer.post("/api/tenants/gone/reconcile")

    assert drift.status_code == 409
    assert "only active and suspended tenants" in drift.json()["error_description"]
    assert reconcile.status_code == 409
    assert "offboarded" in reconcile.json()["error_description"]


def test_importing_with_tenants_read_only_or_too_many_entries_is_refused(api: Api) -> None:
    body = {"tenants": [spec("imported")]}
    assert api.reader.post("/api/tenants/import", body).status_code == 403

    dry = api.writer.post("/api/tenants/import?dry_run=true", body)
    assert dry.status_code == 200
    [result] = dry.json()["results"]
    assert (result["slug"], result["outcome"], result["recorded"]) == (
        "imported", "partial", False)
    assert dry.json()["counts"] == {"adopted": 0, "partial": 1, "refused": 0}
    assert api.reader.get("/api/tenants/imported").status_code == 404

    recorded = api.writer.post("/api/tenants/import", body).json()
    [result] = recorded["results"]
    assert result["recorded"] is True
    run = api.reader.get(f"/api/runs/{result['run_id']}").json()
    assert (run["kind"], run["status"]) == ("adopt", "succeeded")
    assert api.reader.get("/api/tenants/imported").json()["status"] == "active"

    limit = api.engine.settings.drift.import_max_tenants
    many = api.writer.post("/api/tenants/import",
                           {"tenants": [spec(f"many{i}") for i in range(limit + 1)]})
    assert many.status_code == 422
    assert f"at most {limit} per request (drift.import_max_tenants)" in (
        many.json()["error_description"])
