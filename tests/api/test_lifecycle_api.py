"""Changing, suspending and resuming tenants over HTTP: status codes, previews (dry_run),
a change during a run in progress is a 409 naming it, roles, validation naming the field."""

from __future__ import annotations

from typing import Any

from tests.api.test_tenants import Api, api, spec

__all__ = ["api"]


def onboarded(api: Api, slug: str) -> None:
    run = api.writer.post("/api/tenants", spec(slug)).json()["run"]["id"]
    assert api.engine.wait(run, timeout=60).status == "succeeded"


def patch(api: Api, slug: str, body: dict[str, Any], token: str | None = None,
          **params: str) -> Any:
    return api.client.patch(f"/api/tenants/{slug}", json=body, params=params,
                            headers={"Authorization": f"Bearer {token or api.writer.token}"})


def test_patch_changes_the_domain_and_the_run_records_the_diff(api: Api) -> None:
    onboarded(api, "lima")
    response = patch(api, "lima", {"custom_domain": "portal.lima2.test", "grace_seconds": 0,
                                   "reason": "the customer's own domain"})
    assert response.status_code == 202
    body = response.json()
    run = body["run"]
    assert response.headers["location"] == f"/api/runs/{run['id']}"
    assert (run["kind"], body["tenant"]["status"]) == ("update", "updating")
    assert run["options"]["changes"] == {"custom_domain": {
        "from": "www.lima.test", "to": "portal.lima2.test"}}
    assert run["options"]["reason"] == "the customer's own domain"
    assert api.engine.wait(run["id"], timeout=60).status == "succeeded"
    tenant = api.reader.get("/api/tenants/lima").json()
    assert (tenant["status"], tenant["custom_domain"]) == ("active", "portal.lima2.test")
    assert tenant["resources"]["hostname"] == "portal.lima2.test"
    assert tenant["retiring_domains"] == []
    assert [r["kind"] for r in tenant["runs"]] == ["update", "onboard"]
    again = patch(api, "lima", {"custom_domain": "portal.lima2.test"})
    assert again.status_code == 200
    assert again.json()["run"]["id"] == run["id"]


def test_dry_run_shows_the_diff_and_the_plan_and_changes_nothing(api: Api) -> None:
    onboarded(api, "mike")
    response = patch(api, "mike", {"plan": "premium", "display_name": "Mike Two"},
                     dry_run="true")
    assert response.status_code == 200
    preview = response.json()
    assert preview["dry_run"] is True
    assert preview["diff"] == {"display_name": {"from": "Mike Inc", "to": "Mike Two"},
                               "plan": {"from": "standard", "to": "premium"}}
    assert [c["step"] for c in preview["changes"]] == ["create_database",
                                                       "create_organization"]
    assert [c["action"] for c in preview["changes"]] == ["unchanged", "update"]
    tenant = api.reader.get("/api/tenants/mike").json()
    assert (tenant["plan"], len(tenant["runs"])) == ("standard", 1)


def test_nothing_to_change_is_200_without_a_run(api: Api) -> None:
    onboarded(api, "november")
    response = patch(api, "november", {"plan": "standard"})
    assert response.status_code == 200
    assert response.json()["run"] is None


def test_an_invalid_value_is_422_naming_field_value_and_rule(api: Api) -> None:
    onboarded(api, "oscar")
    response = patch(api, "oscar", {"custom_domain": "localhost", "admin_email": "nope"})
    assert response.status_code == 422
    fields = {d["field"]: d for d in response.json()["details"]}
    assert fields["admin_email"]["value"] == "nope"
    assert "custom_domain" in fields
    unknown = patch(api, "oscar", {"slug": "renamed"})
    assert unknown.status_code == 422
    assert unknown.json()["details"][0]["field"] == "slug"


def test_a_change_during_a_run_in_progress_is_409_naming_that_run(api: Api) -> None:
    onboarded(api, "papa")
    first = patch(api, "papa", {"custom_domain": "www.papa2.test", "grace_seconds": 3600})
    run_id = first.json()["run"]["id"]
    for response in (patch(api, "papa", {"plan": "free"}),
                     api.writer.post("/api/tenants/papa/suspend", {"reason": "x"})):
        assert response.status_code == 409
        problem = response.json()
        assert problem["error"] == "run_conflict"
        assert run_id in problem["error_description"]
        assert problem["details"] == [{"field": "active_run", "value": run_id, "rule": (
            "a run of this tenant is in progress; wait for it or cancel it")}]
    assert api.writer.post(f"/api/runs/{run_id}/cancel").status_code == 202


