"""Azure caches managed-identity tokens for around 24 hours, so a role assigned now shows late:
the emulator does the same on App Service (by default), says so in its diagnostic header, and
the doctor turns that into the explanation of "I assigned the role and still get 403"."""

from __future__ import annotations

import dataclasses
import gc
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from tenantops.cli.main import app
from tenantops.config import EmulatorSettings
from tenantops.emulator.directory import API_CLIENT_ID, Directory, default_directory
from tenantops.emulator.server import EmulatorInfo, EmulatorServer, read_info
from tenantops.emulator.state import EmulatorState
from tenantops.emulator.token_cache import (
    APP_SERVICE_CACHE,
    NO_CACHE,
    ManagedIdentityTokenCache,
    TokenCachePolicy,
)
from tenantops.emulator.tokens import IssuedToken
from tenantops.identity import IdentityCredential
from tenantops.identity._credential import BearerToken
from tenantops.identity._runtimes import detect_runtime
from tenantops.identity._sources import SourceCheck
from tenantops.identity.doctor import Doctor
from tests.emulator.helpers import RUNTIME_VARIABLES, act_as, claims_of
from tests.identity.conftest import no_imds
from tests.identity.fake_api import FakeApi

DIAGNOSTIC = "x-tenantops-diagnostic"
URL = "https://api.test/tenants"
runner = CliRunner()


