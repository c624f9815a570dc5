"""The tenants API over HTTP (in process), with a started engine and the emulator's tokens:
status codes, idempotency, conflicts, validation that names field/value/rule, roles."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from tenantops.api import create_app
from tenantops.catalog.models import WorkerRow
from tenantops.emulator.directory import API_CLIENT_ID
from tenantops.emulator.server import EmulatorServer
from tenantops.provisioning.engine import Engine
from tests.auth.support import auth_settings, mi_token
from tests.provisioning.conftest import fast_settings


@dataclass
class Caller:
    client: TestClient
    token: str

    def headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", **extra}

    def get(self, path: str, **params: Any) -> Any:
        return self.client.get(path, headers=self.headers(), params=params)

    def post(self, path: str, body: Any = None, **headers: str) -> Any:
        return self.client.post(path, json=body, headers=self.headers(**headers))

    def delete(self, path: str, **params: Any) -> Any:
        return self.client.delete(path, headers=self.headers(), params=params)


@dataclass
class Api:
    engine: Engine
    client: TestClient
    writer: Caller
    reader: Caller
    operator: Caller


@pytest.fixture(scope="module")
def api(emulator_server: EmulatorServer,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    onboarding = emulator_server.state.directory.identity_by_name("aa-onboarding")
    assert onboarding is not None
    auth = auth_settings(emulator_server.info).model_copy(update={
        "application_names": {onboarding.client_id: "Automation: onboarding"}})
    settings = fast_settings(tmp_path_factory.mktemp("tenants-api") / "data").model_copy(
        update={"auth": auth})
    engine = Engine(settings)
    engine.start()
    state = emulator_server.state
    api_app = state.directory.app_by_name("tenantops-api")
    cli = state.directory.app_by_name("tenantops-cli")
    operator = state.directory.user_by_username("operator@contoso.test")
    assert api_app is not None and cli is not None and operator is not None  # noqa: PT018
    operator_token = state.tokens.user_token(api_app, API_CLIENT_ID, operator, cli).access_token
    try:
        with TestClient(create_app(settings, engine=engine)) as client:
            yield Api(
                engine, client,
                Caller(client, mi_token(emulator_server, "aa-onboarding", API_CLIENT_ID)),
                Caller(client, mi_token(emulator_server, "uami-reader", API_CLIENT_ID)),
                Caller(client, operator_token))
    finally:
        engine.stop()


def spec(slug: str, **changes: Any) -> dict[str, Any]:
    return {"slug": slug, "display_name": f"{slug.title()} Inc", "custom_domain":
            f"www.{slug}.test", "admin_email": f"admin@{slug}.test", **changes}


def test_onboard_is_accepted_and_the_run_finishes(api: Api) -> None:
    response = api.writer.post("/api/tenants", spec("alpha"))
    assert response.status_code == 202
    body = response.json()
    run_id = body["run"]["id"]
    assert response.headers["location"] == f"/api/runs/{run_id}"
    assert body["tenant"]["slug"] == "alpha"
    assert body["run"]["kind"] == "onboard"
    api.engine.wait(run_id, timeout=60)
    run = api.reader.get(f"/api/runs/{run_id}").json()
    assert run["status"] == "succeeded"
    assert all(s["status"] == "succeeded" and s["attempts"] >= 1 for s in run["steps"])
    assert all(s["duration_seconds"] is not None for s in run["steps"])
    tenant = api.reader.get("/api/tenants/alpha").json()
    assert tenant["status"] == "active"
    assert tenant["resources"]["hostname"] == "www.alpha.test"
    assert tenant["resources"]["certificate"]["thumbprint"]
    assert "CNAME www.alpha.test" in tenant["resources"]["dns_records"]
    assert [r["id"] for r in tenant["runs"]] == [run_id]


def test_a_run_shows_resolved_values_outputs_attempts_and_who_asked_in_words(api: Api) -> None:
    run_id = api.writer.post("/api/tenants", spec("words")).json()["run"]["id"]
    api.engine.wait(run_id, timeout=60)
    operator_run = api.operator.post("/api/tenants", spec("people")).json()["run"]

    run = api.reader.get(f"/api/runs/{run_id}").json()
    steps = {s["name"]: s for s in run["steps"]}

    assert run["requested_by"].startswith("Automation: onboarding (app ")
    assert operator_run["requested_by"] == "Olive Operator (operator@contoso.test)"
    cname = steps["create_cname_record"]
    assert cname["resolved"]["name"] == "www.words.test"
    assert cname["resolved"]["type"] == "CNAME"
    assert steps["create_database"]["resolved"]["name"] == "tenant_words"
    assert steps["issue_certificate"]["outputs"]
    assert all(len(s["history"]) == s["attempts"] for s in run["steps"])
    assert all(s["history"][-1]["outcome"] == "succeeded" for s in run["steps"])
    # Each figure is rounded to the millisecond, and the steps follow one another with no
    # gap (a step's success starts the next in one transaction): allow the rounding.
    assert sum(s["duration_seconds"] for s in run["steps"]) <= (
        run["duration_seconds"] + 0.0005 * len(run["steps"]))


def test_same_spec_again_returns_the_same_run(api: Api) -> None:
    first = api.writer.post("/api/tenants", spec("bravo")).json()["run"]["id"]
    again = api.writer.post("/api/tenants", spec("bravo"))
    assert again.status_code == 202
    assert again.json()["run"]["id"] == first


def test_idempotency_key_returns_same_run_and_refuses_another_request(api: Api) -> None:
    first = api.writer.post("/api/tenants", spec("charlie"), **{"Idempotency-Key": "k-1"})
    again = api.writer.post("/api/tenants", spec("charlie"), **{"Idempotency-Key": "k-1"})
    assert again.json()["run"]["id"] == first.json()["run"]["id"]
    other = api.writer.post("/api/tenants", spec("delta"), **{"Idempotency-Key": "k-1"})
    assert other.status_code == 409
    assert other.json()["error"] == "idempotency_key_reused"
    assert first.json()["run"]["id"] in other.json()["error_description"]
    assert api.reader.get("/api/tenants/delta").status_code == 404


def test_different_spec_for_existing_slug_is_409_saying_what_differs(api: Api) -> None:
    api.writer.post("/api/tenants", spec("echo"))
    response = api.writer.post("/api/tenants", spec("echo", plan="premium"))
    assert response.status_code == 409
    problem = response.json()
    assert problem["error"] == "tenant_conflict"
    assert "plan" in problem["error_description"]
    assert "premium" in problem["error_description"]


@pytest.mark.parametrize(
    ("body", "field", "value"),
    [
        (spec("Bad_Slug!"), "slug", "Bad_Slug!"),
        (spec("ab"), "slug", "ab"),
        (spec("foxtrot", admin_email="not-an-email"), "admin_email", "not-an-email"),
        (spec("golf", custom_domain="x" * 70 + ".test"), "custom_domain", "x" * 70 + ".test"),
        (spec("hotel", plan="platinum"), "plan", "platinum"),
    ],
    ids=["characters", "too-short", "email", "domain-too-long", "plan"],
)
def test_invalid_spec_is_422_naming_field_value_and_rule(
    api: Api, body: dict[str, Any], field: str, value: str
) -> None:
    response = api.writer.post("/api/tenants", body)
    assert response.status_code == 422
    problem = response.json()
    assert problem["error"] == "invalid_spec"
    detail = next(d for d in problem["details"] if d["field"] == field)
    assert detail["value"] == value
    assert detail["rule"]
    assert f"{field} = {value!r}" in problem["error_description"]


def test_missing_field_is_422_naming_it(api: Api) -> None:
    body = spec("india")
    del body["admin_email"]
    response = api.writer.post("/api/tenants", body)
    assert response.status_code == 422
    assert response.json()["details"][0]["field"] == "admin_email"


def test_unknown_tenant_and_run_are_404_naming_them(api: Api) -> None:
    tenant = api.reader.get("/api/tenants/nosuchtenant")
    assert tenant.status_code == 404
    assert "'nosuchtenant'" in tenant.json()["error_description"]
    run = api.reader.get("/api/runs/0123abcd")
    assert run.status_code == 404
    assert "'0123abcd'" in run.json()["error_description"]


def test_list_is_paginated_and_filtered(api: Api) -> None:
    for slug in ("juliet", "kilo", "lima"):
        api.writer.post("/api/tenants", spec(slug))
    page = api.reader.get("/api/tenants", limit=2, offset=0).json()
    assert page["limit"] == 2
    assert len(page["items"]) == 2
    assert page["total"] >= 3
    rest = api.reader.get("/api/tenants", limit=2, offset=2).json()
    assert not {t["slug"] for t in page["items"]} & {t["slug"] for t in rest["items"]}
    found = api.reader.get("/api/tenants", search="KILO").json()
    assert [t["slug"] for t in found["items"]] == ["kilo"]
    bad = api.reader.get("/api/tenants", status="sleeping")
    assert bad.status_code == 422
    assert bad.json()["details"][0]["field"] == "query.status"


def test_offboard_needs_the_slug_confirmed_and_the_delete_role(api: Api) -> None:
    run_id = api.writer.post("/api/tenants", spec("mike")).json()["run"]["id"]
    api.engine.wait(run_id, timeout=60)
    refused = api.writer.delete("/api/tenants/mike", confirm="mike")
    assert refused.status_code == 403
    assert "Tenants.Delete" in refused.headers["www-authenticate"]
    wrong = api.operator.delete("/api/tenants/mike", confirm="mik")
    assert wrong.status_code == 422
    assert "repeat the slug" in wrong.json()["error_description"]
    accepted = api.operator.delete("/api/tenants/mike", confirm="mike")
    assert accepted.status_code == 202
    run = api.engine.wait(accepted.json()["id"], timeout=60)
    assert run.kind == "offboard"
    assert run.status == "succeeded"
    assert api.reader.get("/api/tenants/mike").json()["status"] == "offboarded"


def test_reader_cannot_onboard_and_is_told_the_role(api: Api) -> None:
    response = api.reader.post("/api/tenants", spec("november"))
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    assert "Tenants.Write" in response.json()["error_description"]


def test_retry_or_cancel_of_a_finished_run_is_409(api: Api) -> None:
    run_id = api.writer.post("/api/tenants", spec("oscar")).json()["run"]["id"]
    api.engine.wait(run_id, timeout=60)
    retry = api.writer.post(f"/api/runs/{run_id}/retry")
    assert retry.status_code == 409
    assert "only a failed or cancelled run can be retried" in retry.json()["error_description"]
    cancel = api.writer.post(f"/api/runs/{run_id}/cancel")
    assert cancel.status_code == 409


def test_openapi_document_is_served_to_a_valid_token_with_examples(api: Api) -> None:
    assert api.client.get("/api/openapi.json").status_code == 401
    document = api.reader.get("/api/openapi.json").json()
    assert {"/api/tenants", "/api/tenants/{slug}", "/api/runs/{run_id}",
            "/api/runs/{run_id}/retry", "/api/runs/{run_id}/cancel"} <= set(document["paths"])
    schemas = document["components"]["schemas"]
    assert schemas["TenantRequest"]["examples"][0]["slug"] == "acme"
    assert schemas["TenantRequest"]["properties"]["plan"]["enum"] == [
        "free", "premium", "standard"]


def test_openapi_document_offers_the_deployments_plans_not_the_defaults(api: Api) -> None:
    from tenantops.config import PlanSettings

    settings = api.engine.settings.model_copy(update={"plans": {
        "starter": PlanSettings(), "scale": PlanSettings()}})
    client = TestClient(create_app(settings, engine=api.engine))
    document = client.get("/api/openapi.json", headers=api.reader.headers()).json()
    schemas = document["components"]["schemas"]
    assert schemas["TenantRequest"]["properties"]["plan"]["enum"] == ["scale", "starter"]
    update_plan = schemas["TenantPatch"]["properties"]["plan"]
    assert [b.get("enum") for b in update_plan["anyOf"]] == [["scale", "starter"], None]
    # A tenant may hold a plan since removed from the settings: responses list none.
    assert "enum" not in str(schemas["TenantOut"]["properties"]["plan"])


def test_workers_lists_the_live_engine_and_a_silent_one_as_dead(api: Api) -> None:
    catalog = api.engine.catalog
    catalog.worker_seen("scaled-in", host="func-instance-9", pid=77)
    with Session(catalog.engine) as session, session.begin():
        session.execute(update(WorkerRow).where(WorkerRow.executor_id == "scaled-in").values(
            last_seen=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)))
    assert api.client.get("/api/workers").status_code == 401
    body = api.reader.get("/api/workers").json()
    assert body["timeout_seconds"] == api.engine.settings.engine.worker_timeout_seconds
    by_id = {w["executor_id"]: w for w in body["workers"]}
    assert by_id["local"]["alive"] is True
    assert by_id["scaled-in"]["alive"] is False
    assert (by_id["scaled-in"]["host"], by_id["scaled-in"]["pid"]) == ("func-instance-9", 77)
    assert body["alive"] == 1


def test_budgets_route_shows_each_budget_and_its_queue(
        emulator_server: EmulatorServer, tmp_path: Path) -> None:
    settings = fast_settings(tmp_path / "data", engine={"budgets": {
        "keycloak": {"providers": ["organization"], "calls": 10, "per_seconds": 1.0}}},
    ).model_copy(update={"auth": auth_settings(emulator_server.info)})
    engine = Engine(settings)  # not started: the API reads the budgets in the catalog
    try:
        engine.catalog.migrate()
        for _ in range(25):
            engine.catalog.reserve_call("keycloak", interval=0.1)
        with TestClient(create_app(settings, engine=engine)) as client:
            assert client.get("/api/budgets").status_code == 401
            reader = Caller(client, mi_token(emulator_server, "uami-reader", API_CLIENT_ID))
            response = reader.get("/api/budgets")
    finally:
        engine.stop()
    assert response.status_code == 200
    [budget] = response.json()["budgets"]
    assert (budget["name"], budget["providers"]) == ("keycloak", ["organization"])
    assert (budget["calls"], budget["per_seconds"], budget["burst"]) == (10, 1.0, 1)
    assert budget["reserved"] == 25
    # 25 calls at 10 per second: about 2.4 s of schedule ahead, ~24 calls not yet due.
    assert 0 < budget["backlog_seconds"] <= 2.5
    assert 0 < budget["queued"] <= 25
