"""The audit trail as the API writes and serves it: every state-changing call, refusals
included, with who, what, which tenant or run, from where, the request ID and the outcome;
``GET /api/audit`` only with ``Audit.Read``; never a token, password or client secret."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from tenantops.api import create_app
from tenantops.emulator.directory import API_CLIENT_ID
from tenantops.emulator.server import EmulatorServer
from tenantops.provisioning.engine import Engine
from tests.auth.support import ARM, Forge, auth_settings, mi_token
from tests.provisioning.conftest import fast_settings

pytestmark = pytest.mark.integration

JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")


@dataclass
class Audited:
    engine: Engine
    client: TestClient
    writer: str  # aa-onboarding: Tenants.Read + Tenants.Write
    reader: str  # uami-reader: Tenants.Read
    auditor: str  # operator@contoso.test: every role, Audit.Read included
    server: EmulatorServer

    def as_(self, token: str, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}", **extra}

    def trail(self, **params: Any) -> list[dict[str, Any]]:
        response = self.client.get("/api/audit", headers=self.as_(self.auditor), params=params)
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    def record_of(self, response: Any) -> dict[str, Any]:
        """The audit record of ``response`` (found by its X-Request-ID)."""
        request_id = response.headers["x-request-id"]
        found = [r for r in self.trail(limit=500) if r["request_id"] == request_id]
        assert len(found) == 1, f"{len(found)} records for request {request_id}"
        return found[0]


@pytest.fixture(scope="module")
def audited(emulator_server: EmulatorServer,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Audited]:
    settings = fast_settings(tmp_path_factory.mktemp("audit-api") / "data").model_copy(
        update={"auth": auth_settings(emulator_server.info)})
    engine = Engine(settings)
    engine.start()
    state = emulator_server.state
    api_app = state.directory.app_by_name("tenantops-api")
    cli = state.directory.app_by_name("tenantops-cli")
    operator = state.directory.user_by_username("operator@contoso.test")
    assert api_app is not None
    assert cli is not None
    assert operator is not None
    try:
        with TestClient(create_app(settings, engine=engine)) as client:
            yield Audited(
                engine, client, mi_token(emulator_server, "aa-onboarding", API_CLIENT_ID),
                mi_token(emulator_server, "uami-reader", API_CLIENT_ID),
                state.tokens.user_token(api_app, API_CLIENT_ID, operator, cli).access_token,
                emulator_server)
    finally:
        engine.stop()


def spec(slug: str, **changes: Any) -> dict[str, Any]:
    return {"slug": slug, "display_name": f"{slug.title()} Inc",
            "custom_domain": f"www.{slug}.test", "admin_email": f"admin@{slug}.test", **changes}


def test_onboarding_is_recorded_with_who_what_where_and_the_outcome(audited: Audited) -> None:
    response = audited.client.post("/api/tenants", json=spec("audited"),
                                   headers=audited.as_(audited.writer))
    assert response.status_code == 202, response.text
    identity = audited.server.state.directory.identity_by_name("aa-onboarding")
    assert identity is not None

    record = audited.record_of(response)
    assert record["action"] == "tenant.onboard"
    assert record["channel"] == "api"
    assert (record["method"], record["route"]) == ("POST", "/api/tenants")
    assert record["tenant"] == "audited"
    assert record["run_id"] == response.json()["run"]["id"]
    assert record["principal_oid"] == identity.principal_id
    assert record["principal_appid"] == identity.client_id
    assert (record["outcome"], record["status_code"], record["reason"]) == ("succeeded", 202,
                                                                             None)
    assert record["client_ip"] == "testclient"


def test_retry_cancel_and_offboard_name_the_run_and_its_tenant(audited: Audited) -> None:
    run = audited.engine.wait(audited.client.post(
        "/api/tenants", json=spec("runner"), headers=audited.as_(audited.writer)
    ).json()["run"]["id"], timeout=120)
    retry = audited.client.post(f"/api/runs/{run.id}/retry", headers=audited.as_(audited.writer))
    assert retry.status_code == 409  # it succeeded: nothing to retry
    record = audited.record_of(retry)
    assert (record["action"], record["route"]) == ("run.retry", "/api/runs/{run_id}/retry")
    assert (record["run_id"], record["tenant"]) == (run.id, "runner")
    assert (record["outcome"], record["reason"]) == ("refused", "run_state")

    offboard = audited.client.delete("/api/tenants/runner", params={"confirm": "runner"},
                                     headers=audited.as_(audited.auditor))
    assert offboard.status_code == 202, offboard.text
    record = audited.record_of(offboard)
    assert (record["action"], record["tenant"]) == ("tenant.offboard", "runner")
    assert record["run_id"] == offboard.json()["id"]
    assert record["principal_name"] == "operator@contoso.test"


@pytest.mark.parametrize(("who", "body", "status", "reason"), [
    (None, spec("nobody"), 401, "missing_token"),
    ("reader", spec("nobody"), 403, "insufficient_scope"),
    ("writer", spec("nobody", custom_domain="not a domain"), 422, "invalid_spec"),
])
def test_refused_onboardings_are_recorded_too(
        audited: Audited, who: str | None, body: dict[str, Any], status: int,
        reason: str) -> None:
    headers = audited.as_(getattr(audited, who)) if who else {}
    response = audited.client.post("/api/tenants", json=body, headers=headers)
    assert response.status_code == status, response.text
    record = audited.record_of(response)
    assert (record["outcome"], record["status_code"], record["reason"]) == (
        "refused", status, reason)
    assert record["run_id"] is None
    if who is None:  # refused at the edge, before the body was read
        assert record["principal_oid"] is None  # an unchecked token names nobody
        assert record["tenant"] is None
    else:
        assert record["principal_oid"] is not None
        assert record["tenant"] == "nobody"


def test_a_conflicting_onboarding_is_recorded_with_its_reason(audited: Audited) -> None:
    first = audited.client.post("/api/tenants", json=spec("taken"),
                                headers=audited.as_(audited.writer))
    assert first.status_code == 202
    again = audited.client.post("/api/tenants", json=spec("taken", display_name="Other"),
                                headers=audited.as_(audited.writer))
    assert again.status_code == 409
    assert audited.record_of(again)["reason"] == "tenant_conflict"


def test_reads_are_not_recorded(audited: Audited) -> None:
    response = audited.client.get("/api/tenants", headers=audited.as_(audited.reader))
    assert response.status_code == 200
    request_id = response.headers["x-request-id"]
    assert all(r["request_id"] != request_id for r in audited.trail(limit=500))


def test_reading_the_audit_trail_without_audit_read_is_refused(audited: Audited) -> None:
    for token in (audited.writer, audited.reader):
        response = audited.client.get("/api/audit", headers=audited.as_(token))
        assert response.status_code == 403
        assert "Audit.Read" in response.json()["error_description"]
    assert audited.client.get("/api/audit").status_code == 401


def test_the_trail_filters_by_tenant_principal_action_outcome_and_time(
        audited: Audited) -> None:
    for slug in ("filter-a", "filter-b"):
        audited.client.post("/api/tenants", json=spec(slug), headers=audited.as_(audited.writer))
    audited.client.post("/api/tenants", json=spec("filter-a"),
                        headers=audited.as_(audited.reader))
    identity = audited.server.state.directory.identity_by_name("uami-reader")
    assert identity is not None

    assert {r["tenant"] for r in audited.trail(tenant="filter-a")} == {"filter-a"}
    assert len(audited.trail(tenant="filter-a")) == 2
    refused = audited.trail(tenant="filter-a", outcome="refused")
    assert [r["principal_oid"] for r in refused] == [identity.principal_id]
    assert audited.trail(principal=identity.client_id)[0]["tenant"] == "filter-a"
    assert {r["action"] for r in audited.trail(action="tenant.onboard")} == {"tenant.onboard"}
    newest = audited.trail(limit=1)[0]
    assert audited.trail(since=newest["recorded_at"], limit=500)[-1]["id"] <= newest["id"]
    assert audited.trail(until="2000-01-01T00:00:00Z") == []
    page = audited.client.get("/api/audit", headers=audited.as_(audited.auditor),
                              params={"limit": 1, "offset": 1}).json()
    assert (page["limit"], page["offset"], len(page["items"])) == (1, 1, 1)
    assert page["total"] > 1


def test_forwarded_for_is_kept_apart_from_the_peer_and_only_its_addresses_kept(
        audited: Audited) -> None:
    response = audited.client.post("/api/tenants", json=spec("forwarded"), headers=audited.as_(
        audited.writer, **{"X-Forwarded-For": "203.0.113.9:4711, <script>x</script>, "
                           "[2001:db8::1]:443, 198.51.100.7"}))
    record = audited.record_of(response)
    assert record["client_ip"] == "testclient"
    assert record["forwarded_for"] == "203.0.113.9, 2001:db8::1, 198.51.100.7"


def test_tokens_passwords_and_client_secrets_never_reach_the_audit_trail(
        audited: Audited) -> None:
    forged = Forge(audited.server).token(roles=["Tenants.Write"], aud="api://someone-else")
    secrets = {
        "password": "Pa55w0rd!-never-stored",
        "client_secret": "cs~Client.Secret_never-stored",
        "api_key": "AKIA-never-stored-KEY",
        "cookie": "session=cookie-value-never-stored",
    }
    principal = base64.b64encode(json.dumps({"claims": [
        {"typ": "roles", "val": "Tenants.Write"}]}).encode()).decode()
    tokens = [audited.writer, audited.reader, forged,
              mi_token(audited.server, "aa-onboarding", ARM)]
    sent = [
        # A body with secrets beside the spec (refused: unknown fields), and inside it.
        ("POST", "/api/tenants", audited.writer,
         {**spec("secretive"), "password": secrets["password"],
          "client_secret": secrets["client_secret"]}),
        ("POST", "/api/tenants", audited.writer,
         spec("secretive", tags={"api_key": secrets["api_key"]})),
        ("POST", "/api/tenants", audited.reader,
         spec("secretive", admin_email=f"{secrets['password']}@x.test")),
        ("POST", "/api/tenants", forged, spec("secretive")),
        ("POST", f"/api/tenants?client_secret={secrets['client_secret']}", tokens[3],
         spec("secretive")),
        ("DELETE", f"/api/tenants/secretive?confirm={secrets['password']}", audited.auditor,
         None),
        ("POST", "/api/runs/0123456789abcdef0123456789abcdef/cancel", audited.writer, None),
    ]
    request_ids = []
    for method, path, token, body in sent:
        response = audited.client.request(
            method, path, json=body, headers={
                "Authorization": f"Bearer {token}", "Cookie": secrets["cookie"],
                "X-MS-CLIENT-PRINCIPAL": principal, "X-Api-Key": secrets["api_key"],
                "Proxy-Authorization": f"Basic {secrets['password']}"})
        request_ids.append(response.headers["x-request-id"])

    with audited.engine.catalog.engine.connect() as connection:
        rows = connection.execute(text("SELECT * FROM audit_records")).fetchall()
    stored = json.dumps([list(r) for r in rows], default=str)
    served = audited.client.get("/api/audit", headers=audited.as_(audited.auditor),
                                params={"limit": 500}).text
    assert set(request_ids) <= {r["request_id"] for r in json.loads(served)["items"]}
    for exposed in (stored, served):
        for name, secret in secrets.items():
            assert secret not in exposed, f"the {name} reached the audit trail"
        for token in (*tokens, audited.auditor):
            for part in token.split("."):
                assert part not in exposed, "part of a token reached the audit trail"
        assert principal not in exposed
        assert JWT_SHAPE.search(exposed) is None


def test_a_body_refused_at_the_edge_is_recorded_without_reading_it(audited: Audited) -> None:
    limit = audited.engine.settings.api.max_body_bytes
    response = audited.client.post(
        "/api/tenants", content=b'{"slug": "huge", "pad": "' + b"x" * limit + b'"}',
        headers=audited.as_(audited.writer, **{"Content-Type": "application/json"}))
    assert response.status_code == 413
    record = audited.record_of(response)
    assert (record["action"], record["outcome"], record["reason"]) == (
        "tenant.onboard", "refused", "request_too_large")
    assert record["tenant"] is None
    assert record["principal_oid"] is not None  # the token was checked before the size


def test_the_events_of_a_request_carry_its_request_id_as_the_audit_record_does(
        audited: Audited) -> None:
    response = audited.client.post("/api/tenants", json=spec("evented"),
                                   headers=audited.as_(audited.writer))
    assert response.status_code == 202, response.text
    request_id = response.headers["x-request-id"]
    events = audited.engine.catalog.events.page(tenant="evented")
    requested = [e for e in events if e.run_id == response.json()["run"]["id"]
                 and e.request_id is not None]
    assert requested, [e.type for e in events]
    assert {e.request_id for e in requested} == {request_id}
    assert audited.record_of(response)["request_id"] == request_id
