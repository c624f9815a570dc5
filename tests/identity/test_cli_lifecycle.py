"""``tenantops tenants update|suspend|resume`` against a running API with a worker, as an
Automation job would call them: the dry run prints the diff and the plan and changes nothing,
each change follows its run to the end, exit codes say what happened."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn
from typer.testing import CliRunner

from tenantops.api import create_app
from tenantops.cli.main import app
from tenantops.config import Settings
from tenantops.emulator.server import EmulatorServer
from tenantops.provisioning import Engine
from tests.auth.support import auth_settings
from tests.identity.conftest import ActAs
from tests.provisioning.conftest import fast_settings, spec_for

pytestmark = pytest.mark.integration

runner = CliRunner()


@contextmanager
def serve(settings: Settings) -> Iterator[tuple[str, Engine]]:
    """The API of ``settings`` with a started engine, served by uvicorn on a free loopback
    port: its root URL and the engine."""
    engine = Engine(settings)
    engine.start()
    api = create_app(settings, engine=engine)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(uvicorn.Config(api, log_config=None, access_log=False,
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    try:
        while not server.started:
            assert thread.is_alive(), "uvicorn stopped before it served"
            assert time.monotonic() < deadline, "uvicorn did not start serving within 120 s"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", engine
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        sock.close()
        api.state.authenticator.validator.jwks.close()
        engine.stop()


@pytest.fixture(scope="module")
def api_root(emulator_server: EmulatorServer,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Engine]]:
    folder = tmp_path_factory.mktemp("cli-lifecycle")
    settings = fast_settings(folder / "data", domains={"change_grace_seconds": 0},
                             providers={"database": {"servers": [
                                 {"name": "default", "directory": str(folder / "one")},
                                 {"name": "two", "directory": str(folder / "two")}]}}
                             ).model_copy(
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


def test_update_suspend_and_resume_through_the_cli(
        api_root: tuple[str, Engine], operator: None) -> None:
    root, engine = api_root
    assert engine.wait(engine.onboard(spec_for("kilo"), requested_by="t").id).status == (
        "succeeded")

    code, out, err = cli(root, "tenants", "update", "kilo", "--domain", "www.kilo2.test",
                         "--plan", "premium", "--dry-run")
    assert code == 0, err
    assert "update kilo (dry run: nothing was changed):" in out
    assert "custom_domain: 'app.kilo.test' -> 'www.kilo2.test'" in out
    assert "bind_hostname" not in out  # resources, not step names
    assert "hostname:www.kilo2.test" in out
    assert engine.catalog.get_tenant("kilo").plan == "standard"

    code, out, err = cli(root, "tenants", "update", "kilo", "--domain", "www.kilo2.test",
                         "--plan", "premium", "--tag", "tier=gold", "--reason", "rebrand")
    assert code == 0, err + out
    tenant = engine.catalog.get_tenant("kilo")
    assert (tenant.custom_domain, tenant.plan, tenant.tags) == (
        "www.kilo2.test", "premium", {"tier": "gold"})
    code, out, _ = cli(root, "tenants", "update", "kilo", "--plan", "premium")
    assert code == 0  # the same request again: the run that made the change
    code, out, _ = cli(root, "tenants", "update", "kilo", "--name", "Kilo Ltd")
    assert (code, out.strip()) == (0, "nothing to change: kilo already is as asked")

    code, _, err = cli(root, "tenants", "suspend", "kilo", "--reason", "invoice unpaid")
    assert code == 0, err
    assert engine.catalog.get_tenant("kilo").status == "suspended"
    code, out, _ = cli(root, "tenants", "show", "kilo")
    assert "suspended    since" in out
    assert "invoice unpaid" in out
    code, _, err = cli(root, "tenants", "resume", "kilo")
    assert code == 0, err
    assert engine.catalog.get_tenant("kilo").status == "active"
    code, _, err = cli(root, "tenants", "resume", "kilo")
    assert code == 0  # a repeat returns the resumption that made it active
    code, _, err = cli(root, "tenants", "update", "kilo", "--admin-email", "nope")
    assert code == 2
    assert "admin_email" in err


def test_drift_and_reconcile_through_the_cli(
        api_root: tuple[str, Engine], operator: None) -> None:
    from tenantops.provisioning.providers.organization import TenantOrganization

    root, engine = api_root
    spec = spec_for("lima")
    assert engine.wait(engine.onboard(spec, requested_by="t").id).status == "succeeded"
    code, out, err = cli(root, "drift", "lima")
    assert code == 0, err
    assert out.splitlines()[0] == "drift lima (active): in sync"

    engine.providers.organization.remove(TenantOrganization(
        "lima", spec.display_name, (spec.custom_domain,), f"https://{spec.custom_domain}/"))
    code, out, err = cli(root, "drift", "lima")
    assert code == 1, err
    assert out.splitlines()[0] == "drift lima (active): missing"
    assert "  + missing   organization:local     organization:lima  (gone)" in out
    assert "restore it: tenantops reconcile lima" in out
    code, out, _ = cli(root, "drift", "--state", "missing")
    assert (code, out.splitlines()[0]) == (1, "drift lima (active): missing")
    code, _, err = cli(root, "drift", "--state", "sideways")
    assert (code, err.strip()) == (
        2, "error: --state 'sideways' is not one of in_sync, drifted, missing, unknown")

    code, out, err = cli(root, "reconcile", "lima", "--dry-run")
    assert code == 0, err
    assert "+ create    organization:local     organization:lima" in out
    assert engine.catalog.get_tenant("lima").status == "active"
    assert [r.kind for r in engine.catalog.tenant_and_runs("lima")[1]] == ["onboard"]

    code, out, err = cli(root, "reconcile", "lima", "--reason", "org deleted by hand")
    assert code == 0, err + out
    runs = engine.catalog.tenant_and_runs("lima")[1]
    assert [(r.kind, r.status) for r in runs] == [("onboard", "succeeded"),
                                                  ("reconcile", "succeeded")]
    code, out, _ = cli(root, "drift", "lima")
    assert (code, out.splitlines()[0]) == (0, "drift lima (active): in sync")
    code, out, _ = cli(root, "reconcile", "lima")
    assert code == 0
    assert "nothing to reconcile: lima's resources are as recorded" in out
    assert len(engine.catalog.tenant_and_runs("lima")[1]) == 2


def test_import_through_the_cli_from_csv(
        api_root: tuple[str, Engine], operator: None, tmp_path: Path) -> None:
    root, engine = api_root
    made = spec_for("mike")
    assert engine.wait(engine.onboard(made, requested_by="t").id).status == "succeeded"
    csv_file = tmp_path / "tenants.csv"
    csv_file.write_text(
        "slug,display_name,custom_domain,plan,admin_email,tags,database,login,suspended\n"
        "oscar,Oscar Ltd,www.oscar.test,premium,admin@oscar.test,tier=gold;region=eu,"
        "oscar_db,oscar_login,true\n"
        "mike,Mike,www.mike2.test,standard,admin@mike.test,,,,\n")

    code, out, err = cli(root, "import", str(csv_file), "--dry-run")
    assert code == 1, err  # partial and refused
    assert "partial  oscar (dry run: not recorded)" in out
    assert "  database:oscar_db (database:sqlite): gone" in out
    assert "  secret:oscar-database-password (secrets:local): gone" in out
    assert "refused  mike" in out
    assert "slug 'mike' is taken" in out
    assert "0 adopted, 1 partial, 1 refused (dry run: nothing recorded)" in out
    assert engine.catalog.find_tenant("oscar") is None

    code, out, err = cli(root, "import", str(csv_file), "--batch", "1")
    assert code == 1, err
    assert "0 adopted, 1 partial, 1 refused" in out
    assert "make what partial tenants miss: tenantops reconcile SLUG" in out
    oscar = engine.catalog.get_tenant("oscar")
    assert (oscar.status, oscar.plan, oscar.tags) == ("suspended", "premium",
                                                      {"tier": "gold", "region": "eu"})
    assert (oscar.database_name, oscar.database_login) == ("oscar_db", "oscar_login")

    bad = tmp_path / "bad.csv"
    bad.write_text("slug,tags\nx,notatag\n")
    code, _, err = cli(root, "import", str(bad))
    assert (code, err.strip()) == (2, "error: line 2: tag 'notatag' must be key=value")


def test_a_move_through_the_cli(api_root: tuple[str, Engine], operator: None) -> None:
    root, engine = api_root
    assert engine.wait(engine.onboard(spec_for("papa"), requested_by="t").id).status == (
        "succeeded")
    where = engine.catalog.placement_of("papa")
    assert where is not None
    there = "two" if where.server == "default" else "default"
    code, out, err = cli(root, "tenants", "show", "papa")
    assert code == 0, err
    assert f"placement    current  {where.server}: tenant_papa (database mode)" in out

    code, out, err = cli(root, "tenants", "move", "papa", "--server", there, "--dry-run")
    assert code == 0, err
    # The server "default" is left out of a database's key (as before servers were several).
    assert (f"database:{there}/tenant_papa" if there != "default"
            else "database:tenant_papa") in out
    assert engine.catalog.placement_of("papa") == where

    code, out, err = cli(root, "tenants", "move", "papa", "--server", "nowhere")
    assert code == 5, (out, err)
    assert "server 'nowhere' is not in pool 'default'" in err

    code, out, err = cli(root, "tenants", "move", "papa", "--server", there,
                         "--grace-seconds", "0", "--reason", "rebalance")
    assert code == 0, err + out
    moved = engine.catalog.placement_of("papa")
    assert moved is not None
    assert moved.server == there
    assert engine.catalog.placements_of("papa") == [moved]  # the old copy is gone
