"""``/api/events``, its deliveries and ``/api/tenants/{slug}/history`` over HTTP (in process),
with a started engine and the emulator's tokens: filters, paging, CloudEvents in the answer,
roles, and invalid filters named."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from tenantops.api import create_app
from tenantops.emulator.directory import API_CLIENT_ID
from tenantops.emulator.server import EmulatorServer
from tenantops.provisioning.engine import Engine, current_step
from tenantops.provisioning.providers.base import Outcome, ProviderCall
from tests.api.test_tenants import Api, Caller, spec
from tests.auth.support import auth_settings, mi_token
from tests.provisioning.conftest import fast_settings

pytestmark = pytest.mark.integration  # the emulator server


class HoldTenant:
    """Holds the provider calls of one tenant's runs until `release`."""

    def __init__(self, slug: str) -> None:
        self.slug = slug
        self.entered = threading.Event()
        self.released = threading.Event()

    def __call__(self, call: ProviderCall, proceed: Callable[[], Outcome]) -> Outcome:
        step = current_step()
        if step is not None and step.tenant == self.slug and not self.released.is_set():
            self.entered.set()
            self.released.wait(30)
        return proceed()


HOLD = HoldTenant("quebec")


@pytest.fixture(scope="module")
def api(emulator_server: EmulatorServer,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    settings = fast_settings(tmp_path_factory.mktemp("events-api") / "data").model_copy(
        update={"auth": auth_settings(emulator_server.info)})
    engine = Engine(settings, middleware=[HOLD])
    engine.start()
    try:
        with TestClient(create_app(settings, engine=engine)) as client:
            writer = Caller(client, mi_token(emulator_server, "aa-onboarding", API_CLIENT_ID))
            for slug in ("oscar", "papa"):
                run = writer.post("/api/tenants", spec(slug)).json()["run"]
                engine.wait(run["id"], timeout=60)
            yield Api(engine, client, writer,
                      Caller(client, mi_token(emulator_server, "uami-reader", API_CLIENT_ID)),
                      Caller(client, mi_token(emulator_server, "uami-no-role", API_CLIENT_ID)))
    finally:
        HOLD.released.set()
        engine.stop()


def test_events_are_cloudevents_oldest_first_with_a_cursor(api: Api) -> None:
    page = api.reader.get("/api/events", limit=2).json()
    assert [i["event"]["type"] for i in page["items"]] == ["com.tenantops.run.requested",
                                                           "com.tenantops.run.started"]
    first = page["items"][0]
    assert first["event"]["specversion"] == "1.0"
    assert first["event"]["source"] == "/tenantops"
    assert first["event"]["subject"] == "tenants/oscar"
    assert first["event"]["data"]["tenant"]["slug"] == "oscar"
    assert first["actor"].startswith("app ")
    assert first["summary"].startswith("onboarding requested by app ")
    assert first["deliveries"] == []
    rest = api.reader.get("/api/events", after=page["next_after"], limit=500).json()
    assert rest["items"][0]["seq"] == page["items"][-1]["seq"] + 1
    assert len(page["items"]) + len(rest["items"]) == 6
    empty = api.reader.get("/api/events", after=rest["next_after"]).json()
    assert (empty["items"], empty["next_after"]) == ([], rest["next_after"])


def test_events_filter_by_tenant_type_run_and_time(api: Api) -> None:
    papa = api.reader.get("/api/events", tenant="papa").json()["items"]
    assert {i["event"]["tenant"] for i in papa} == {"papa"}
    onboarded = api.reader.get("/api/events", type="com.tenantops.tenant.*").json()["items"]
    assert [i["event"]["tenant"] for i in onboarded] == ["oscar", "papa"]
    run_id = papa[0]["event"]["runid"]
    by_run = api.reader.get("/api/events", run=run_id).json()["items"]
    assert [i["seq"] for i in by_run] == [i["seq"] for i in papa]
    since = papa[0]["event"]["time"]
    later = api.reader.get("/api/events", since=since).json()["items"]
    assert {i["event"]["tenant"] for i in later} == {"papa"}
    newest = api.reader.get("/api/events", order="desc", limit=1).json()
    assert newest["items"][0]["event"]["type"] == "com.tenantops.tenant.onboarded"
    assert newest["next_before"] == newest["items"][0]["seq"]


@pytest.mark.parametrize(("params", "field"), [
    ({"type": "tenant.onboarded"}, "type"),
    ({"type": "com.tenantops.tenant.onboarded; DROP TABLE events"}, "type"),
    ({"since": "yesterday"}, "since"),
    ({"limit": "0"}, "limit"),
    ({"order": "sideways"}, "order"),
])
def test_an_invalid_filter_is_a_422_naming_it(api: Api, params: dict[str, str],
                                              field: str) -> None:
    response = api.reader.get("/api/events", **params)
    assert response.status_code == 422
    assert response.json()["details"][0]["field"] == f"query.{field}"


def test_history_says_who_changed_what_newest_first(api: Api) -> None:
    history = api.reader.get("/api/tenants/oscar/history").json()
    assert history["tenant"] == "oscar"
    entries = history["entries"]
    assert [e["type"] for e in entries] == ["com.tenantops.tenant.onboarded",
                                            "com.tenantops.run.started",
                                            "com.tenantops.run.requested"]
    assert entries[0]["changes"]["status"] == {"from": "provisioning", "to": "active"}
    assert entries[0]["changes"]["hostname"] == {"from": None, "to": "www.oscar.test"}
    assert entries[2]["changes"]["custom_domain"] == {"from": None, "to": "www.oscar.test"}
    assert entries[2]["run_kind"] == "onboard"
    assert entries[2]["actor"].startswith("app ")
    assert {e["run_id"] for e in entries} == {entries[0]["run_id"]}
    assert history["next_before"] is None
    page = api.reader.get("/api/tenants/oscar/history", limit=1).json()
    older = api.reader.get("/api/tenants/oscar/history", before=page["next_before"]).json()
    assert [e["seq"] for e in older["entries"]] == [e["seq"] for e in entries[1:]]


def test_history_of_an_unknown_tenant_is_a_404(api: Api) -> None:
    response = api.reader.get("/api/tenants/nobody/history")
    assert response.status_code == 404
    assert "nobody" in response.json()["error_description"]


def test_deliveries_list_and_an_unknown_redelivery(api: Api) -> None:
    listed = api.reader.get("/api/events/deliveries", status="parked").json()
    assert listed == {"items": [], "counts": {"pending": 0, "delivered": 0, "parked": 0,
                                              "unrouted": listed["counts"]["unrouted"]}}
    missing = api.writer.post("/api/events/deliveries/424242/redeliver")
    assert missing.status_code == 404
    assert "424242" in missing.json()["error_description"]


@pytest.mark.parametrize(("method", "path", "role"), [
    ("GET", "/api/events", "Tenants.Read"),
    ("GET", "/api/events/deliveries", "Tenants.Read"),
    ("GET", "/api/tenants/oscar/history", "Tenants.Read"),
    ("POST", "/api/events/deliveries/1/redeliver", "Tenants.Write"),
])
def test_reading_events_without_the_role_is_refused(api: Api, method: str, path: str,
                                                   role: str) -> None:
    caller = api.operator  # a managed identity holding no role of the API
    response = caller.client.request(method, path, headers=caller.headers())
    assert response.status_code == 403
    assert role in response.headers["www-authenticate"]
    anonymous = api.client.request(method, path)
    assert anonymous.status_code == 401


def test_redelivery_needs_tenants_write_not_read(api: Api) -> None:
    response = api.reader.post("/api/events/deliveries/1/redeliver")
    assert response.status_code == 403
    assert "Tenants.Write" in response.headers["www-authenticate"]


def test_retry_and_cancel_record_who_asked(api: Api) -> None:
    run = api.writer.post("/api/tenants", spec("quebec")).json()["run"]
    assert HOLD.entered.wait(30), "the run never reached a provider"
    assert api.writer.post(f"/api/runs/{run['id']}/cancel").status_code == 202
    HOLD.released.set()
    api.engine.wait(run["id"], timeout=60)
    assert api.writer.post(f"/api/runs/{run['id']}/retry").status_code == 202
    assert api.engine.wait(run["id"], timeout=60).status == "succeeded"
    items = api.reader.get("/api/events", tenant="quebec").json()["items"]
    by_type = {i["event"]["type"].removeprefix("com.tenantops."): i for i in items}
    assert by_type["run.cancelled"]["actor"] == run["requested_by"]
    assert by_type["run.retried"]["actor"] == run["requested_by"]
    assert by_type["run.cancelled"]["event"]["data"]["tenant"]["status"] == "failed"
