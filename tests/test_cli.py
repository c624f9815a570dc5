from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from tenantops import __version__
from tenantops.cli.main import app

runner = CliRunner()


def test_version_prints_package_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"tenantops {__version__}"


def _commands(command: Any, prefix: list[str]) -> list[tuple[list[str], Any]]:
    """Every command under ``command`` (a Click command or group), with its path."""
    found = [(prefix, command)]
    for name, sub in getattr(command, "commands", {}).items():
        found += _commands(sub, [*prefix, name])
    return found


def test_every_command_has_help() -> None:
    commands = _commands(typer.main.get_command(app), [])
    paths = [path for path, _ in commands]
    assert ["emulator", "env"] in paths
    assert ["auth", "doctor"] in paths
    for path, command in commands:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage:" in result.output
        assert command.help or command.short_help, f"tenantops {' '.join(path)} has no help text"


def test_onboard_dry_run_prints_the_plan_and_changes_no_tenant(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TENANTOPS_DEV_MODE", "true")  # .test domains (RFC 6761)
    args = ["--data-dir", str(tmp_path), "onboard", "acme", "--domain", "portal.acme.test",
            "--admin-email", "a@acme.example", "--dry-run"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "+ create    dns:zone-file        dns:CNAME:portal.acme.test" in result.output
    assert "0 to delete" in result.output
    assert not (tmp_path / "dns").exists()
    assert not (tmp_path / "databases").exists()


def test_onboard_with_invalid_spec_exits_2_naming_every_field(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--data-dir", str(tmp_path), "onboard", "Bad!", "--domain", "x",
                                 "--admin-email", "nope", "--dry-run"])
    assert result.exit_code == 2
    for field in ("slug = 'Bad!'", "custom_domain = 'x'", "admin_email = 'nope'"):
        assert field in result.output


@pytest.mark.integration
def test_cli_works_without_the_azure_extra_and_says_how_to_get_it() -> None:
    """The README's install is `pip install -e .` (no extras): the CLI must not need them."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'azure.mgmt' or name.startswith(('azure.mgmt.', 'azure.functions')):\n"
        "            raise ModuleNotFoundError(name=name)\n"
        "        return None\n"
        "sys.meta_path.insert(0, Block())\n"
        "sys.argv = ['tenantops'] + sys.argv[1:]\n"
        "from tenantops.cli.main import main\n"
        "main()\n"
    )
    helped = subprocess.run([sys.executable, "-c", script, "--help"], capture_output=True,
                            text=True, timeout=60)
    assert helped.returncode == 0, helped.stderr
    assert "demo" in helped.stdout
    refused = subprocess.run([sys.executable, "-c", script, "azure", "check"],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1
    assert "pip install 'tenantops[azure]'" in refused.stderr
