"""Audience discovery: the API's metadata route first, then its 401 challenge; the answer is
remembered per API root in the discovery cache (checked again on every read), forgotten and
learned again when the API refuses a token for it; an API that does not answer is
"unreachable", never an audience problem."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import httpx
import pytest

from tenantops.emulator.directory import API_CLIENT_ID
from tenantops.errors import ApiUnreachableError, UntrustedAudienceError
from tenantops.identity import (
    Audience,
    BearerToken,
    DiscoveryCache,
    TenantOpsClient,
    api_root_of,
    metadata_url,
)

OTHER_CLIENT_ID = "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"
TENANT = "8d6f5c2a-1b3e-4f70-9a6c-2e4b7d9f0a15"


class Provider:
    def __init__(self) -> None:
        self.asked: list[str] = []

    def get_token(self, audience: Audience) -> BearerToken:
        self.asked.append(audience.resource)
        return BearerToken(f"token-for.{audience.resource}.x", int(time.time()) + 3600)


class TenantOpsApi:
    """The tenantops API's discovery surface: a public metadata route, a challenge on every
    other path, and a token check by audience."""

    def __init__(self, client_id: str = API_CLIENT_ID, *, metadata: bool = True) -> None:
        self.client_id = client_id
        self.metadata = metadata
        self.requests: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        auth = request.headers.get("authorization", "")
        self.requests.append(f"{request.method} {request.url.path}{' +token' if auth else ''}")
        if request.url.path == "/api/meta" and self.metadata:
            return httpx.Response(200, json={
                "service": "tenantops", "version": "1", "audience": self.client_id,
                "tenant_id": TENANT})
        challenge = {"WWW-Authenticate": f'Bearer realm="tenantops", resource_id='
                                         f'"{self.client_id}"'}
        if auth != f"Bearer token-for.{self.client_id}.x":
            return httpx.Response(401, headers=challenge, json={"error": "invalid_token"})
        if request.url.path.endswith("/retry") and request.method != "POST":
            return httpx.Response(405)
        return httpx.Response(200, json={"ok": True})


def test_the_metadata_route_names_the_audience_without_a_tokenless_call(tmp_path: Path) -> None:
    api = TenantOpsApi()
    provider = Provider()
    with TenantOpsClient(credential=provider, transport=httpx.MockTransport(api)) as client:
        assert client.post("https://api.test/api/runs/r1/retry").status_code == 200
    assert api.requests == ["GET /api/meta", "POST /api/runs/r1/retry +token"]
    assert provider.asked == [API_CLIENT_ID]
    assert client.discovered is not None
    assert client.discovered.origin == "metadata"
    assert client.discovered.tenant_id == TENANT


def test_without_a_metadata_route_the_challenge_names_it(tmp_path: Path) -> None:
    api = TenantOpsApi(metadata=False)
    with TenantOpsClient(credential=Provider(), transport=httpx.MockTransport(api)) as client:
        assert client.get("https://api.test/api/tenants").status_code == 200
    assert api.requests == ["GET /api/meta", "GET /api/tenants", "GET /api/tenants +token"]
    assert client.discovered is not None
    assert client.discovered.origin == "www-authenticate"


def test_a_url_without_an_api_segment_is_not_asked_for_metadata() -> None:
    api = TenantOpsApi()
    with TenantOpsClient(credential=Provider(), transport=httpx.MockTransport(api)) as client:
        client.get("https://api.test/whoami")
    assert api.requests == ["GET /whoami", "GET /whoami +token"]


def test_the_cache_makes_the_second_command_ask_nothing(tmp_path: Path) -> None:
    api = TenantOpsApi()
    cache = DiscoveryCache(tmp_path / "cache")
    for _ in range(2):
        with TenantOpsClient(credential=Provider(), transport=httpx.MockTransport(api),
                             discovery_cache=cache) as client:
            client.get("https://api.test/api/tenants")
    assert api.requests == ["GET /api/meta", "GET /api/tenants +token",
                            "GET /api/tenants +token"]
    assert client.discovered is not None
    assert client.discovered.origin == "cache"
    data = json.loads(cache.path.read_text())
    assert data["apis"]["https://api.test/api"]["audience"] == API_CLIENT_ID
    assert "token" not in cache.path.read_text()
    assert stat.S_IMODE(cache.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache.path.parent.stat().st_mode) == 0o700


def test_a_stale_cached_audience_is_learned_again_once(tmp_path: Path) -> None:
    cache = DiscoveryCache(tmp_path)
    cache.put("https://api.test/api", audience=OTHER_CLIENT_ID, tenant_id=None,
              learned_from="metadata")
    api = TenantOpsApi()
    provider = Provider()
    with TenantOpsClient(credential=provider, transport=httpx.MockTransport(api),
                         discovery_cache=cache) as client:
        assert client.get("https://api.test/api/tenants").status_code == 200
    assert provider.asked == [OTHER_CLIENT_ID, API_CLIENT_ID]
    assert api.requests == ["GET /api/tenants +token", "GET /api/meta",
                            "GET /api/tenants +token"]
    cached = cache.get("https://api.test/api")
    assert cached is not None
    assert cached.audience == API_CLIENT_ID


def test_a_tampered_cache_entry_is_pinned_like_any_advertised_audience(tmp_path: Path) -> None:
    """Cache poisoning: an entry naming ARM is refused before any token, and dropped."""
    cache = DiscoveryCache(tmp_path)
    cache.put("https://api.test/api", audience="https://management.azure.com/", tenant_id=None,
              learned_from="metadata")
    provider = Provider()
    with TenantOpsClient(credential=provider, transport=httpx.MockTransport(TenantOpsApi()),
                         discovery_cache=cache) as client, \
            pytest.raises(UntrustedAudienceError, match="which is Azure Resource Manager"):
        client.get("https://api.test/api/tenants")
    assert provider.asked == []
    assert cache.get("https://api.test/api") is None


def test_cache_entries_expire_and_a_broken_file_counts_as_empty(tmp_path: Path) -> None:
    now = [1_000_000.0]
    cache = DiscoveryCache(tmp_path, ttl_seconds=60, clock=lambda: now[0])
    cache.put("https://api.test/api", audience=API_CLIENT_ID, tenant_id=None,
              learned_from="metadata")
    assert cache.get("https://api.test/api") is not None
    now[0] += 61
    assert cache.get("https://api.test/api") is None
    cache.path.write_text("{not json")
    assert cache.get("https://api.test/api") is None
    cache.put("https://api.test/api", audience=API_CLIENT_ID, tenant_id=None,
              learned_from="metadata")
    assert cache.get("https://api.test/api") is not None


@pytest.mark.parametrize(("url", "root"), [
    ("https://API.test/api/runs/1/retry", "https://api.test/api"),
    ("https://api.test:8443/tenantops/api/tenants", "https://api.test:8443/tenantops/api"),
    ("https://api.test/whoami", "https://api.test"),
    ("http://127.0.0.1:8000/api", "http://127.0.0.1:8000/api"),
])
def test_the_api_root_is_the_path_through_api(url: str, root: str) -> None:
    assert api_root_of(url) == root
    assert metadata_url(url) == (f"{root}/meta" if root.endswith("/api") else None)


@pytest.mark.parametrize("failure", [
    httpx.ConnectError("[Errno 111] Connection refused"),
    httpx.ConnectError("[Errno -2] Name or service not known"),
    httpx.ConnectTimeout("timed out"),
    httpx.ReadTimeout("timed out"),
], ids=["connection-refused", "dns-failure", "connect-timeout", "read-timeout"])
def test_an_api_that_does_not_answer_is_unreachable_not_an_audience_problem(
    failure: httpx.HTTPError,
) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise failure

    provider = Provider()
    with TenantOpsClient(credential=provider, transport=httpx.MockTransport(fail),
                         configured_audience=API_CLIENT_ID) as client, \
            pytest.raises(ApiUnreachableError) as caught:
        client.get("https://api.test/api/tenants")
    assert caught.value.url == "https://api.test/api/meta"
    assert str(caught.value).startswith(
        f"the API is unreachable: GET https://api.test/api/meta failed ({type(failure).__name__}"
        f": {failure})")
    assert provider.asked == []