@pytest.fixture(scope="module")
def cached(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    """An emulator as ``tenantops emulator`` starts by default: App Service caches 24 h."""
    server = EmulatorServer(default_directory(), tmp_path_factory.mktemp("cached"),
                            token_cache=APP_SERVICE_CACHE)
    server.start()
    yield server
    gc.collect()  # close clients' pooled TLS connections, so the stop is quick
    server.stop()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (*RUNTIME_VARIABLES, "TENANTOPS_IDENTITY__SOURCE", "TENANTOPS_IDENTITY__IDENTITY",
                 "TENANTOPS_IDENTITY__AUDIENCE", "TENANTOPS_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def ask(server: EmulatorServer, runtime: str, identity: str = "uami-no-role",
        host: str = "aa-onboarding", resource: str = API_CLIENT_ID) -> httpx.Response:
    """A token request as the runtime's clients send it, from the host of ``host``."""
    state, info = server.state, server.info
    mi = state.directory.identity_by_name(identity)
    assert mi is not None
    selector = {"client_id": mi.client_id} if mi.kind == "user" else {}
    secret = state.host_secret(host)
    if runtime == "imds":
        return httpx.get(f"{info.mi_url}/imds/{secret}/metadata/identity/oauth2/token",
                         params={"api-version": "2018-02-01", "resource": resource, **selector},
                         headers={"Metadata": "true"})
    if runtime == "msi-legacy":
        params = {"api-version": "2017-09-01", "resource": resource,
                  **({"clientid": mi.client_id} if selector else {})}
        return httpx.get(f"{info.mi_url}/msi/2017-09-01/token", params=params,
                         headers={"secret": secret})
    prefix = "/automation" if runtime == "automation" else ""
    return httpx.get(f"{info.mi_url}{prefix}/msi/token",
                     params={"api-version": "2019-08-01", "resource": resource, **selector},
                     headers={"X-IDENTITY-HEADER": secret})


def roles(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    value: list[str] = claims_of(response.json()["access_token"]).get("roles", [])
    return value


def admin(server: EmulatorServer, method: str, **assignment: str) -> dict[str, Any]:
    response = httpx.request(method, f"{server.info.mi_url}/_emulator/assignments",
                             json=assignment)
    assert response.status_code < 400, response.text
    data: dict[str, Any] = response.json()
    return data


def test_app_service_serves_the_same_token_again_and_says_so(cached: EmulatorServer) -> None:
    before = dict(cached.state.stats)
    first = ask(cached, "app-service", identity="aa-onboarding", resource=f"api://{API_CLIENT_ID}")
    second = ask(cached, "app-service", identity="aa-onboarding",
                 resource=f"api://{API_CLIENT_ID}")
    assert first.json()["access_token"] == second.json()["access_token"]
    assert first.headers[DIAGNOSTIC].startswith("new token issued at ")
    diagnostic = second.headers[DIAGNOSTIC]
    issued = time.strftime("%Y-%m-%dT%H:%M:%SZ",
                           time.gmtime(claims_of(first.json()["access_token"])["iat"]))
    assert diagnostic.startswith(f"cached token served: issued at {issued} (")
    assert "roles in the token: Tenants.Read, Tenants.Write; roles assigned now: " \
        "Tenants.Read, Tenants.Write; a new token is issued after " in diagnostic
    stats = cached.state.stats
    assert stats["tokens:managed-identity"] - before.get("tokens:managed-identity", 0) == 1
    assert stats["tokens:managed-identity:cached"] \
        - before.get("tokens:managed-identity:cached", 0) == 1


def test_the_legacy_msi_endpoint_of_app_service_shares_the_cache_and_automation_does_not(
    cached: EmulatorServer,
) -> None:
    resource = "https://vault.azure.net"
    app_service = ask(cached, "app-service", identity="aa-onboarding", resource=resource)
    legacy = ask(cached, "msi-legacy", identity="aa-onboarding", resource=resource)
    assert legacy.json()["access_token"] == app_service.json()["access_token"]
    automation = ask(cached, "automation", identity="aa-onboarding", resource=resource)
    assert automation.json()["access_token"] != app_service.json()["access_token"]
    assert DIAGNOSTIC not in automation.headers


def test_a_new_role_shows_late_on_app_service_and_at_once_on_imds(
    cached: EmulatorServer,
) -> None:
    resource = f"api://{API_CLIENT_ID}"
    assert roles(ask(cached, "app-service", resource=resource)) == []
    added = admin(cached, "POST", principal="uami-no-role", resource="tenantops-api",
                  role="Tenants.Read")
    try:
        assert added["changed"] is True
        assert added["token_cache"] == "24 h on app-service"
        late = ask(cached, "app-service", resource=resource)
        assert roles(late) == []
        assert "roles in the token: (none); roles assigned now: Tenants.Read (different: role " \
            "assignments changed after this token was issued)" in late.headers[DIAGNOSTIC]
        assert roles(ask(cached, "imds", resource=resource)) == ["Tenants.Read"]
    finally:
        admin(cached, "DELETE", principal="uami-no-role", resource="tenantops-api",
              role="Tenants.Read")


def test_a_cached_token_served_by_imds_says_how_long_it_has_left(tmp_path: Path) -> None:
    """IMDS answers expires_in; for a token issued an hour ago it is an hour less."""
    server = EmulatorServer(default_directory(), tmp_path,
                            token_cache=TokenCachePolicy(24, frozenset({"imds"})))
    server.start()
    try:
        state = server.state
        mi = state.directory.identity_by_name("aa-onboarding")
        api = state.directory.app_by_client_id(API_CLIENT_ID)
        assert mi is not None
        assert api is not None
        fresh = state.tokens.app_token(api, API_CLIENT_ID, mi)
        hour_old = dataclasses.replace(fresh, not_before=fresh.not_before - 3600,
                                       expires_on=fresh.expires_on - 3600)
        state.mi_tokens.put("imds", mi.client_id, API_CLIENT_ID, hour_old)
        asked = time.time()
        body = ask(server, "imds", identity="aa-onboarding").json()
        answered = time.time()
    finally:
        gc.collect()
        server.stop()
    assert body["access_token"] == hour_old.access_token
    assert body["expires_on"] == str(hour_old.expires_on)
    # Whole seconds, computed between the question and the answer (however slow the machine).
    expires_in = int(body["expires_in"])
    assert hour_old.expires_on - answered - 1 <= expires_in <= hour_old.expires_on - asked + 1
    assert int(body["expires_in"]) < fresh.expires_in - 3500


def test_cache_age_and_remaining_lifetime_decide_when_a_token_is_issued_again() -> None:
    now = [1_800_000_000.0]
    cache = ManagedIdentityTokenCache(TokenCachePolicy(1.0, frozenset({"app-service"})),
                                      clock=lambda: now[0])

    def token(lifetime: int) -> IssuedToken:
        issued = int(now[0])
        return IssuedToken("t", issued + lifetime, issued, lifetime, "r", {})

    long_lived = token(86700)
    cache.put("app-service", "CLIENT", "r", long_lived)
    cache.put("imds", "client", "r", long_lived)  # IMDS does not cache under this policy
    assert cache.get("imds", "client", "r") is None
    now[0] += 3599
    assert cache.get("app-service", "client", "r") is long_lived  # client IDs ignore case
    now[0] += 1
    assert cache.get("app-service", "client", "r") is None  # an hour old: issue a new one
    short = token(900)
    cache.put("app-service", "client", "r", short)
    now[0] += 301
    assert cache.get("app-service", "client", "r") is None  # under ten minutes left
    never = ManagedIdentityTokenCache(NO_CACHE)
    never.put("app-service", "client", "r", short)
    assert never.get("app-service", "client", "r") is None


def test_the_emulator_settings_refuse_an_endpoint_that_does_not_exist() -> None:
    with pytest.raises(ValidationError, match=r"mi_token_cache_runtimes\.0"):
        EmulatorSettings(mi_token_cache_runtimes=["virtual-machine"])
    with pytest.raises(ValidationError, match="mi_token_cache_hours"):
        EmulatorSettings(mi_token_cache_hours=-1)


# The doctor --------------------------------------------------------------------------------


def test_doctor_explains_the_403_of_a_token_cached_before_the_role_was_assigned(
    monkeypatch: pytest.MonkeyPatch, clean_env: None, cached: EmulatorServer,
) -> None:
    identity = "uami-no-role"
    act_as(monkeypatch, cached, "aa-onboarding", "app-service")
    mi = cached.state.directory.identity_by_name(identity)
    assert mi is not None
    monkeypatch.setenv("AZURE_CLIENT_ID", mi.client_id)
    api = FakeApi(API_CLIENT_ID, cached.info.tenant_id, required_role="Tenants.Write")
    before = Doctor(api_transport=api.transport(), imds_probe=no_imds).run(URL)
    assert before.steps[-1].status == "fail"
    assert "cached token" not in before.render()  # the token was new: nothing cached yet
    admin(cached, "POST", principal=identity, resource="tenantops-api", role="Tenants.Write")
    try:
        report = Doctor(api_transport=api.transport(), imds_probe=no_imds).run(URL)
    finally:
        admin(cached, "DELETE", principal=identity, resource="tenantops-api",
              role="Tenants.Write")
    call = report.steps[-1]
    assert call.status == "fail"
    assert ("the managed-identity endpoint served a cached token (x-tenantops-diagnostic): "
            "cached token served: issued at ") in call.finding
    assert "roles assigned now: Tenants.Write (different:" in call.finding
    assert report.verdict.fix.startswith("the identity holds Tenants.Write now, but the token "
                                         "was issued at ")
    assert ", before the role was assigned, and the endpoint keeps serving it until " \
        in report.verdict.fix
    assert report.verdict.fix.endswith("Wait until then (Azure offers no way to force a "
                                       "refresh); locally, restart the emulator or start it "
                                       "with --mi-token-cache-hours 0")


class _OldTokenCredential(IdentityCredential):
    """An App Service identity whose endpoint (real Azure) hands out a token issued 2 h ago."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self._token = token

    def resolve(self) -> SourceCheck:
        runtime = detect_runtime({"IDENTITY_ENDPOINT": "http://127.0.0.1:1/msi/token",
                                  "IDENTITY_HEADER": "h"})
        return SourceCheck("managed-identity", True, "App Service", runtime=runtime)

    def get_token(self, audience: object) -> BearerToken:
        return BearerToken(self._token, int(time.time()) + 79000, None, "managed-identity")


def test_doctor_against_azure_points_at_the_cache_when_a_403_token_is_hours_old(
    monkeypatch: pytest.MonkeyPatch, clean_env: None,
) -> None:
    """Azure sends no diagnostic header: the token's age is the clue."""
    monkeypatch.setenv("IDENTITY_ENDPOINT", "http://127.0.0.1:1/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", "h")
    issued = int(time.time()) - 7200
    token = jwt.encode({"aud": API_CLIENT_ID, "iss": "https://sts.windows.net/t/", "tid": "t",
                        "iat": issued, "nbf": issued, "exp": issued + 86700,
                        "appid": "a", "oid": "o"}, "k" * 32, algorithm="HS256")
    answered: list[httpx.Request] = []

    def azure(request: httpx.Request) -> httpx.Response:
        answered.append(request)
        return httpx.Response(200, json={"access_token": token, "expires_on": "1"})

    api = FakeApi(API_CLIENT_ID, "t", required_role="Tenants.Write")
    report = Doctor(credential=_OldTokenCredential(token), api_transport=api.transport(),
                    identity_transport=httpx.MockTransport(azure), imds_probe=no_imds).run(URL)
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(issued))
    renew = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(issued + 86400))
    assert answered, "the doctor asked the endpoint for its diagnostic"
    assert (f"the token was issued at {when} (120 min ago): managed-identity endpoints cache "
            "tokens per resource for around 24 hours, so a role assigned after "
            f"{when} is not in it yet") in report.steps[-1].finding
    assert report.verdict.fix.endswith(
        f". If the role was assigned after {when}, wait until about {renew}, when the endpoint "
        "issues a new token (Azure offers no way to force a refresh)")
    assert report.verdict.fix.startswith("the token is valid but lacks the permission")


