from __future__ import annotations

from typer.testing import CliRunner

from tenantops import __version__
from tenantops.cli.main import app

runner = CliRunner()


def test_version_prints_package_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"tenantops {__version__}"


def test_every_command_has_help() -> None:
    for args in (["--help"], ["emulator", "--help"], ["emulator", "show", "--help"],
                 ["emulator", "env", "--help"], ["emulator", "rotate-keys", "--help"],
                 ["demo", "--help"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (args, result.output)
        assert "Usage:" in result.output
