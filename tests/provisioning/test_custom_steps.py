"""Steps of your own inside onboarding and offboarding on the embedded default: a Python step
from the entry-point group ``tenantops.steps`` and a command step (a bash runbook), placed
before or after built-in steps, previewed, retried after a failure; what a command gets and
gives; and the settings refused when they load, each naming the setting."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from tenantops.config import load_settings
from tenantops.errors import ConfigError
from tenantops.provisioning import Engine
from tenantops.provisioning.providers.secrets import Secret

from .conftest import EngineFactory, spec_for
from .custom_steps_support import install_step_package, write_command

# Command steps start processes (the Python steps' tests share the fixtures).
pytestmark = pytest.mark.integration


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = install_step_package(tmp_path / "site")
    monkeypatch.syspath_prepend(str(folder))
    return folder


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "billing"
    folder.mkdir()
    monkeypatch.setenv("BILLING_STATE", str(folder))  # not passed: the step declares it
    return folder


def steps(tmp_path: Path, state: Path, **command: Any) -> list[dict[str, Any]]:
    script = write_command(tmp_path / "runbooks")
    return [
        {"name": "seed_records", "type": "python", "entry_point": "seed-records",
         "after": "create_database", "runs_in": ["onboard", "offboard", "suspend"],
         "options": {"folder": str(tmp_path / "seeds"),
                     "fail_unless": str(tmp_path / "seed-source")},
         "description": "seed the tenant's records"},
        {"name": "create_billing_customer", "type": "command", "command": [str(script)],
         "before": "activate_tenant", "observe": True, "timeout_seconds": 30,
         "env": {"BILLING_STATE": str(state)},
         "secrets": {"BILLING_API_KEY": "billing-api-key"}, **command},
    ]


def ready(engine: Engine, tmp_path: Path) -> str:
    (tmp_path / "seed-source").touch()
    engine.providers.secrets.ensure(Secret("billing-api-key"))
    return engine.providers.secrets.read("billing-api-key")


def env_of(state: Path, action: str, slug: str = "acme") -> dict[str, str]:
    lines = (state / f"env-{action}-{slug}").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def test_custom_steps_run_in_onboarding_and_offboarding(
        make_engine: EngineFactory, tmp_path: Path, site: Path, state: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPASSWORD", "worker-only-secret")
    engine = make_engine(steps=steps(tmp_path, state))
    api_key = ready(engine, tmp_path)

    preview = engine.preview_onboarding(spec_for("acme"))
    names = [c.step for c in preview.changes]
    assert names[names.index("create_database") + 1] == "seed_records"
    assert names[names.index("activate_tenant") - 1] == "create_billing_customer"
    actions = {c.step: (c.action, c.provider) for c in preview.changes}
    assert actions["seed_records"] == ("create", "python:seed_records")
    assert actions["create_billing_customer"] == ("create", "command:create_billing_customer")

    run = engine.wait(engine.onboard(spec_for("acme"), requested_by="ops").id)
    assert run.status == "succeeded", run.error
    assert [s.name for s in run.steps][4:6] == ["seed_records", "store_connection"]
    seeded = json.loads((tmp_path / "seeds" / "acme.json").read_text())
    assert seeded == {"tenant": "acme", "kind": "onboard", "database": "tenant_acme",
                      "suspended": False}
    billing = run.step("create_billing_customer")
    assert billing.outputs == {"customer_id": "cus_acme", "database": "tenant_acme"}
    assert billing.provider == "command:create_billing_customer"
    assert "creating customer for Acme Ltd" in (billing.message or "")
    assert api_key not in (billing.message or "")
    assert "[redacted]" in (billing.message or "")

    env = env_of(state, "ensure")
    assert env["TENANTOPS_ACTION"] == "ensure"
    assert env["TENANTOPS_RUN_ID"] == run.id
    assert env["TENANTOPS_RUN_KIND"] == "onboard"
    assert env["TENANTOPS_TENANT_SLUG"] == "acme"
    assert env["TENANTOPS_TENANT_CUSTOM_DOMAIN"] == "app.acme.test"
    assert env["TENANTOPS_TENANT_SUSPENDED"] == "false"
    assert env["TENANTOPS_OUTPUT_CREATE_DATABASE_DATABASE"] == "tenant_acme"
    assert env["TENANTOPS_OUTPUT_SEED_RECORDS_SEEDED"].endswith("seeds/acme.json")
    assert json.loads(env["TENANTOPS_OUTPUTS"])["create_database"]["login"] == "acme_app"
    assert env["BILLING_API_KEY"] == api_key
    assert "PGPASSWORD" not in env
    assert "worker-only-secret" not in json.dumps(env)

    assert [(c.step, c.action) for c in engine.preview_offboarding("acme").changes
            if c.provider.startswith(("python:", "command:"))] == [
        ("remove_create_billing_customer", "delete"), ("remove_seed_records", "delete")]
    off = engine.wait(engine.offboard("acme", requested_by="ops").id)
    assert off.status == "succeeded", off.error
    names = [s.name for s in off.steps]
    assert names.index("remove_create_billing_customer") < names.index("remove_organization")
    assert names[names.index("drop_database") - 1] == "remove_seed_records"
    assert not (tmp_path / "seeds" / "acme.json").exists()
    assert not (state / "customer-acme").exists()
    assert env_of(state, "remove")["TENANTOPS_RUN_KIND"] == "offboard"


def test_a_failed_custom_step_is_retried_from_itself(
        make_engine: EngineFactory, tmp_path: Path, site: Path, state: Path) -> None:
    engine = make_engine(steps=steps(tmp_path, state))
    engine.providers.secrets.ensure(Secret("billing-api-key"))
    run = engine.wait(engine.onboard(spec_for("acme"), requested_by="ops").id)
    assert (run.status, run.failed_step) == ("failed", "seed_records")
    assert "the seed source" in (run.error or "")
    assert "is missing" in (run.error or "")
    (state / "exit-code").write_text("3")
    (tmp_path / "seed-source").touch()
    run = engine.wait(engine.retry(run.id).id)
    assert (run.status, run.failed_step) == ("failed", "create_billing_customer")
    assert "exited 3" in (run.error or "")
    assert "billing refused acme" in (run.error or "")
    (state / "exit-code").unlink()
    done = engine.wait(engine.retry(run.id).id)
    assert done.status == "succeeded", done.error
    assert done.step("create_database").attempts == 1
    assert done.step("seed_records").attempts == 2
    assert done.step("create_billing_customer").attempts == 2


def test_exit_code_75_is_a_transient_failure_retried_with_backoff(
        make_engine: EngineFactory, tmp_path: Path, site: Path, state: Path) -> None:
    engine = make_engine(steps=steps(tmp_path, state))
    ready(engine, tmp_path)
    (state / "exit-code").write_text("75")
    (state / "fail-count").write_text("2")
    run = engine.wait(engine.onboard(spec_for("acme"), requested_by="ops").id)
    assert run.status == "succeeded", run.error
    assert run.step("create_billing_customer").attempts == 3


def test_a_command_outliving_its_timeout_is_refused_with_its_process_group(
        make_engine: EngineFactory, tmp_path: Path, site: Path, state: Path) -> None:
    engine = make_engine(steps=steps(tmp_path, state, timeout_seconds=1),
                         engine={"max_attempts": 1})
    ready(engine, tmp_path)
    (state / "hang").touch()
    run = engine.wait(engine.onboard(spec_for("acme"), requested_by="ops").id, timeout=60)
    assert (run.status, run.failed_step) == ("failed", "create_billing_customer")
    assert "did not finish within 1 s and its process group was killed" in (run.error or "")
    child = int((state / "child.pid").read_text())
    deadline = time.monotonic() + 30
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "the command's child outlived the timeout"


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_a_secret_put_in_a_command_steps_outputs_is_refused(
        make_engine: EngineFactory, tmp_path: Path, site: Path, state: Path) -> None:
    script = tmp_path / "leak.sh"
    script.write_text('#!/usr/bin/env bash\nprintf \'{"key": "%s"}\\n\' "$BILLING_API_KEY"\n')
    os.chmod(script, 0o755)
    engine = make_engine(steps=steps(tmp_path, state, command=[str(script)], observe=False))
    api_key = ready(engine, tmp_path)
    run = engine.wait(engine.onboard(spec_for("acme"), requested_by="ops").id)
    assert (run.status, run.failed_step) == ("failed", "create_billing_customer")
    assert "put the value of its secret BILLING_API_KEY in its outputs" in (run.error or "")
    assert api_key not in json.dumps([s.outputs for s in run.steps]) + (run.error or "")


def test_a_suspension_runs_the_custom_steps_that_take_part_in_it(
        make_engine: EngineFactory, tmp_path: Path, site: Path, state: Path) -> None:
    engine = make_engine(steps=steps(tmp_path, state))
    ready(engine, tmp_path)
    assert engine.wait(engine.onboard(spec_for("acme"), requested_by="ops").id).status == (
        "succeeded")
    run = engine.wait(engine.suspend("acme", reason="x", requested_by="ops").id)
    assert run.status == "succeeded", run.error
    names = [s.name for s in run.steps]
    # After create_database in onboarding, so before disable_database_login in suspensions.
    assert names == ["disable_organization", "suspend_hostname", "seed_records",
                     "disable_database_login"]
    seeded = json.loads((tmp_path / "seeds" / "acme.json").read_text())
    assert (seeded["kind"], seeded["suspended"]) == ("suspend", True)


def test_a_reconcile_runs_the_custom_steps_that_take_part_in_it_and_drift_observes_them(
        make_engine: EngineFactory, tmp_path: Path, site: Path, state: Path) -> None:
    from tenantops.provisioning.drift import DriftChecker

    declared = steps(tmp_path, state)
    declared[0]["runs_in"] = ["onboard", "offboard", "reconcile"]
    engine = make_engine(steps=declared)
    ready(engine, tmp_path)
    assert engine.wait(engine.onboard(spec_for("acme"), requested_by="ops").id).status == (
        "succeeded")

    report = DriftChecker.of(engine).check("acme")
    run = engine.wait(engine.reconcile_tenant("acme", requested_by="ops").id)

    # seed_records takes part in reconcile runs; the billing step does not.
    [seed] = [r for r in report.resources if r.step == "seed_records"]
    # It observes (its file), and is compared field by field like a built-in resource: the
    # sample step records the tenant's slug where its resource holds the tenant's fields.
    assert (seed.state, [d.field for d in seed.differences]) == ("drifted", ["tenant"])
    assert "create_billing_customer" not in [r.step for r in report.resources]
    assert run.status == "succeeded", run.error
    names = [s.name for s in run.steps]
    assert names.index("seed_records") == names.index("create_database") + 1
    assert "create_billing_customer" not in names
    seeded = json.loads((tmp_path / "seeds" / "acme.json").read_text())
    assert (seeded["kind"], seeded["suspended"]) == ("reconcile", False)


def test_reading_the_workers_environment_from_a_command_step_is_refused(
        make_engine: EngineFactory, tmp_path: Path, site: Path, state: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker's own credentials (PGPASSWORD, a client secret in TENANTOPS_*) never reach
    a command: it gets PATH and a few locale variables, its env table, its declared secrets."""
    monkeypatch.setenv("PGPASSWORD", "worker-database-password")
    monkeypatch.setenv("TENANTOPS_PROVIDERS__ORGANIZATION__KEYCLOAK__CLIENT_SECRET", "kc-secret")
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "azure-secret")
    engine = make_engine(steps=steps(tmp_path, state))
    api_key = ready(engine, tmp_path)
    assert engine.wait(engine.onboard(spec_for("acme"), requested_by="ops").id).status == (
        "succeeded")
    env = env_of(state, "ensure")
    dumped = json.dumps(env)
    for leaked in ("worker-database-password", "kc-secret", "azure-secret"):
        assert leaked not in dumped
    assert set(env) - {"PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "PWD", "SHLVL", "_",
                       "OLDPWD"} == {
        *{k for k in env if k.startswith("TENANTOPS_")}, "BILLING_STATE", "BILLING_API_KEY"}
    assert not any(k.startswith("TENANTOPS_") and api_key in v for k, v in env.items())


