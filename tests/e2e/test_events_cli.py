"""The events and history commands against a real API process, a worker and the emulator:
``tenants history``, the History section of ``tenants show``, ``events tail`` (and its
``--follow`` mode, which prints an event as it happens), ``events deliveries`` and
``events secret``."""

from __future__ import annotations

import json
import subprocess

import pytest
from standardwebhooks.webhooks import Webhook

from tests.e2e.test_automation_job import Stack, stack
from tests.support.processes import PYTHON_TENANTOPS, Process

__all__ = ["stack"]

pytestmark = pytest.mark.integration


def onboard(stack: Stack, slug: str) -> None:
    result = stack.tenantops("onboard", slug, "--domain", f"{slug}.example.test",
                             "--admin-email", f"it@{slug}.example.test",
                             "--api-url", stack.api_url, env=stack.automation())
    assert result.returncode == 0, result.stderr


def test_history_and_events_of_a_tenant(stack: Stack) -> None:
    onboard(stack, "chronicle")
    history = stack.tenantops("tenants", "history", "chronicle", "--api-url", stack.api_url,
                              env=stack.automation("uami-reader"))
    assert history.returncode == 0, history.stderr
    lines = history.stdout.splitlines()
    assert "tenant onboarded (run " in lines[0]
    # serve --emulator names the emulator's apps and identities (auth.application_names)
    assert any("onboarding requested by aa-onboarding (app " in line for line in lines)
    assert any("custom_domain: (none) -> chronicle.example.test" in line for line in lines)

    shown = stack.tenantops("tenants", "show", "chronicle", "--api-url", stack.api_url,
                            env=stack.automation("uami-reader"))
    assert shown.returncode == 0, shown.stderr
    assert "History (newest first" in shown.stdout
    assert "tenant onboarded" in shown.stdout

    tail = stack.tenantops("events", "tail", "--tenant", "chronicle", "--json",
                           "--api-url", stack.api_url, env=stack.automation("uami-reader"))
    assert tail.returncode == 0, tail.stderr
    events = [json.loads(line) for line in tail.stdout.splitlines()]
    assert [e["type"] for e in events] == ["com.tenantops.run.requested",
                                           "com.tenantops.run.started",
                                           "com.tenantops.tenant.onboarded"]
    assert {e["specversion"] for e in events} == {"1.0"}
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)

    deliveries = stack.tenantops("events", "deliveries", "--api-url", stack.api_url,
                                 env=stack.automation("uami-reader"))
    assert deliveries.returncode == 0, deliveries.stderr
    assert "0 pending, 0 delivered, 0 parked" in deliveries.stdout, "no sink is configured"


def test_events_tail_follow_prints_an_event_as_it_happens(stack: Stack) -> None:
    follow = Process([*PYTHON_TENANTOPS, "--data-dir", str(stack.data_dir), "events", "tail",
                      "--follow", "--interval", "0.2", "--limit", "1", "--type",
                      "com.tenantops.tenant.*", "--api-url", stack.api_url],
                     env=stack.automation("uami-reader"), cwd=stack.data_dir.parent)
    try:
        onboard(stack, "followed")
        line = follow.wait_for_line("20", timeout=120)
        while "followed" not in line:
            line = follow.wait_for_line("20", timeout=120)
        assert "com.tenantops.tenant.onboarded" in line
        assert "tenant onboarded" in line
    finally:
        stderr = follow.stop()
    assert "Traceback" not in stderr


def test_events_secret_makes_a_standard_webhooks_secret() -> None:
    result = subprocess.run([*PYTHON_TENANTOPS, "events", "secret"], capture_output=True,
                            text=True, timeout=60, check=True)
    secret = result.stdout.strip()
    assert secret.startswith("whsec_")
    Webhook(secret)  # the library takes it
    again = subprocess.run([*PYTHON_TENANTOPS, "events", "secret"], capture_output=True,
                           text=True, timeout=60, check=True)
    assert again.stdout.strip() != secret