def test_suspend_and_resume_over_http(api: Api) -> None:
    onboarded(api, "quebec")
    preview = api.writer.post("/api/tenants/quebec/suspend?dry_run=true", {"reason": "x"})
    assert [c["action"] for c in preview.json()["changes"]] == ["update"] * 3
    missing = api.writer.post("/api/tenants/quebec/suspend", {})
    assert missing.status_code == 422
    blank = api.writer.post("/api/tenants/quebec/suspend", {"reason": "  "})
    assert blank.status_code == 422
    assert blank.json()["details"][0]["field"] == "reason"
    response = api.writer.post("/api/tenants/quebec/suspend", {"reason": "invoice unpaid"},
                               **{"Idempotency-Key": "suspend-quebec"})
    assert response.status_code == 202
    run_id = response.json()["run"]["id"]
    assert api.engine.wait(run_id, timeout=60).status == "succeeded"
    repeated = api.writer.post("/api/tenants/quebec/suspend", {"reason": "invoice unpaid"},
                               **{"Idempotency-Key": "suspend-quebec"})
    assert repeated.json()["run"]["id"] == run_id
    tenant = api.reader.get("/api/tenants/quebec").json()
    assert tenant["status"] == "suspended"
    assert tenant["suspension"]["reason"] == "invoice unpaid"
    assert tenant["suspension"]["run_id"] == run_id
    listed = api.reader.get("/api/tenants", status="suspended").json()
    assert "quebec" in {t["slug"] for t in listed["items"]}

    resumed = api.writer.post("/api/tenants/quebec/resume")
    assert resumed.status_code == 202
    assert api.engine.wait(resumed.json()["run"]["id"], timeout=60).status == "succeeded"
    assert api.reader.get("/api/tenants/quebec").json()["suspension"] is None
    again = api.writer.post("/api/tenants/romeo/resume")
    assert again.status_code == 404
    onboarded(api, "romeo")
    active = api.writer.post("/api/tenants/romeo/resume")
    assert active.status_code == 409
    assert active.json()["error"] == "tenant_state"
    assert "nothing to resume" in active.json()["error_description"]


def test_a_reader_changing_a_tenant_is_refused(api: Api) -> None:
    onboarded(api, "sierra")
    assert patch(api, "sierra", {"plan": "free"}, token=api.reader.token).status_code == 403
    assert api.reader.post("/api/tenants/sierra/suspend", {"reason": "x"}).status_code == 403
    assert api.reader.post("/api/tenants/sierra/resume").status_code == 403
    assert api.client.patch("/api/tenants/sierra", json={"plan": "free"}).status_code == 401


def test_a_move_to_a_server_outside_the_plans_pool_is_refused(api: Api) -> None:
    onboarded(api, "tango")
    tenant = api.reader.get("/api/tenants/tango").json()
    assert [{k: p[k] for k in ("state", "server", "mode", "database", "schema_name")}
            for p in tenant["placements"]] == [
        {"state": "current", "server": "default", "mode": "database",
         "database": "tenant_tango", "schema_name": None}]

    for path in ("/api/tenants/tango/move", "/api/tenants/tango/move?dry_run=true"):
        refused = api.writer.post(path, {"server": "elsewhere"})
        assert refused.status_code == 409
        assert refused.json()["error"] == "placement_refused"
        assert refused.json()["error_description"] == (
            "server 'elsewhere' is not in pool 'default' of plan 'standard' (its servers: "
            "default); name one of them, or change the tenant's plan")
    here = api.writer.post("/api/tenants/tango/move", {"server": "default"})
    assert here.status_code == 409
    assert "already is on server 'default' in database mode" in \
        here.json()["error_description"]
    wrong = api.writer.post("/api/tenants/tango/move", {"server": "default", "abandon": True})
    assert wrong.status_code == 422
    assert wrong.json()["details"][0]["field"] == "server"
    assert len(api.reader.get("/api/tenants/tango").json()["runs"]) == 1


def test_a_reader_moving_a_tenant_is_refused(api: Api) -> None:
    onboarded(api, "uniform")
    assert api.reader.post("/api/tenants/uniform/move", {}).status_code == 403
    assert api.client.post("/api/tenants/uniform/move", json={}).status_code == 401
    assert [p["state"] for p in api.reader.get("/api/tenants/uniform").json()["placements"]
            ] == ["current"]
