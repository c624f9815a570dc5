"""The dashboard's settings: working defaults against an emulator only; placeholders refused
against Entra ID; missing settings named on ``/`` while the API keeps working."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tenantops.api import create_app
from tenantops.config import Settings
from tenantops.dashboard import is_emulator_authority, resolve
from tenantops.emulator.directory import API_CLIENT_ID
from tenantops.errors import ConfigError

ENTRA = "https://login.microsoftonline.com"
TENANT = "8d6f5c2a-1b3e-4f70-9a6c-2e4b7d9f0a15"
DASHBOARD = "11111111-2222-4333-8444-555555555555"
REAL_SECRET = "kJ8Q~real-looking-client-secret-value"
SESSION = "s" * 16 + "0123456789abcdef0123"


def settings(authority: str = ENTRA, **dashboard: Any) -> Settings:
    return Settings(auth={"authority": authority, "tenant_id": TENANT,
                          "client_id": API_CLIENT_ID},
                    dashboard=dashboard)


@pytest.mark.parametrize(("authority", "emulator"), [
    ("https://127.0.0.1:7443", True), ("https://localhost:7443", True),
    ("https://[::1]:7443", True), (ENTRA, False), ("https://login.microsoftonline.us", False),
    ("https://127.0.0.1.nip.io", False),
])
def test_only_a_loopback_authority_counts_as_an_emulator(authority: str, emulator: bool) -> None:
    assert is_emulator_authority(authority) is emulator


def test_emulator_gets_the_built_in_dashboard_client_and_a_random_session_key() -> None:
    first = resolve(settings("https://127.0.0.1:7443"))
    second = resolve(settings("https://127.0.0.1:7443"))
    assert first.mode == "oidc"
    assert first.client_id == "3c2b1a09-8e7d-4c6b-a5f4-e3d2c1b0a987"
    assert first.session_key != second.session_key
    assert len(first.session_key) == 32


@pytest.mark.parametrize(("values", "message"), [
    ({"client_id": DASHBOARD, "client_secret": "dashboard-local-secret",
      "session_secret": SESSION},
     "dashboard.client_secret is a placeholder (the emulator's or an example value) but the "
     f"authority {ENTRA} is not an emulator"),
    ({"client_id": DASHBOARD, "client_secret": "<your secret>", "session_secret": SESSION},
     "dashboard.client_secret is a placeholder"),
    ({"client_id": DASHBOARD, "client_secret": REAL_SECRET, "session_secret": "changeme"},
     "dashboard.session_secret is a placeholder value; set it to at least 32 random"),
    ({"client_id": DASHBOARD, "client_secret": REAL_SECRET, "session_secret": "short-secret"},
     "dashboard.session_secret has 12 characters; it must have at least 32"),
], ids=["emulator-secret", "template-secret", "changeme-session", "short-session"])
def test_placeholder_secrets_are_refused_against_entra(
    values: dict[str, str], message: str,
) -> None:
    with pytest.raises(ConfigError) as caught:
        create_app(settings(**values))
    assert message in str(caught.value)
    assert REAL_SECRET not in str(caught.value)


def test_configured_for_entra() -> None:
    config = resolve(settings(client_id=DASHBOARD, client_secret=REAL_SECRET,
                              session_secret=SESSION, public_url="https://ops.example.com"))
    assert (config.mode, config.client_id, config.missing) == ("oidc", DASHBOARD, ())
    assert config.authorize_url == f"{ENTRA}/{TENANT}/oauth2/v2.0/authorize"


def test_missing_settings_are_named_on_the_page_and_the_api_still_works() -> None:
    app = create_app(settings())
    with TestClient(app, base_url="https://tenantops.example.com") as client:
        page = client.get("/")
        health = client.get("/api/health")
    assert page.status_code == 503
    for name in ("dashboard.client_id", "dashboard.client_secret", "dashboard.session_secret"):
        assert f"<code>{name}</code>" in page.text
    assert "TENANTOPS_DASHBOARD__CLIENT_SECRET" in page.text
    assert health.status_code == 200


def test_easy_auth_needs_only_the_session_secret() -> None:
    config = resolve(Settings(
        auth={"authority": ENTRA, "tenant_id": TENANT,
              "client_id": API_CLIENT_ID, "trust_easy_auth_principal": True},
        dashboard={"session_secret": SESSION}))
    assert (config.mode, config.missing) == ("easy-auth", ())


def test_the_dashboard_can_be_switched_off() -> None:
    app = create_app(settings(enabled=False))
    with TestClient(app) as client:
        assert client.get("/").status_code == 404