def test_shell_injection_through_the_tenants_fields_is_refused(
        make_engine: EngineFactory, tmp_path: Path, site: Path, state: Path) -> None:
    """Tenant fields arrive as environment values, never through a shell: a display name
    made of shell syntax reaches the command as those characters and runs nothing."""
    engine = make_engine(steps=steps(tmp_path, state))
    ready(engine, tmp_path)
    marker = state / "pwned"  # the command's working state folder: a short path
    name = "Acme $(touch $BILLING_STATE/pwned) `touch pwned`; touch pwned"
    run = engine.wait(engine.onboard(spec_for("acme", display_name=name),
                                     requested_by="ops").id)
    assert run.status == "succeeded", run.error
    assert not marker.exists()
    assert not (Path.cwd() / "pwned").exists()
    assert env_of(state, "ensure")["TENANTOPS_TENANT_DISPLAY_NAME"] == name


def test_a_secret_echoed_by_a_command_is_redacted_from_the_step_record(
        make_engine: EngineFactory, tmp_path: Path, site: Path, state: Path) -> None:
    engine = make_engine(steps=steps(tmp_path, state))
    api_key = ready(engine, tmp_path)
    (state / "exit-code").write_text("3")
    run = engine.wait(engine.onboard(spec_for("acme"), requested_by="ops").id)
    assert run.failed_step == "create_billing_customer"
    recorded = json.dumps([(s.error, s.message, s.outputs) for s in run.steps]) + str(run.error)
    assert api_key not in recorded
    assert "using key [redacted]" in (run.error or "")


