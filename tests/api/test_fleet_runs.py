"""Fleet runs over HTTP (in process, a started engine, the emulator's tokens): start, dry
run, progress, targets, pause / resume / cancel, the brake, roles, and refusals that name the
field, the value and the rule."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tenantops.api import create_app
from tenantops.emulator.directory import API_CLIENT_ID
from tenantops.emulator.server import EmulatorServer
from tenantops.provisioning.engine import Engine
from tenantops.provisioning.providers.database.sqlite import SqliteDatabases
from tests.api.test_tenants import Api, Caller, spec
from tests.auth.support import auth_settings, mi_token
from tests.provisioning.conftest import fast_settings

pytestmark = pytest.mark.integration  # the emulator server, embedded DNS and web hosts


@pytest.fixture(scope="module")
def migrations(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("migrations")
    (folder / "0001_users.sql").write_text(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL);")
    return folder


@pytest.fixture(scope="module")
def api(emulator_server: EmulatorServer, migrations: Path,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    settings = fast_settings(
        tmp_path_factory.mktemp("fleet-api") / "data", migrations={"folder": migrations},
        fleet={"poll_seconds": 0.02}).model_copy(
        update={"auth": auth_settings(emulator_server.info)})
    engine = Engine(settings)
    engine.start()
    try:
        with TestClient(create_app(settings, engine=engine)) as client:
            writer = Caller(client, mi_token(emulator_server, "aa-onboarding", API_CLIENT_ID))
            reader = Caller(client, mi_token(emulator_server, "uami-reader", API_CLIENT_ID))
            runs = [writer.post("/api/tenants", spec(s)).json()["run"]["id"]
                    for s in ("fleeta", "fleetb", "fleetc", "fleetd")]
            for run_id in runs:
                assert engine.wait(run_id, timeout=120).status == "succeeded"
            yield Api(engine, client, writer, reader, writer)
    finally:
        engine.stop()


def settled(api: Api, fleet_id: str, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = api.reader.get(f"/api/fleet-runs/{fleet_id}").json()
        if body["status"] != "running":
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.05)


def add_migration(folder: Path, name: str, body: str) -> None:
    (folder / name).write_text(body)


def database(api: Api, slug: str) -> Path:
    provider = api.engine.providers.database
    assert isinstance(provider, SqliteDatabases)
    name = api.engine.catalog.get_tenant(slug).database_name
    assert name
    return provider.path(name)


def test_onboarding_migrated_every_tenant_to_head(api: Api) -> None:
    tenant = api.reader.get("/api/tenants/fleeta").json()
    run = api.reader.get(f"/api/runs/{tenant['runs'][0]['id']}").json()
    assert "migrate_schema" in [s["name"] for s in run["steps"]]
    assert api.engine.catalog.get_tenant("fleeta").schema_revision == "0001_users"


def test_dry_run_lists_pending_revisions_per_tenant(api: Api, migrations: Path) -> None:
    add_migration(migrations, "0002_orders.sql", "CREATE TABLE orders (id INTEGER);")
    response = api.writer.post("/api/fleet-runs?dry_run=true", {
        "operation": "migrate", "selection": {"tenants": ["fleeta", "fleetb"]}})
    assert response.status_code == 200
    body = response.json()
    assert body["dry_run"] is True
    assert body["counts"] == {"run": 2, "nothing": 0, "skip": 0}
    assert body["targets"][0] == {"tenant": "fleeta", "action": "run", "reason": None,
                                  "detail": {"revision": "0001_users",
                                             "pending": ["0002_orders"], "to": "0002_orders"}}
    assert api.reader.get("/api/fleet-runs").json()["total"] == 0


def test_a_fleet_run_migrates_the_selection_and_shows_progress_and_targets(
        api: Api, migrations: Path) -> None:
    add_migration(migrations, "0002_orders.sql", "CREATE TABLE orders (id INTEGER);")
    response = api.writer.post("/api/fleet-runs", {
        "operation": "migrate", "selection": {"all": True}, "canary": 1, "concurrency": 2})
    assert response.status_code == 202
    started = response.json()
    assert response.headers["location"] == f"/api/fleet-runs/{started['id']}"
    assert started["options"]["revision"] == "0002_orders"
    assert started["requested_by"]
    done = settled(api, started["id"])
    assert done["status"] == "succeeded"
    assert done["counts"]["succeeded"] == 4
    assert done["rate_per_second"] > 0
    assert done["eta_seconds"] is None
    targets = api.reader.get(f"/api/fleet-runs/{started['id']}/targets").json()["items"]
    assert [t["tenant"] for t in targets] == ["fleeta", "fleetb", "fleetc", "fleetd"]
    assert [t["canary"] for t in targets] == [True, False, False, False]
    assert targets[0]["detail"]["applied"] == ["0002_orders"]
    run = api.reader.get(f"/api/runs/{targets[0]['run_id']}").json()
    assert (run["kind"], run["status"]) == ("migrate", "succeeded")
    listed = api.reader.get("/api/fleet-runs", status="succeeded").json()
    assert started["id"] in [f["id"] for f in listed["items"]]
    assert api.reader.get("/api/tenants/fleetd").json()["status"] == "active"


def test_the_brake_then_resume_over_http(api: Api, migrations: Path) -> None:
    for slug in ("fleetb", "fleetc"):
        with closing(sqlite3.connect(database(api, slug))) as db:
            db.executemany("INSERT INTO users (email) VALUES (?)", [("a@x.test",)] * 2)
            db.commit()
    add_migration(migrations, "0003_unique.sql", "CREATE UNIQUE INDEX u ON users (email);")
    fleet = api.writer.post("/api/fleet-runs", {
        "operation": "migrate", "selection": {"all": True}, "canary": 0, "concurrency": 1,
        "max_failures": 1}).json()
    stopped = settled(api, fleet["id"])
    assert stopped["status"] == "stopped"
    assert "more than the 1 allowed (max_failures)" in stopped["stop_reason"]
    failed = api.reader.get(f"/api/fleet-runs/{fleet['id']}/targets",
                            status="failed").json()["items"]
    assert [t["tenant"] for t in failed] == ["fleetb", "fleetc"]
    assert "UNIQUE constraint failed" in failed[0]["error"]
    again = api.writer.post(f"/api/fleet-runs/{fleet['id']}/pause")
    assert again.status_code == 409
    assert again.json()["error"] == "fleet_run_state"
    assert "only a running fleet run can be paused" in again.json()["error_description"]
    for slug in ("fleetb", "fleetc"):
        with closing(sqlite3.connect(database(api, slug))) as db:
            db.execute("DELETE FROM users WHERE id = 2")
            db.commit()
    resumed = api.writer.post(f"/api/fleet-runs/{fleet['id']}/resume")
    assert resumed.status_code == 202
    assert settled(api, fleet["id"])["status"] == "succeeded"


def test_pause_holds_pending_tenants_and_cancel_ends_the_fleet(api: Api,
                                                              migrations: Path) -> None:
    add_migration(migrations, "0004_more.sql", "CREATE TABLE more (id INTEGER);")
    conductor = api.engine.conductor
    assert conductor is not None
    conductor.stop()  # nothing starts until the pause is in place
    try:
        fleet = api.writer.post("/api/fleet-runs", {
            "operation": "migrate", "selection": {"all": True}}).json()
        paused = api.writer.post(f"/api/fleet-runs/{fleet['id']}/pause")
        assert paused.status_code == 200
        assert paused.json()["status"] == "stopped"
        assert paused.json()["stop_reason"].startswith("paused by ")
        conductor.pass_once()  # a pass over a paused fleet starts nothing
    finally:
        conductor.start()
    shown = api.reader.get(f"/api/fleet-runs/{fleet['id']}").json()
    assert shown["counts"]["pending"] == 4
    cancelled = api.writer.post(f"/api/fleet-runs/{fleet['id']}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["counts"]["cancelled"] == 4
    assert api.writer.post(f"/api/fleet-runs/{fleet['id']}/cancel").status_code == 409
    assert api.engine.catalog.get_tenant("fleeta").schema_revision == "0003_unique"


def test_bad_requests_name_the_field_the_value_and_the_rule(api: Api) -> None:
    both = api.writer.post("/api/fleet-runs", {
        "operation": "migrate", "selection": {"all": True, "plan": "free"}})
    assert both.status_code == 422
    assert both.json()["details"][0]["field"] == "selection"
    assert "choose exactly one" in both.json()["details"][0]["rule"]
    ghost = api.writer.post("/api/fleet-runs", {
        "operation": "migrate", "selection": {"tenants": ["ghost-tenant"]}})
    assert ghost.status_code == 422
    assert ghost.json()["details"][0] == {
        "field": "tenants", "value": ["ghost-tenant"], "rule": (
            "names no live tenant (check the slugs: offboarded tenants are not selected)")}
    limits = api.writer.post("/api/fleet-runs", {
        "operation": "migrate", "selection": {"all": True}, "concurrency": 0})
    assert limits.status_code == 422
    assert limits.json()["details"][0]["field"] == "concurrency"
    unknown_field = api.writer.post("/api/fleet-runs", {
        "operation": "migrate", "selection": {"all": True}, "paralel": 4})
    assert unknown_field.status_code == 422
    assert unknown_field.json()["details"][0]["field"] == "paralel"
    revision = api.writer.post("/api/fleet-runs", {
        "operation": "migrate", "selection": {"all": True}, "options": {"revision": "9999"}})
    assert revision.status_code == 422
    assert revision.json()["error"] == "invalid_migration"
    assert "'9999'" in revision.json()["error_description"]
    missing = api.reader.get("/api/fleet-runs/nope")
    assert missing.status_code == 404
    assert missing.json()["error"] == "fleet_run_not_found"
    assert "nope" in missing.json()["error_description"]


def test_a_reader_cannot_start_pause_resume_or_cancel_a_fleet_run(api: Api) -> None:
    refused = api.reader.post("/api/fleet-runs", {"operation": "migrate",
                                                  "selection": {"all": True}})
    assert refused.status_code == 403
    assert "Tenants.Write" in refused.json()["error_description"]
    for action in ("pause", "resume", "cancel"):
        assert api.reader.post(f"/api/fleet-runs/any/{action}").status_code == 403
    assert api.client.get("/api/fleet-runs").status_code == 401


def test_unknown_or_mistyped_options_are_refused(api: Api) -> None:
    typo = api.writer.post("/api/fleet-runs", {
        "operation": "migrate", "selection": {"all": True}, "options": {"revison": "x"}})
    assert typo.status_code == 422
    assert typo.json()["details"] == [{"field": "options.revison", "value": "x",
                                       "rule": "is not an option of migrate (revision)"}]
    number = api.writer.post("/api/fleet-runs", {
        "operation": "migrate", "selection": {"all": True}, "options": {"revision": 3}})
    assert number.status_code == 422
    assert number.json()["details"][0]["field"] == "options.revision"
    assert api.reader.get("/api/fleet-runs", offset=2**40).status_code == 422


def test_certificates_lists_every_tenant_s_expiry_soonest_first(api: Api) -> None:
    body = api.reader.get("/api/certificates").json()
    assert [c["tenant"] for c in body["items"]][:4] == sorted(
        ["fleeta", "fleetb", "fleetc", "fleetd"], key=lambda s: (
            api.engine.catalog.get_tenant(s).certificate_expires_at, s))
    first = body["items"][0]
    tenant = api.engine.catalog.get_tenant(first["tenant"])
    assert first["thumbprint"] == tenant.certificate_thumbprint
    assert first["hostname"] == tenant.custom_domain
    assert 390 < first["days_left"] <= 397
    assert first["expiring_soon"] is False
    assert (body["expiring_soon"], body["expiring_soon_days"]) == (0, 30)
    assert api.client.get("/api/certificates").status_code == 401


def test_renew_dry_run_says_which_certificates_are_due(api: Api) -> None:
    preview = api.writer.post("/api/fleet-runs?dry_run=true", {
        "operation": "renew-certificates", "selection": {"all": True},
        "options": {"within_days": 400}}).json()
    assert preview["counts"]["run"] == 4
    assert preview["options"]["within_days"] == 400
    bad = api.writer.post("/api/fleet-runs?dry_run=true", {
        "operation": "renew-certificates", "selection": {"all": True},
        "options": {"within_days": -1, "as_of": "yesterday"}})
    assert bad.status_code == 422
    assert bad.json()["details"][0]["field"] == "options.within_days"
