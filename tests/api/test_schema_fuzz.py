"""Schemathesis against the published OpenAPI document: with a valid token no request makes
a 5xx and every response matches its schema; without or with a wrong token, only 401/403."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from tenantops.api import create_app
from tenantops.emulator.directory import API_CLIENT_ID
from tenantops.emulator.server import EmulatorServer
from tenantops.provisioning.engine import Engine
from tests.auth.support import auth_settings, mi_token
from tests.provisioning.conftest import fast_settings

pytestmark = [
    pytest.mark.integration,
    # schemathesis's own string strategies draw from `random` (its issue, not ours).
    pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning"),
]


@pytest.fixture(scope="module")
def fuzz_target(emulator_server: EmulatorServer,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    config = fast_settings(tmp_path_factory.mktemp("fuzz") / "data").model_copy(
        update={"auth": auth_settings(emulator_server.info)})
    engine = Engine(config)
    engine.start()
    try:
        state = emulator_server.state
        api = state.directory.app_by_name("tenantops-api")
        cli = state.directory.app_by_name("tenantops-cli")
        operator = state.directory.user_by_username("operator@contoso.test")
        assert api is not None
        assert cli is not None
        assert operator is not None
        yield {
            "app": create_app(config, engine=engine),
            "all_roles": state.tokens.user_token(api, API_CLIENT_ID, operator, cli).access_token,
            "arm": mi_token(emulator_server, "aa-onboarding",
                            "https://management.core.windows.net/"),
        }
    finally:
        engine.stop()


def operations(app: Any) -> list[Any]:
    """Every operation of the app's OpenAPI document, as schemathesis sees it."""
    schema = schemathesis.openapi.from_dict(app.openapi())
    found = []
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an Err would raise here: good
        found.append(operation)
    return found


FUZZ = settings(max_examples=15, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))


def test_valid_token_never_gets_5xx_and_responses_match_schema(
    fuzz_target: dict[str, Any],
) -> None:
    app = fuzz_target["app"]
    headers = {"Authorization": f"Bearer {fuzz_target['all_roles']}"}
    found = operations(app)
    assert len(found) >= 8
    for operation in found:

        @FUZZ
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            response = case.call(app=app, headers=headers)
            assert response.status_code < 500, (case.method, case.path, response.text)
            case.validate_response(response, checks=[
                not_a_server_error, status_code_conformance, response_schema_conformance])

        check()


def test_missing_or_wrong_token_gets_only_401_or_403(fuzz_target: dict[str, Any]) -> None:
    app = fuzz_target["app"]
    credentials: list[dict[str, str]] = [
        {}, {"Authorization": f"Bearer {fuzz_target['arm']}"},
        {"Authorization": "Bearer not.a.token"}]
    public = {"/api/health", "/api/health/ready", "/api/meta"}  # liveness, readiness, meta
    protected = [op for op in operations(app) if op.path not in public]
    assert len(protected) == len(operations(app)) - len(public)  # the open routes
    for operation in protected:

        @FUZZ
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            for headers in credentials:
                response = case.call(app=app, headers=headers)
                assert response.status_code in (401, 403), (
                    case.method, case.path, sorted(headers), response.status_code)

        check()
