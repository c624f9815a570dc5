"""The CLI starts fast because a command imports only what it needs: ``--version``, ``--help``
and the API commands' help never load the API app, DBOS, SQLAlchemy or uvicorn
(``bench/bench_cli.py`` measures the time; this keeps the cause from coming back)."""

from __future__ import annotations

import json
import subprocess
import sys
import typing

import pytest

from tenantops.cli import auth as auth_cmd
from tenantops.config import IdentitySource

pytestmark = pytest.mark.integration  # each test starts a tenantops process

HEAVY = ("fastapi", "dbos", "sqlalchemy", "uvicorn", "starlette", "alembic", "azure",
         "msal", "rich", "jinja2", "cryptography")

_PROBE = """
import json, sys
sys.argv = ["tenantops", *sys.argv[1:]]
from tenantops.cli import main
try:
    main()
except SystemExit as exit:
    code = exit.code
else:
    code = 0
loaded = sorted({name.split(".")[0] for name in sys.modules})
sys.stderr.write(json.dumps({"code": code, "loaded": loaded}) + "\\n")
"""


def loaded_by(*args: str) -> set[str]:
    """The top-level packages a fresh interpreter has loaded after ``tenantops ARGS``."""
    done = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True,
                          text=True, timeout=120)
    report = json.loads(done.stderr.strip().splitlines()[-1])
    assert report["code"] in (0, None), done.stderr
    return set(report["loaded"])


@pytest.mark.parametrize("args", [
    ["--version"], ["--help"], ["tenants", "list", "--help"], ["onboard", "--help"],
    ["serve", "--help"], ["demo", "--help"], ["azure", "check", "--help"],
])
def test_version_and_help_load_no_heavy_module(args: list[str]) -> None:
    heavy = loaded_by(*args) & set(HEAVY)
    assert not heavy, f"tenantops {' '.join(args)} imported {sorted(heavy)}"


def test_version_loads_not_even_typer() -> None:
    assert "typer" not in loaded_by("--version")


def test_the_clis_identity_sources_are_the_configurations() -> None:
    spelled_out = vars(auth_cmd)["IdentitySource"]
    assert typing.get_args(spelled_out) == typing.get_args(IdentitySource)