# The CLI -----------------------------------------------------------------------------------


def test_emulator_assign_and_unassign_change_roles_of_the_running_emulator(
    monkeypatch: pytest.MonkeyPatch, clean_env: None, cached: EmulatorServer,
) -> None:
    args = ["--data-dir", str(cached.data_dir), "emulator"]
    who = ["--principal", "uami-no-role", "--resource", "tenantops-api", "--role",
           "Tenants.Delete"]
    assigned = runner.invoke(app, [*args, "assign", *who])
    assert assigned.exit_code == 0, assigned.output
    assert assigned.stdout.splitlines() == [
        "assigned: uami-no-role holds Tenants.Delete on tenantops-api",
        "managed-identity token cache: 24 h on app-service; tokens issued before now do not "
        "carry the new role until the cache renews them"]
    assert roles(ask(cached, "imds")) == ["Tenants.Delete"]
    removed = runner.invoke(app, [*args, "unassign", *who])
    assert removed.stdout.strip() == "removed: uami-no-role Tenants.Delete on tenantops-api"
    assert roles(ask(cached, "imds")) == []
    wrong = runner.invoke(app, [*args, "assign", "--principal", "uami-no-role", "--resource",
                                "tenantops-api", "--role", "Tenants.Own"])
    assert wrong.exit_code == 1
    assert "role assignment refused: assignments[" in wrong.stderr
    assert ".role = 'Tenants.Own': app 'tenantops-api' defines ['Tenants.Read', " \
        "'Tenants.Write', 'Tenants.Delete', 'Audit.Read']" in wrong.stderr


