"""The API runs without a worker anywhere: the CLI's onboard --wait times out and says why
(no worker has been seen) instead of only that the run is still pending."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator

import pytest

from tests.support.processes import (
    PYTHON_TENANTOPS,
    Process,
    clean_environment,
    emulator_env,
    start_api,
    start_emulator,
)

pytestmark = pytest.mark.integration

HINT = ("hint: no worker has been seen in the last 120 s, so nothing executes runs: start one "
        "with 'tenantops worker' (or 'tenantops serve' without --no-worker)")


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[str], dict[str, str]]]:
    data_dir = tmp_path_factory.mktemp("no-worker") / "data"
    data_dir.mkdir()
    env = clean_environment({})
    processes: list[Process] = []
    try:
        emulator, info = start_emulator(data_dir, env)
        processes.append(emulator)
        api, url = start_api(data_dir, info, env, worker=False)
        processes.append(api)
        caller = {**env, **emulator_env(data_dir, "aa-onboarding", "automation", env)}
        yield [*PYTHON_TENANTOPS, "--data-dir", str(data_dir)], {**caller, "URL": url}
    finally:
        for process in reversed(processes):
            process.stop()


def run(cli: tuple[list[str], dict[str, str]], *args: str) -> subprocess.CompletedProcess[str]:
    command, env = cli
    return subprocess.run([*command, *args, "--api-url", env["URL"]], capture_output=True,
                          text=True, env=env, timeout=120)


def test_onboard_wait_without_a_worker_times_out_naming_the_missing_worker(
        cli: tuple[list[str], dict[str, str]]) -> None:
    result = run(cli, "onboard", "idle", "--domain", "idle.example.test", "--admin-email",
                 "it@idle.example.test", "--timeout", "1")
    assert result.returncode == 6, result.stderr
    match = re.search(r"error: run (\w+) is still pending", result.stderr)
    assert match, result.stderr
    assert HINT in result.stderr

    shown = run(cli, "runs", "show", match.group(1))
    assert shown.returncode == 0, shown.stderr
    assert "pending" in shown.stdout
    assert HINT in shown.stderr
