"""Custom domains and Idempotency-Key over HTTP, as tenants with Tenants.Write attack them:
another tenant's domain (equal, above, below, its asuid name) is a 409 that names that tenant
only to callers who may read tenants; the platform's names and special-use names are a 422
naming field, value and rule; one key from one caller opens one run however many requests race
with it, and never leads another caller to it. A waiting customer-managed domain shows the
records its customer must publish.

Callers are tokens signed with the emulator's key (a tenant's tokens with chosen roles and
object IDs), as tests/api/test_attacks.py makes them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI

from tenantops.api import create_app
from tenantops.emulator.server import EmulatorServer
from tenantops.provisioning.engine import Engine
from tests.auth.support import Forge, auth_settings
from tests.provisioning.conftest import fast_settings

DEFAULT_HOSTNAME = "edge.platform.test"


@dataclass
class Caller:
    app: FastAPI
    token: str

    def request(self, method: str, path: str, body: Any = None,
                headers: dict[str, str] | None = None) -> httpx.Response:
        async def call() -> httpx.Response:
            async with self.client() as client:
                return await client.request(method, path, json=body,
                                            headers=headers or {})
        return anyio.run(call)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app),
                                 base_url="http://tenantops.test",
                                 headers={"Authorization": f"Bearer {self.token}"})

    def onboard(self, body: dict[str, Any], key: str | None = None) -> httpx.Response:
        return self.request("POST", "/api/tenants", body,
                            {"Idempotency-Key": key} if key else None)


@dataclass
class Api:
    engine: Engine
    app: FastAPI
    forge: Forge

    def caller(self, *roles: str, oid: str | None = None) -> Caller:
        claims = self.forge.claims(roles=list(roles), oid=oid or str(uuid.uuid4()))
        return Caller(self.app, self.forge.sign(claims))


@pytest.fixture(scope="module")
def api(emulator_server: EmulatorServer,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    settings = fast_settings(
        tmp_path_factory.mktemp("domains-api") / "data",
        providers={"dns": {"zones": ["tenants.test", "eu.tenants2.test"]},
                   "webhost": {"default_hostname": DEFAULT_HOSTNAME}},
    ).model_copy(update={"auth": auth_settings(emulator_server.info)})
    engine = Engine(settings)  # not started: runs are recorded and enqueued, not executed
    engine.catalog.migrate()
    try:
        yield Api(engine, create_app(settings, engine=engine), Forge(emulator_server))
    finally:
        engine.stop()


def spec(slug: str, domain: str, **changes: Any) -> dict[str, Any]:
    return {"slug": slug, "display_name": slug.title(), "custom_domain": domain,
            "admin_email": f"admin@{slug}.test", **changes}


@pytest.mark.parametrize(("claimed", "relation"), [
    ("portal.{v}.tenants.test", "is the custom domain of"),
    ("x.portal.{v}.tenants.test", "is below the custom domain of"),
    ("asuid.portal.{v}.tenants.test", "is below the custom domain of"),
    ("{v}.tenants.test", "is above the custom domain of"),
], ids=["equal", "child", "asuid-name", "parent"])
def test_claim_of_another_tenants_domain_is_refused_with_409_naming_it_only_to_readers(
        api: Api, claimed: str, relation: str) -> None:
    victim_slug = f"victim-{uuid.uuid4().hex[:8]}"
    label = victim_slug.replace("-", "")
    victim_domain = f"portal.{label}.tenants.test"
    domain = claimed.format(v=label)
    owner = api.caller("Tenants.Read", "Tenants.Write")
    assert owner.onboard(spec(victim_slug, victim_domain)).status_code == 202

    blind = api.caller("Tenants.Write").onboard(spec(f"blind-{label}", domain))
    assert blind.status_code == 409, blind.text
    problem = blind.json()
    assert problem["error"] == "tenant_conflict"
    assert f"custom domain '{domain}' {relation} another tenant" in problem[
        "error_description"]
    assert victim_slug not in blind.text
    assert victim_domain not in blind.text.replace(domain, "")

    reader = api.caller("Tenants.Read", "Tenants.Write").onboard(spec(f"seer-{label}", domain))
    assert reader.status_code == 409
    assert (f"{relation} tenant '{victim_slug}' ({victim_domain})"
            in reader.json()["error_description"])
    for slug in (f"blind-{label}", f"seer-{label}"):
        assert api.engine.catalog.find_tenant(slug) is None


@pytest.mark.parametrize(("domain", "rule"), [
    (DEFAULT_HOSTNAME, f"is {DEFAULT_HOSTNAME}, the web host's default hostname"),
    (f"www.{DEFAULT_HOSTNAME}", f"is below {DEFAULT_HOSTNAME}, the web host's default hostname"),
    ("eu.tenants2.test", "is the apex of the platform zone eu.tenants2.test"),
    ("portal.acme.localhost", "is under .localhost, a special-use domain"),
    ("portal.acme.example", "is under .example, a special-use domain"),
    ("portal.acme.invalid", "is under .invalid, a special-use domain"),
    ("portal.acme.local", "is under .local, a special-use domain"),
], ids=["default-hostname", "below-default-hostname", "zone-apex", "localhost", "example",
        "invalid", "local"])
def test_claim_of_platform_or_special_use_name_is_refused_with_422(
        api: Api, domain: str, rule: str) -> None:
    response = api.caller("Tenants.Write").onboard(spec("claimant", domain))
    assert response.status_code == 422, response.text
    details = response.json()["details"]
    assert [(d["field"], d["value"]) for d in details] == [("custom_domain", domain)]
    assert details[0]["rule"].startswith(rule), details[0]["rule"]
    assert api.engine.catalog.find_tenant("claimant") is None


def test_twenty_concurrent_requests_with_one_key_and_different_specs_give_one_run(
        api: Api) -> None:
    caller = api.caller("Tenants.Read", "Tenants.Write")
    key = f"burst-{uuid.uuid4().hex}"
    prefix = f"b{uuid.uuid4().hex[:6]}"

    async def burst() -> list[httpx.Response]:
        async with caller.client() as client:
            responses: list[httpx.Response] = []

            async def send(i: int) -> None:
                responses.append(await client.post(
                    "/api/tenants", json=spec(f"{prefix}-{i}", f"app.{prefix}-{i}.tenants.test"),
                    headers={"Idempotency-Key": key}))

            async with anyio.create_task_group() as group:
                for i in range(20):
                    group.start_soon(send, i)
            return responses

    responses = anyio.run(burst)
    accepted = [r for r in responses if r.status_code == 202]
    refused = [r for r in responses if r.status_code == 409]
    assert len(accepted) == 1, [r.status_code for r in responses]
    assert len(refused) == 19
    run_id = accepted[0].json()["run"]["id"]
    assert {r.json()["error"] for r in refused} == {"idempotency_key_reused"}
    assert all(run_id in r.json()["error_description"] for r in refused)
    made = [t for t in api.engine.catalog.list_tenants() if t.slug.startswith(prefix)]
    assert len(made) == 1

    # The same key from another caller is another key, and leads it to no run of the first.
    other = api.caller("Tenants.Read", "Tenants.Write")
    own = other.onboard(spec(f"{prefix}-other", f"app.{prefix}-other.tenants.test"), key)
    assert own.status_code == 202
    assert own.json()["run"]["id"] != run_id
    taken = accepted[0].json()["tenant"]["slug"]
    clash = other.onboard(spec(taken, f"app.{taken}.tenants.test", plan="premium"), key)
    assert clash.status_code == 409
    assert run_id not in clash.text


def test_same_key_and_same_request_again_returns_the_first_run(api: Api) -> None:
    caller = api.caller("Tenants.Write")
    body = spec("repeat", "app.repeat.tenants.test")
    first = caller.onboard(body, "again-key")
    again = caller.onboard(body, "again-key")
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json()["run"]["id"] == first.json()["run"]["id"]


def test_waiting_customer_domain_shows_the_records_to_publish(api: Api) -> None:
    caller = api.caller("Tenants.Read", "Tenants.Write")
    accepted = caller.onboard(spec("customer", "portal.customer-co.test"))
    assert accepted.status_code == 202
    options = accepted.json()["run"]["options"]
    assert options["domain_kind"] == "customer"
    shown = caller.request("GET", "/api/tenants/customer").json()["domain"]
    assert (shown["name"], shown["kind"], shown["waiting"]) == (
        "portal.customer-co.test", "customer", True)
    assert shown["pending_records"] == options["customer_records"]
    site = api.engine.providers.webhost.site()
    assert shown["pending_records"][0] == {"type": "CNAME", "name": "portal.customer-co.test",
                                           "value": DEFAULT_HOSTNAME}
    assert shown["pending_records"][1]["value"] == site.verification_id
    assert shown["pending_records"][2]["name"] == "_tenantops-challenge.portal.customer-co.test"

    platform = caller.onboard(spec("inzone", "app.inzone.tenants.test"))
    assert platform.json()["run"]["options"]["domain_kind"] == "platform"
    assert "customer_records" not in platform.json()["run"]["options"]
    inzone = caller.request("GET", "/api/tenants/inzone").json()["domain"]
    assert (inzone["kind"], inzone["waiting"], inzone["pending_records"]) == (
        "platform", False, [])
