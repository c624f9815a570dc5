"""``[events]`` settings: refused when they load, each refusal naming the setting, the value
and the rule, and never echoing a webhook secret."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from tenantops.config import load_settings
from tenantops.errors import ConfigError

GOOD = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def webhook(**changes: Any) -> dict[str, Any]:
    return {"name": "crm", "url": "https://crm.contoso.test/hooks", "secret": GOOD, **changes}


def test_a_webhook_and_event_grid_load(tmp_path: Path) -> None:
    config = tmp_path / "tenantops.toml"
    config.write_text(f"""
[events]
source = "https://tenantops.contoso.test/api"

[[events.webhooks]]
name = "billing"
url = "https://billing.contoso.test/hooks/tenantops"
secret = "{GOOD}"
filter = ["com.tenantops.tenant.*"]

[events.event_grid]
topic_endpoint = "https://tenantops.westeurope-1.eventgrid.azure.net/api/events"
identity_source = "managed-identity"
""")
    events = load_settings(config).events
    assert events.webhooks[0].filter == ["com.tenantops.tenant.*"]
    assert events.webhooks[0].secret.get_secret_value() == GOOD
    assert events.event_grid.identity_source == "managed-identity"
    assert GOOD not in repr(events)


@pytest.mark.parametrize(("hook", "setting", "rule"), [
    (webhook(url="http://crm.contoso.test/hooks"), "url", "must be https"),
    (webhook(url="ftp://crm.contoso.test/"), "url", "absolute https:// URL"),
    (webhook(url="https://user:pw@crm.contoso.test/"), "url", "must not carry a user"),
    (webhook(name="CRM Hooks"), "name", "lowercase letters"),
    (webhook(filter=["tenant.onboarded"]), "filter", "is not an event type pattern"),
    (webhook(secret="0123456789abcdef0123456789abcdef"), "secret", "whsec_"),
    (webhook(secret="whsec_" + base64.b64encode(b"short").decode()), "secret",
     "24 to 64 random bytes"),
    (webhook(secret="whsec_not base64!"), "secret", "base64"),
])
def test_a_bad_webhook_is_refused_naming_the_setting(hook: dict[str, Any], setting: str,
                                                     rule: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(events={"webhooks": [hook]})
    message = str(caught.value)
    assert f"events.webhooks.0.{setting} = " in message
    assert rule in message


@pytest.mark.parametrize("secret", [
    "0123456789abcdef0123456789abcdef", "whsec_not base64!", "whsec_c2hvcnQ="])
def test_a_refused_secret_is_not_echoed(secret: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(events={"webhooks": [webhook(secret=secret)]})
    assert secret not in str(caught.value)
    assert secret.removeprefix("whsec_") not in str(caught.value)
    assert "'<hidden>'" in str(caught.value)


def test_plain_http_is_allowed_to_this_machine_only() -> None:
    for url in ("http://127.0.0.1:9000/hooks", "http://localhost/hooks", "http://[::1]/h"):
        assert load_settings(events={"webhooks": [webhook(url=url)]}).events.webhooks
    with pytest.raises(ConfigError, match=r"events\.event_grid\.topic_endpoint"):
        load_settings(events={"event_grid": {"topic_endpoint": "http://eg.contoso.test/api"}})


def test_webhook_names_are_unique_and_the_lease_outlasts_a_slow_attempt() -> None:
    with pytest.raises(ConfigError, match="crm repeats"):
        load_settings(events={"webhooks": [webhook(), webhook(url="https://x.test/")]})
    with pytest.raises(ConfigError, match="lease_seconds"):
        load_settings(events={"lease_seconds": 5, "timeout_seconds": 10})
    with pytest.raises(ConfigError, match=r"unknown_key|Extra inputs"):
        load_settings(events={"unknown_key": 1})
