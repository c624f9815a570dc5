"""The example command step in runbooks/steps (a runbook turned into a step) inside
onboarding, an update and offboarding on the embedded default, against a billing API served
by the test: throttled at first (exit 75, retried), its key only from the secrets provider."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tenantops.provisioning.providers.secrets import Secret
from tenantops.provisioning.run_requests import TenantChange
from tests.provisioning.conftest import EngineFactory, make_engine, spec_for

__all__ = ["make_engine"]  # the fixture, from the provisioning tests

pytestmark = pytest.mark.integration  # the step is a process

STEP = Path(__file__).parents[2] / "runbooks" / "steps" / "create_billing_customer.py"


class Billing:
    """A billing API with the contract the step's docstring states: customers by slug."""

    def __init__(self) -> None:
        self.customers: dict[str, dict[str, Any]] = {}
        self.throttle = 0
        self.keys: list[str] = []
        self.lock = threading.Lock()


@pytest.fixture
def billing() -> Iterator[tuple[str, Billing]]:
    state = Billing()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: Any = None) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _slug(self) -> str:
            return self.path.rsplit("/", 1)[-1]

        def do_GET(self) -> None:
            found = state.customers.get(self._slug())
            self._answer(200 if found else 404, found)

        def do_PUT(self) -> None:
            with state.lock:
                state.keys.append(self.headers.get("Authorization", ""))
                if state.throttle > 0:
                    state.throttle -= 1
                    self._answer(429, {"error": "slow down"})
                    return
                wanted = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                customer = {"id": f"cus_{self._slug()}", **wanted}
                state.customers[self._slug()] = customer
            self._answer(200, customer)

        def do_DELETE(self) -> None:
            self._answer(204 if state.customers.pop(self._slug(), None) else 404)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api", state
    finally:
        server.shutdown()
        server.server_close()


def test_the_runbook_step_makes_changes_and_removes_the_billing_customer(
        make_engine: EngineFactory, billing: tuple[str, Billing]) -> None:
    url, state = billing
    engine = make_engine(steps=[{
        "name": "create_billing_customer", "type": "command",
        "command": [sys.executable, str(STEP)], "after": "create_database",
        "runs_in": ["onboard", "offboard", "update"], "observe": True,
        "env": {"BILLING_API_URL": url},
        "secrets": {"BILLING_API_KEY": "billing-api-key"}}])
    engine.providers.secrets.ensure(Secret("billing-api-key"))
    key = engine.providers.secrets.read("billing-api-key")
    state.throttle = 2

    assert [(c.step, c.action) for c in engine.preview_onboarding(spec_for("acme")).changes
            if c.step == "create_billing_customer"] == [("create_billing_customer", "create")]
    run = engine.wait(engine.onboard(spec_for("acme"), requested_by="ops").id)
    assert run.status == "succeeded", run.error
    step = run.step("create_billing_customer")
    assert (step.attempts, step.outputs) == (3, {"customer_id": "cus_acme"})
    assert "customer acme is cus_acme on plan standard" in (step.message or "")
    assert state.customers["acme"] == {"id": "cus_acme", "name": "Acme Ltd",
                                       "plan": "standard", "email": "admin@acme.test"}
    assert set(state.keys) == {f"Bearer {key}"}

    update = engine.update("acme", TenantChange(plan="premium", display_name="Acme Group"),
                           requested_by="ops")
    assert update is not None
    assert engine.wait(update.id).status == "succeeded"
    assert state.customers["acme"]["plan"] == "premium"
    assert state.customers["acme"]["name"] == "Acme Group"

    off = engine.wait(engine.offboard("acme", requested_by="ops").id)
    assert off.status == "succeeded", off.error
    assert "acme" not in state.customers


def test_the_runbook_step_without_its_configuration_fails_saying_what_to_set(
        make_engine: EngineFactory) -> None:
    engine = make_engine(steps=[{
        "name": "create_billing_customer", "type": "command",
        "command": [sys.executable, str(STEP)], "after": "create_database"}])
    run = engine.wait(engine.onboard(spec_for("acme"), requested_by="ops").id)
    assert (run.status, run.failed_step) == ("failed", "create_billing_customer")
    assert "exited 2" in (run.error or "")
    assert "BILLING_API_URL and BILLING_API_KEY must be set" in (run.error or "")
