"""``tenantops fleet …`` against a running API with a worker, as an operator on release day
would call it: the dry run lists pending revisions per tenant, ``migrate`` follows the fleet
with done / failed / remaining and a rate, the brake exits 1 naming the cause, ``targets``
shows the failed tenant and why, ``resume`` finishes it; pause and cancel by ID."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tenantops.cli.main import app
from tenantops.emulator.server import EmulatorServer
from tenantops.provisioning import Engine
from tenantops.provisioning.providers.database.sqlite import SqliteDatabases
from tests.auth.support import auth_settings
from tests.identity.conftest import ActAs
from tests.identity.test_cli_lifecycle import serve
from tests.provisioning.conftest import fast_settings, spec_for

pytestmark = pytest.mark.integration

runner = CliRunner()


@pytest.fixture(scope="module")
def migrations(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli-migrations")
    (folder / "0001_users.sql").write_text(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL);")
    return folder


@pytest.fixture(scope="module")
def api_root(emulator_server: EmulatorServer, migrations: Path,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Engine]]:
    settings = fast_settings(tmp_path_factory.mktemp("cli-fleet") / "data",
                             migrations={"folder": migrations},
                             fleet={"poll_seconds": 0.02}).model_copy(
        update={"auth": auth_settings(emulator_server.info)})
    with serve(settings) as served:
        yield served


@pytest.fixture
def operator(act_as: ActAs, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    act_as("aa-onboarding", "automation")
    monkeypatch.setenv("TENANTOPS_IDENTITY__CACHE_DIR", str(tmp_path / "cache"))


def cli(root: str, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args, "--api-url", root])
    return result.exit_code, result.stdout, result.stderr


def database(engine: Engine, slug: str) -> Path:
    provider = engine.providers.database
    assert isinstance(provider, SqliteDatabases)
    name = engine.catalog.get_tenant(slug).database_name
    assert name
    return provider.path(name)


def test_migrate_through_the_cli_dry_run_brake_targets_resume(
        api_root: tuple[str, Engine], operator: None, migrations: Path) -> None:
    root, engine = api_root
    slugs = ["clia", "clib", "clic", "clid"]
    for run_id in [engine.onboard(spec_for(s), requested_by="t").id for s in slugs]:
        assert engine.wait(run_id, timeout=120).status == "succeeded"
    (migrations / "0002_orders.sql").write_text("CREATE TABLE orders (id INTEGER);")

    code, out, err = cli(root, "fleet", "migrate", "--dry-run")
    assert code == 0, err
    assert "migrate (dry run: nothing was changed) revision=0002_orders" in out
    assert "clia" in out
    assert "run      0001_users -> 0002_orders: 0002_orders" in out
    assert "4 to change, 0 already there, 0 skipped" in out
    assert engine.catalog.get_tenant("clia").schema_revision == "0001_users"

    code, out, err = cli(root, "fleet", "migrate", "--tenant", "clib", "--tenant", "clia",
                         "--canary", "1")
    assert code == 0, err + out
    assert "(migrate of 2 tenants) started" in out
    assert "succeeded: 2/2 done (0 failed, 0 skipped), 0 remaining" in out
    assert "tenants/s" in out
    assert engine.catalog.get_tenant("clib").schema_revision == "0002_orders"
    assert engine.catalog.get_tenant("clic").schema_revision == "0001_users"

    with closing(sqlite3.connect(database(engine, "clic"))) as db:
        db.executemany("INSERT INTO users (email) VALUES (?)", [("a@x.test",)] * 2)
        db.commit()
    (migrations / "0003_unique.sql").write_text("CREATE UNIQUE INDEX u ON users (email);")
    code, out, err = cli(root, "fleet", "migrate", "--canary", "0", "--concurrency", "1",
                         "--max-failures", "0")
    assert code == 1, out
    assert "stopped: " in out
    assert "1 tenants failed, more than the 0 allowed (max_failures)" in out
    fleet_id = out.split("fleet run ", 1)[1].split(" ", 1)[0]
    assert f"tenantops fleet targets {fleet_id} --status failed" in err

    code, out, err = cli(root, "fleet", "targets", fleet_id, "--status", "failed")
    assert code == 0, err
    assert out.startswith("clic")
    assert "UNIQUE constraint failed" in out

    code, out, _ = cli(root, "fleet", "show", fleet_id)
    assert code == 1
    assert "max failures 0" in out

    with closing(sqlite3.connect(database(engine, "clic"))) as db:
        db.execute("DELETE FROM users WHERE id = 2")
        db.commit()
    code, out, err = cli(root, "fleet", "resume", fleet_id)
    assert code == 0, err + out
    assert "succeeded: 4/4 done" in out
    assert {engine.catalog.get_tenant(s).schema_revision for s in slugs} == {"0003_unique"}

    code, out, _ = cli(root, "fleet", "list", "--status", "succeeded")
    assert code == 0
    assert fleet_id in out

    code, _, err = cli(root, "fleet", "migrate", "--to", "0009_nope", "--no-wait")
    assert code == 2
    assert "0009_nope" in err
    code, _, err = cli(root, "fleet", "show", "unknown-fleet")
    assert code == 4
    assert "unknown-fleet" in err


def test_pause_and_cancel_by_id(api_root: tuple[str, Engine], operator: None,
                                migrations: Path) -> None:
    root, engine = api_root
    (migrations / "0004_more.sql").write_text("CREATE TABLE more (id INTEGER);")
    conductor = engine.conductor
    assert conductor is not None
    conductor.stop()  # nothing starts while the test pauses it
    try:
        code, out, err = cli(root, "fleet", "migrate", "--no-wait")
        assert code == 0, err
        fleet_id = out.split("fleet run ", 1)[1].split(" ", 1)[0]
        code, out, err = cli(root, "fleet", "pause", fleet_id)
        assert code == 0, err
        assert "stopped: 0/4 done" in out
        assert "\n  paused by " in out
        code, _, err = cli(root, "fleet", "pause", fleet_id)
        assert code == 5
        assert "only a running fleet run can be paused" in err
    finally:
        conductor.start()
    code, out, err = cli(root, "fleet", "cancel", fleet_id)
    assert code == 0, err
    assert "cancelled: 4/4 done" in out
    code, _, err = cli(root, "fleet", "resume", fleet_id, "--no-wait")
    assert code == 5
    assert "only a stopped or failed fleet run can be resumed" in err


def test_rotate_names_what_it_can_rotate_and_why_this_provider_cannot(
        api_root: tuple[str, Engine], operator: None) -> None:
    root, _engine = api_root
    code, _, err = cli(root, "fleet", "rotate", "passwords")
    assert code == 2
    assert "what = 'passwords': must be database-credentials" in err
    code, _, err = cli(root, "fleet", "rotate", "database-credentials", "--dry-run")
    assert code == 2
    assert "cannot rotate credentials" in err


def test_certificates_lists_expiry_and_renew_names_what_it_renews(
        api_root: tuple[str, Engine], operator: None) -> None:
    root, engine = api_root
    code, out, err = cli(root, "certificates")
    assert code == 0, err
    tenant = engine.catalog.get_tenant("clia")
    assert tenant.certificate_thumbprint
    line = next(x for x in out.splitlines() if " clia " in x)
    assert tenant.certificate_thumbprint in line
    assert not line.startswith("!")
    assert out.rstrip().endswith("0 expiring within 30 days")
    code, out, _ = cli(root, "certificates", "--soon")
    assert code == 0
    assert "clia" not in out
    code, _, err = cli(root, "fleet", "renew", "passwords")
    assert code == 2
    assert "must be certificates" in err
    code, out, err = cli(root, "fleet", "renew", "certificates", "--tenant", "clia",
                         "--within-days", "400")
    assert code == 0, err + out
    assert "succeeded: 1/1 done (0 failed, 0 skipped)" in out
    assert engine.catalog.get_tenant("clia").certificate_thumbprint != (
        tenant.certificate_thumbprint)
