"""``tenantops demo --exit`` works on a fresh data folder, and again on the same one."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.support.processes import PYTHON_TENANTOPS, clean_environment

pytestmark = pytest.mark.integration


def run_demo(workdir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PYTHON_TENANTOPS, "demo", "--exit"], cwd=workdir,
                          env=clean_environment(), capture_output=True, text=True, timeout=240)


def test_demo_onboards_two_tenants_and_prints_what_to_try(tmp_path: Path) -> None:
    first = run_demo(tmp_path)
    assert first.returncode == 0, first.stderr
    out = first.stdout
    assert re.search(r"onboard acme: run \w+", out)
    assert re.search(r"onboard globex: run \w+", out)
    assert out.count(": succeeded") >= 2
    assert re.search(r"dig @127\.0\.0\.1 -p \d+ acme\.demo\.test CNAME", out)
    assert re.search(r"curl --resolve acme\.demo\.test:\d+:127\.0\.0\.1 --cacert \S+ "
                     r"https://acme\.demo\.test:\d+/", out)
    assert "emulator env --identity aa-onboarding --runtime automation" in out
    assert "runbooks/onboard_tenant.py" in out
    assert " call GET " in out
    assert "eyJ" not in out + first.stderr
    assert (tmp_path / ".tenantops" / "demo" / "catalog.sqlite").is_file()

    again = run_demo(tmp_path)  # reuses the data folder: nothing fails, nothing doubles
    assert again.returncode == 0, again.stderr
    runs = set(re.findall(r"onboard acme: run (\w+)", out))
    assert runs == set(re.findall(r"onboard acme: run (\w+)", again.stdout))


