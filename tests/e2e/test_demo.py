"""``tenantops demo --exit`` works on a fresh data folder; started again on the same one it
keeps the data and the ports, and Ctrl-C says what it stopped."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.support.processes import PYTHON_TENANTOPS, Process, clean_environment

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




def test_a_restarted_demo_keeps_its_data_and_ports_and_ctrl_c_says_what_it_stopped(
    tmp_path: Path,
) -> None:
    first = run_demo(tmp_path)
    assert first.returncode == 0, first.stderr
    api = re.search(r"API\s+(http://127\.0\.0\.1:\d+/api)", first.stdout)
    dns = re.search(r"DNS responder\s+(127\.0\.0\.1:\d+)", first.stdout)
    assert api is not None and dns is not None  # noqa: PT018
    assert "Kept the data" not in first.stdout
    assert "ops-admin" in first.stdout and "ops-reader" in first.stdout  # noqa: PT018

    served = Process([*PYTHON_TENANTOPS, "demo"], env=clean_environment(), cwd=tmp_path)
    try:
        kept = served.wait_for_line("Kept the data", timeout=240)
        api_line = served.wait_for_line("  API")
        dns_line = served.wait_for_line("  DNS responder")
        served.wait_for_line("Serving until Ctrl-C.", timeout=240)
    finally:
        stderr = served.stop()
    rest = []
    while not served.lines.empty():
        rest.append(served.lines.get())
    said = "".join(rest)

    assert "(2 tenants;" in kept
    assert api_line.split()[-1] == api.group(1)
    assert dns_line.split()[-1] == dns.group(1)
    assert served.process.returncode == 0, stderr
    assert f"stopped the API at {api.group(1)}, the worker, the DNS responder on" in said
    assert "'tenantops demo' starts again with it, on the same ports" in said