@pytest.mark.integration
def test_tenantops_emulator_cache_options_choose_the_endpoints_and_the_age(
    tmp_path: Path, directory: Directory,
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "tenantops", "--data-dir", str(tmp_path), "emulator", "--port",
         "0", "--mi-port", "0", "--mi-token-cache-hours", "2", "--mi-token-cache-runtime",
         "imds"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        info = _wait_for(process, tmp_path)
        secret = EmulatorState(directory, tmp_path / "emulator").host_secret("aa-onboarding")
        imds = [httpx.get(f"{info.mi_url}/imds/{secret}/metadata/identity/oauth2/token",
                          params={"api-version": "2018-02-01", "resource": API_CLIENT_ID},
                          headers={"Metadata": "true"}).json() for _ in range(2)]
        assert imds[0]["access_token"] == imds[1]["access_token"]
        app_service = [httpx.get(f"{info.mi_url}/msi/token",
                                 params={"api-version": "2019-08-01", "resource": API_CLIENT_ID},
                                 headers={"X-IDENTITY-HEADER": secret}).json()["access_token"]
                       for _ in range(2)]
        assert app_service[0] != app_service[1]
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=20)
    assert "token cache      2 h on imds (managed-identity endpoints)" in out


def _wait_for(process: subprocess.Popen[str], data_dir: Path) -> EmulatorInfo:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        info = read_info(data_dir)
        if info is not None and info.pid == process.pid:
            try:
                httpx.get(f"{info.mi_url}/_emulator/health").raise_for_status()
                return info
            except httpx.HTTPError:
                pass
        assert process.poll() is None, process.communicate()
        time.sleep(0.1)
    raise AssertionError("the emulator did not start within 60 s")

