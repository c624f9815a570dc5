"""The original problem, end to end: the emulator, the API and the worker as separate
processes, and the caller configured exactly as an Azure Automation job is (the variables
``tenantops emulator env --runtime automation`` prints: IDENTITY_ENDPOINT, IDENTITY_HEADER).

- resource = Azure Resource Manager: 401 whose description names the expected audience, and
  the doctor explains it;
- resource = the API's client ID, with Tenants.Write: the stdlib runbook onboards a tenant,
  every step succeeds, and running it again returns the same run;
- an identity without a role: 403 naming the role;
- the CLI's onboard --wait shows each step and exits 0; a failing run (a customer-managed
  domain whose records never appear) exits non-zero with the failed step's error, and
  ``tenants show`` lists the records the customer must publish.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tenantops.emulator.directory import API_CLIENT_ID, default_directory
from tenantops.emulator.server import EmulatorInfo
from tests.provisioning.providers.servers import require_env
from tests.support.processes import (
    PYTHON_TENANTOPS,
    Process,
    clean_environment,
    emulator_env,
    start_api,
    start_emulator,
    start_worker,
)

pytestmark = pytest.mark.integration

RUNBOOK = Path(__file__).parents[2] / "runbooks" / "onboard_tenant.py"
ARM = "https://management.core.windows.net/"


@dataclass
class Stack:
    data_dir: Path
    info: EmulatorInfo
    api_url: str
    base_env: dict[str, str]
    processes: list[Process]

    def automation(self, identity: str = "aa-onboarding") -> dict[str, str]:
        """The environment of an Automation job running as ``identity``."""
        return {**self.base_env,
                **emulator_env(self.data_dir, identity, "automation", self.base_env)}

    def tenantops(self, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*PYTHON_TENANTOPS, "--data-dir", str(self.data_dir), *args],
                              capture_output=True, text=True, env=env, timeout=180)

    def runbook(self, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(RUNBOOK), "--api-url", self.api_url.removesuffix("/api"),
             "--client-id", API_CLIENT_ID, "--poll-interval", "0.2", *args],
            capture_output=True, text=True, env=env, timeout=180)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("e2e") / "data"
    data_dir.mkdir()
    # Domains outside example.test are customer-managed: their zones are looked for on the
    # test BIND server (which holds none of them), for at most 4 s.
    bind_port = require_env("TENANTOPS_TEST_BIND_PORT")
    env = clean_environment({"TENANTOPS_PROVIDERS__DNS__PORT": "0",
                             "TENANTOPS_PROVIDERS__WEBHOST__PORT": "0",
                             "TENANTOPS_PROVIDERS__WEBHOST__APP_PORT": "0",
                             "TENANTOPS_PROVIDERS__DNS__ZONES": '["example.test"]',
                             "TENANTOPS_PROVIDERS__DNS__AUTHORITATIVE__RESOLVERS":
                                 f'["127.0.0.1:{bind_port}"]',
                             "TENANTOPS_DOMAINS__CUSTOMER_POLL_SECONDS": "0.5",
                             "TENANTOPS_DOMAINS__CUSTOMER_WAIT_SECONDS": "4",
                             "TENANTOPS_ENGINE__PENDING_TIMEOUT_SECONDS": "4"})
    processes: list[Process] = []
    try:
        emulator, info = start_emulator(data_dir, env)
        processes.append(emulator)
        api, url = start_api(data_dir, info, env, worker=False)
        processes.append(api)
        worker, _ = start_worker(data_dir, env)
        processes.append(worker)
        yield Stack(data_dir, info, url, env, processes)
    finally:
        stderr = [p.stop() for p in reversed(processes)]
        for text in stderr:
            assert "eyJ" not in text, "a token reached a log"


def test_arm_audience_is_refused_with_the_expected_audience_named(stack: Stack) -> None:
    result = stack.tenantops("call", "GET", f"{stack.api_url}/tenants", "--audience", ARM,
                             env=stack.automation())
    assert result.returncode != 0
    assert "401" in result.stderr
    assert f"this API accepts only '{API_CLIENT_ID}', 'api://{API_CLIENT_ID}'" in result.stderr
    assert f"resource={API_CLIENT_ID}" in result.stderr
    assert "eyJ" not in result.stdout + result.stderr


def test_doctor_explains_the_arm_token_and_the_fix(stack: Stack) -> None:
    result = stack.tenantops("auth", "doctor", f"{stack.api_url}/tenants", "--audience", ARM,
                             env=stack.automation())
    assert result.returncode != 0
    assert "Azure Resource Manager" in result.stdout
    assert f"managed identity resource={API_CLIENT_ID}" in result.stdout
    assert "eyJ" not in result.stdout + result.stderr


def test_runbook_onboards_with_the_right_audience_and_is_idempotent(stack: Stack) -> None:
    args = ["--slug", "contoso", "--domain", "portal.contoso.example.test",
            "--admin-email", "admin@contoso.example.test"]
    first = stack.runbook(*args, env=stack.automation())
    assert first.returncode == 0, first.stderr
    assert f"token: obtained from IDENTITY_ENDPOINT for resource {API_CLIENT_ID}" in first.stdout
    assert "tenant contoso is active" in first.stdout
    steps = re.findall(r"(\w+)\[(\w+|\.\.|!!|  )\]", first.stdout.splitlines()[-2])
    assert len(steps) >= 10
    assert {mark for _, mark in steps} == {"ok"}
    run_id = re.search(r"run (\w+) \(onboard\)", first.stdout)
    assert run_id is not None
    second = stack.runbook(*args, env=stack.automation())
    assert second.returncode == 0, second.stderr
    assert f"run {run_id.group(1)} (onboard)" in second.stdout
    assert "eyJ" not in first.stdout + first.stderr + second.stdout + second.stderr


def test_identity_without_role_gets_403_naming_the_role(stack: Stack) -> None:
    uami = default_directory().identity_by_name("uami-no-role")
    assert uami is not None
    result = stack.runbook("--slug", "norole", "--domain", "norole.example.test",
                           "--admin-email", "a@norole.example.test", "--identity-client-id",
                           uami.client_id, env=stack.automation("uami-no-role"))
    assert result.returncode == 4
    assert "HTTP 403" in result.stderr
    assert "Tenants.Write" in result.stderr


def test_cli_onboard_wait_shows_each_step_and_exits_zero(stack: Stack) -> None:
    result = stack.tenantops("onboard", "fabrikam", "--domain", "fabrikam.example.test",
                             "--admin-email", "it@fabrikam.example.test",
                             "--api-url", stack.api_url, env=stack.automation())
    assert result.returncode == 0, result.stderr
    for step in ("register_tenant", "create_database", "create_cname_record", "wait_for_dns",
                 "issue_certificate", "create_organization", "activate_tenant"):
        assert re.search(rf"✔ {step}\s+succeeded", result.stdout), step
    assert "succeeded" in result.stdout.splitlines()[-1]


def test_cli_onboard_of_a_failing_run_exits_non_zero_with_the_steps_error(stack: Stack) -> None:
    result = stack.tenantops("onboard", "outsider", "--domain", "www.outside-zone.test",
                             "--admin-email", "it@outside-zone.test",
                             "--api-url", stack.api_url, env=stack.automation())
    assert result.returncode == 1
    assert "✘ wait_for_customer_dns" in result.stdout
    assert ("waiting for the customer to publish in the DNS of www.outside-zone.test: "
            "CNAME www.outside-zone.test -> ") in result.stdout
    assert "at step wait_for_customer_dns" in result.stderr
    assert "tenantops runs retry" in result.stderr


def test_cli_shows_the_records_a_customer_must_publish(stack: Stack) -> None:
    onboarded = stack.tenantops("onboard", "shown", "--domain", "shop.outside-zone.test",
                                "--admin-email", "it@outside-zone.test", "--no-wait",
                                "--api-url", stack.api_url, env=stack.automation())
    assert onboarded.returncode == 0, onboarded.stderr
    shown = stack.tenantops("tenants", "show", "shown", "--api-url", stack.api_url,
                            env=stack.automation())
    assert shown.returncode == 0, shown.stderr
    assert "domain       shop.outside-zone.test (customer-managed)" in shown.stdout
    assert "publish these records in the domain's DNS" in shown.stdout
    lines = shown.stdout.splitlines()
    for name, kind in (("shop.outside-zone.test", "CNAME"),
                       ("asuid.shop.outside-zone.test", "TXT"),
                       ("_tenantops-challenge.shop.outside-zone.test", "TXT")):
        assert any(line.split()[:2] == [name, kind] for line in lines), (name, shown.stdout)


def test_cli_reads_tenants_as_json_with_reader_identity(stack: Stack) -> None:
    uami = default_directory().identity_by_name("uami-reader")
    assert uami is not None
    result = stack.tenantops("tenants", "list", "--json", "--api-url", stack.api_url,
                             env=stack.automation("uami-reader"))
    assert result.returncode == 0, result.stderr
    assert '"total"' in result.stdout
    refused = stack.tenantops("offboard", "contoso", "--yes", "--api-url", stack.api_url,
                              env=stack.automation("uami-reader"))
    assert refused.returncode == 3
    assert "Tenants.Delete" in refused.stderr
