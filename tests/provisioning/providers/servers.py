"""Where the real servers started by scripts/services/*.sh are, for the provider tests.

Each helper reads the ``TENANTOPS_TEST_*`` variables the scripts print. When one is missing,
the test is skipped on a developer's machine, and fails in CI (``CI=true``): CI must never
pass by skipping the servers it was supposed to test against.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Literal

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tenantops.config import (
    DnsProviderSettings,
    KeycloakOrganizationSettings,
    Rfc2136DnsSettings,
)
from tests.support.integration import require_integration

DnsServer = Literal["bind", "knot"]
DNS_SERVERS: tuple[DnsServer, ...] = ("bind", "knot")

_SCRIPTS = {
    "POSTGRES": "scripts/services/postgres.sh",
    "BIND": "scripts/services/bind.sh",
    "KNOT": "scripts/services/knot.sh",
    "KEYCLOAK": "scripts/services/keycloak.sh",
}


def require_env(name: str) -> str:
    """``os.environ[name]``; fail, naming the script to run, when it is unset (never skip: a
    missing server must not pass for a green run)."""
    require_integration(f"the server of {name}")
    value = os.environ.get(name, "")
    if value:
        return value
    service = name.removeprefix("TENANTOPS_TEST_").split("_", 1)[0]
    script = _SCRIPTS.get(service, "scripts/test")
    message = (f"{name} is not set; start the server with "
               f"`export $({script})` (scripts/test does it)")
    pytest.fail(f"these tests need a real server: {message}")


def unique_slug(prefix: str = "t") -> str:
    """A tenant slug no earlier run used (the servers keep state between runs)."""
    return f"{prefix}{secrets.token_hex(5)}"


def postgres_url() -> str:
    return require_env("TENANTOPS_TEST_POSTGRES_URL")


def dns_settings(server: DnsServer, **overrides: object) -> DnsProviderSettings:
    """Provider settings for the ``rfc2136`` provider against BIND or Knot."""
    prefix = f"TENANTOPS_TEST_{server.upper()}"
    port = int(require_env(f"{prefix}_PORT"))
    options = Rfc2136DnsSettings(
        server="127.0.0.1",
        port=port,
        tsig_key_name=require_env(f"{prefix}_TSIG_KEY_NAME"),
        tsig_secret_file=Path(require_env(f"{prefix}_TSIG_SECRET_FILE")),
        timeout_seconds=5.0,
    )
    fields: dict[str, object] = {
        "name": "rfc2136", "zones": [dns_zone(server)], "rfc2136": options,
        "propagation_poll_seconds": 0.2,
    }
    fields.update(overrides)
    return DnsProviderSettings.model_validate(fields)


def dns_zone(server: DnsServer) -> str:
    return require_env(f"TENANTOPS_TEST_{server.upper()}_ZONE")


def keycloak_settings(**overrides: object) -> KeycloakOrganizationSettings:
    fields: dict[str, object] = {
        "url": require_env("TENANTOPS_TEST_KEYCLOAK_URL"),
        "realm": require_env("TENANTOPS_TEST_KEYCLOAK_REALM"),
        "client_id": require_env("TENANTOPS_TEST_KEYCLOAK_CLIENT_ID"),
        "client_secret_file": Path(require_env("TENANTOPS_TEST_KEYCLOAK_CLIENT_SECRET_FILE")),
        "timeout_seconds": 15.0,
    }
    fields.update(overrides)
    return KeycloakOrganizationSettings.model_validate(fields)


class SmtpSink:
    """An SMTP server on a free loopback port that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self._arrived = threading.Condition()
        # aiosmtpd cannot listen on port 0 (it connects to its port to check it is up).
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port: int = probe.getsockname()[1]
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        message = email.message_from_bytes(content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        with self._arrived:
            self.messages.append(message)
            self._arrived.notify_all()
        await asyncio.sleep(0)
        return "250 OK"

    def wait_for(self, recipient: str, timeout: float = 120.0) -> EmailMessage:
        """The first message to ``recipient``; fails the test after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                for message in self.messages:
                    if recipient.lower() in str(message["To"]).lower():
                        return message
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    pytest.fail(f"no email to {recipient} within {timeout} s "
                                f"({len(self.messages)} other messages)")
                self._arrived.wait(remaining)


def keycloak_admin(settings: KeycloakOrganizationSettings) -> httpx.Client:
    """An admin API client for realm ``settings.realm``, signed in as the same service
    account the provider uses (to look at and tamper with what the provider made)."""
    assert settings.client_secret_file is not None
    secret = settings.client_secret_file.read_text().strip()
    token = httpx.post(
        f"{settings.url}/realms/{settings.realm}/protocol/openid-connect/token",
        data={"grant_type": "client_credentials", "client_id": settings.client_id,
              "client_secret": secret},
        timeout=15,
    )
    token.raise_for_status()
    return httpx.Client(
        base_url=f"{settings.url}/admin/realms/{settings.realm}",
        headers={"Authorization": f"Bearer {token.json()['access_token']}"},
        timeout=15,
    )


def point_realm_smtp_at(admin: httpx.Client, port: int) -> None:
    """Make the realm send its email to 127.0.0.1:``port`` (the sink, or nowhere)."""
    response = admin.put("", json={"smtpServer": {
        "host": "127.0.0.1", "port": str(port), "from": "noreply@tenantops.test",
        "fromDisplayName": "tenantops tests",
    }})
    response.raise_for_status()


@contextlib.contextmanager
def realm_smtp_working(admin: httpx.Client) -> Iterator[None]:
    """For tests that onboard through Keycloak without reading the invitation: while the
    realm's SMTP server answers (another test module's sink, which that module may be
    reading), leave it; else point the realm at a sink of our own for the duration. Never
    points the realm away from a live sink, so modules running side by side under xdist do
    not take each other's invitations."""
    realm = admin.get("")
    realm.raise_for_status()
    current = (realm.json().get("smtpServer") or {}).get("port")
    if current:
        try:
            with socket.create_connection(("127.0.0.1", int(current)), timeout=2):
                pass
        except OSError:
            pass
        else:
            yield
            return
    sink = SmtpSink()
    sink.start()
    try:
        point_realm_smtp_at(admin, sink.port)
        yield
    finally:
        sink.stop()
