"""Real tokens from the emulator, the way callers get them, are accepted by GET /api/whoami:
managed identities through the managed-identity endpoint and a CI service principal through
client_credentials; v1 tokens (the default directory's API) and v2 tokens (the second
emulator's API); the GUID and the ``api://`` audience alike."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import jwt
import pytest

from tenantops.emulator.server import EmulatorServer
from tests.auth.support import (
    API_CLIENT_ID,
    CI_CLIENT_ID,
    Api,
    api_for,
    client_credentials_token,
    mi_token,
    settings_for,
    v1_client_credentials_token,
)


@dataclass(frozen=True)
class Source:
    id: str
    fetch: Callable[[EmulatorServer], str]
    version: str
    audience: str
    caller: str
    roles: tuple[str, ...]


def _mi(identity: str, resource: str) -> Callable[[EmulatorServer], str]:
    return lambda server: mi_token(server, identity, resource)


def _v2_client_credentials(scope: str) -> Callable[[EmulatorServer], str]:
    return lambda server: client_credentials_token(server.info, scope)


def _v1_client_credentials(resource: str) -> Callable[[EmulatorServer], str]:
    return lambda server: v1_client_credentials_token(server.info, resource)


API_URI = f"api://{API_CLIENT_ID}"
READ_WRITE = ("Tenants.Read", "Tenants.Write")

V1_SOURCES = [
    Source("managed-identity-guid-audience", _mi("aa-onboarding", API_CLIENT_ID), "1.0",
           API_CLIENT_ID, "aa-onboarding", READ_WRITE),
    Source("managed-identity-api-uri-audience", _mi("aa-onboarding", API_URI), "1.0",
           API_URI, "aa-onboarding", READ_WRITE),
    Source("managed-identity-api-uri-with-trailing-slash", _mi("aa-onboarding", f"{API_URI}/"),
           "1.0", f"{API_URI}/", "aa-onboarding", READ_WRITE),
    Source("user-assigned-identity-without-roles", _mi("uami-no-role", API_CLIENT_ID), "1.0",
           API_CLIENT_ID, "uami-no-role", ()),
    Source("client-credentials-v2-endpoint", _v2_client_credentials(f"{API_URI}/.default"),
           "1.0", API_URI, "ci-pipeline", READ_WRITE),
    Source("client-credentials-v1-endpoint-guid", _v1_client_credentials(API_CLIENT_ID), "1.0",
           API_CLIENT_ID, "ci-pipeline", READ_WRITE),
]
V2_SOURCES = [
    Source("v2-managed-identity", _mi("aa-onboarding", API_URI), "2.0", API_CLIENT_ID,
           "aa-onboarding", READ_WRITE),
    Source("v2-client-credentials", _v2_client_credentials(f"{API_CLIENT_ID}/.default"), "2.0",
           API_CLIENT_ID, "ci-pipeline", READ_WRITE),
]


def _expected_ids(server: EmulatorServer, caller: str) -> tuple[str, str]:
    directory = server.state.directory
    identity = directory.identity_by_name(caller)
    if identity is not None:
        return identity.principal_id, identity.client_id
    app = directory.app_by_name(caller)
    assert app is not None
    return app.service_principal_id, app.client_id


@pytest.fixture(scope="module")
def api(emulator_server: EmulatorServer) -> Iterator[Api]:
    app = api_for(settings_for(emulator_server.info))
    yield Api(app)
    app.state.authenticator.validator.jwks.close()


@pytest.fixture(scope="module")
def v2_api(foreign_emulator_server: EmulatorServer) -> Iterator[Api]:
    app = api_for(settings_for(foreign_emulator_server.info))
    yield Api(app)
    app.state.authenticator.validator.jwks.close()


def _check(api: Api, server: EmulatorServer, source: Source) -> None:
    token = source.fetch(server)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["aud"] == source.audience
    assert claims["ver"] == source.version

    response = api.bearer(token)

    assert response.status_code == 200, response.text
    oid, appid = _expected_ids(server, source.caller)
    assert response.json() == {
        "oid": oid, "appid": appid, "tid": server.info.tenant_id, "roles": list(source.roles),
        "token_version": source.version, "source": "bearer",
    }


@pytest.mark.parametrize("source", V1_SOURCES, ids=[s.id for s in V1_SOURCES])
def test_v1_token_from_the_emulator_is_accepted(
    api: Api, emulator_server: EmulatorServer, source: Source
) -> None:
    _check(api, emulator_server, source)


@pytest.mark.parametrize("source", V2_SOURCES, ids=[s.id for s in V2_SOURCES])
def test_v2_token_from_the_emulator_is_accepted(
    v2_api: Api, foreign_emulator_server: EmulatorServer, source: Source
) -> None:
    _check(v2_api, foreign_emulator_server, source)


def test_lowercase_bearer_scheme_is_accepted(api: Api, emulator_server: EmulatorServer) -> None:
    token = mi_token(emulator_server, "aa-onboarding", API_CLIENT_ID)

    response = api.get("/api/whoami", [("Authorization", f"bearer {token}")])

    assert response.status_code == 200


def test_role_route_admits_a_caller_holding_the_role(
    api: Api, emulator_server: EmulatorServer
) -> None:
    token = mi_token(emulator_server, "aa-onboarding", API_CLIENT_ID)
    oid, _ = _expected_ids(emulator_server, "aa-onboarding")

    assert api.bearer(token, "/api/_probe/write").json() == {"oid": oid}
    assert api.bearer(token, "/api/_probe/read").status_code == 200


def test_same_token_twice_is_accepted_twice(api: Api, emulator_server: EmulatorServer) -> None:
    token = client_credentials_token(emulator_server.info, f"{API_URI}/.default")

    assert api.bearer(token).status_code == 200
    assert api.bearer(token).status_code == 200


def test_health_needs_no_token(api: Api) -> None:
    response = api.get("/api/health")

    assert response.status_code == 200
    assert response.json()["status"] == "ok"


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json"])
def test_no_other_route_is_served_without_a_token(api: Api, path: str) -> None:
    assert api.get(path).status_code == 404


def test_ci_client_id_is_what_the_directory_says(emulator_server: EmulatorServer) -> None:
    app = emulator_server.state.directory.app_by_name("ci-pipeline")
    assert app is not None
    assert app.client_id == CI_CLIENT_ID