# -- refused when the settings load ------------------------------------------------------

def _load(tmp_path: Path, body: str) -> None:
    config = tmp_path / "tenantops.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n' + body)
    load_settings(config)


@pytest.mark.parametrize(("body", "message"), [
    ('[[steps]]\nname = "billing"\ntype = "command"\ncommand = ["true"]\n'
     'after = "create_databse"\n',
     r"steps\[0\]\.after = 'create_databse' names no step: use one of register_tenant"),
    ('[[steps]]\nname = "billing"\ntype = "command"\ncommand = ["no-such-program-xyz"]\n'
     'after = "create_database"\n',
     r"steps\[0\]\.command\[0\] = 'no-such-program-xyz': no such executable on PATH"),
    ('[[steps]]\nname = "billing"\ntype = "command"\ncommand = ["./missing.sh"]\n'
     'after = "create_database"\n',
     r"steps\[0\]\.command\[0\] = './missing.sh': .*missing\.sh does not exist"),
    ('[[steps]]\nname = "seed"\ntype = "python"\nentry_point = "broken-import"\n'
     'after = "create_database"\n',
     r"steps\[0\]\.entry_point = 'broken-import': entry point tenantops_test_broken:Broken "
     r"fails to import \(ImportError: no module named acme_sdk\)"),
    ('[[steps]]\nname = "seed"\ntype = "python"\nentry_point = "seed-recrods"\n'
     'after = "create_database"\n',
     r"steps\[0\]\.entry_point = 'seed-recrods': no entry point of that name in the group "
     r"tenantops\.steps \(installed: .*seed-records"),
    ('[[steps]]\nname = "seed"\ntype = "python"\nentry_point = "not-a-step"\n'
     'after = "create_database"\n',
     r"steps\[0\]\.entry_point = 'not-a-step': .* is not a subclass of .*CustomStep"),
    ('[[steps]]\nname = "a"\ntype = "command"\ncommand = ["true"]\nafter = "b"\n'
     '[[steps]]\nname = "b"\ntype = "command"\ncommand = ["true"]\nbefore = "a"\n',
     r"steps\[0\]: the custom steps' before/after make a cycle \(a \(after b\) -> "
     r"b \(before a\)\)"),
    ('[[steps]]\nname = "a"\ntype = "command"\ncommand = ["true"]\nafter = "create_database"\n'
     'before = "invite_admin"\n', r"steps\[0\] \(a\): set exactly one of before and after"),
    ('[[steps]]\nname = "create_database"\ntype = "command"\ncommand = ["true"]\n'
     'after = "invite_admin"\n',
     r"steps\[0\]\.name = 'create_database': a built-in step"),
    ('[[steps]]\nname = "a"\ntype = "command"\ncommand = ["true"]\nafter = "invite_admin"\n'
     '[steps.env]\nTENANTOPS_RUN_ID = "x"\n',
     r"steps\[0\]\.env: 'TENANTOPS_RUN_ID' must be an environment variable name .* not "
     "starting with TENANTOPS_"),
])
def test_a_wrong_custom_step_is_refused_when_the_settings_load_naming_the_setting(
        tmp_path: Path, site: Path, body: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, body)
