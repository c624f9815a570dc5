"""What the fault suite (`test_fault_suite.py`) is built from: a PostgreSQL cluster of the
test's own (so it can be stopped and restarted without touching the shared one), worker
processes that can be frozen, killed or run under a skewed clock, a tmpfs data folder that
can fill up, and the assertions every fault test makes."""

from __future__ import annotations

import collections
import contextlib
import itertools
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.name
import dns.rdatatype
import psycopg

from tenantops.catalog import Run, segment_workflow_id
from tenantops.provisioning import Engine
from tenantops.provisioning.providers.dns.zones import ZoneFiles
from tenantops.provisioning.providers.webhost.state import EdgeState

from .middleware import CallLog

REPO = Path(__file__).resolve().parents[2]
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def faketime_library() -> Path:
    """Debian's libfaketime (package ``faketime``, installed by scripts/test)."""
    found = sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))
    if not found:
        raise AssertionError("libfaketime is not installed: apt-get install faketime "
                             "(scripts/test installs it)")
    return found[0]

WORKER_CONFIG = """\
data_dir = "{data}"
log_level = "INFO"
dev_mode = true

[engine]
queue_polling_seconds = 0.05
retry_initial_seconds = 0.05
retry_max_seconds = 0.5
worker_concurrency = {concurrency}
check_runs_seconds = 1.0
worker_timeout_seconds = {timeout}
max_attempts = {max_attempts}
{engine_extra}

[providers.dns]
port = 0
propagation_poll_seconds = 0.05

[providers.webhost]
port = 0
app_port = 0
issuance_delay_seconds = {issuance}
{extra}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(condition: Callable[[], object], what: str, timeout: float = 60.0) -> float:
    """Poll ``condition`` until it holds; returns the seconds it took."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"{what} within {timeout:.0f} s"
        time.sleep(0.05)
    return time.monotonic() - started


# -- a PostgreSQL cluster of the test's own --------------------------------------------------

class PostgresCluster:
    """PostgreSQL 15 in a temporary folder on a free loopback port, trust auth, owned by
    the ``postgres`` account when the tests run as root (initdb refuses root)."""

    def __init__(self) -> None:
        if not (PG_BIN / "postgres").exists():
            raise AssertionError(
                f"PostgreSQL 15 is not installed at {PG_BIN}: run scripts/services/postgres.sh "
                "(scripts/test does), which installs postgresql-15")
        self.folder = Path(tempfile.mkdtemp(prefix="tenantops-faults-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self._root = os.geteuid() == 0
        if self._root:
            shutil.chown(self.folder, "postgres", "postgres")
        self.folder.chmod(0o700)
        self._as_owner([str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
                        "-A", "trust", "-E", "UTF8", "--no-sync"])
        # As scripts/services/postgres.sh: only the admin role is trusted, the others sign
        # in with their passwords (SCRAM).
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\nhost all postgres 127.0.0.1/32 trust\n"
            "host all all 127.0.0.1/32 scram-sha-256\n")

    def _as_owner(self, argv: list[str]) -> None:
        command = ["runuser", "-u", "postgres", "--", *argv] if self._root else argv
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"{argv[0]} failed: {result.stdout}{result.stderr}"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        self._as_owner([
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.folder / "log"),
            "-w", "-t", "60", "-o",
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.folder} -c fsync=off "
            "-c max_connections=200", "start"])

    def stop(self, mode: str = "fast") -> None:
        self._as_owner([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w",
                        "-t", "60", "stop"])

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def close(self) -> None:
        with contextlib.suppress(AssertionError):
            self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)


@contextlib.contextmanager
def postgres_cluster() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()


# -- worker processes -----------------------------------------------------------------------

class FaultWorker:
    """One worker process (the real worker, with a call log and a short delay per call)."""

    def __init__(self, folder: Path, config: str, *, skew: str | None = None) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.config = folder / "tenantops.toml"
        self.config.write_text(config)
        self.calls = folder / "calls.jsonl"
        self.ready = folder / "ready.json"
        self.log = folder / "worker.log"
        self.skew = skew
        self.process: subprocess.Popen[bytes] | None = None
        self.killed_pids: set[int] = set()
        self.frozen: list[tuple[float, float]] = []

    def launch(self) -> subprocess.Popen[bytes]:
        self.ready.unlink(missing_ok=True)
        env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
        if self.skew is not None:
            # libfaketime on this process only; the monotonic clock stays true.
            env.update(LD_PRELOAD=str(faketime_library()), FAKETIME=self.skew,
                       FAKETIME_DONT_FAKE_MONOTONIC="1", FAKETIME_NO_CACHE="1")
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.provisioning.crash_worker", str(self.config),
                 str(self.calls), str(self.ready)],
                cwd=REPO, env=env, stdout=log, stderr=log)
        return self.process

    def start(self) -> None:
        process = self.launch()
        deadline = time.monotonic() + 90
        while not self.ready.exists():
            assert process.poll() is None, self.log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the worker did not start within 90 s"
            time.sleep(0.05)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.killed_pids.add(self.process.pid)
        self.process = None

    def freeze_between_calls(self) -> None:
        """SIGSTOP the worker at a moment when none of its provider calls is open (a call
        frozen halfway finishes when the worker wakes: see docs/engine.md)."""
        for _ in range(200):
            os.kill(self.pid, signal.SIGSTOP)
            if not open_calls(CallLog(self.calls).read(), self.pid):
                self.frozen.append((time.time(), float("inf")))
                return
            os.kill(self.pid, signal.SIGCONT)
            time.sleep(0.01)
        raise AssertionError("the worker was always inside a provider call")

    def thaw(self) -> None:
        os.kill(self.pid, signal.SIGCONT)
        began, _ = self.frozen[-1]
        self.frozen[-1] = (began, time.time())

    def stop(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGCONT)
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def worker_config(data: Path, *, catalog: str | None = None, system: str | None = None,
                  executor: str | None = None, timeout: float = 120.0, max_attempts: int = 8,
                  issuance: float = 0.3, concurrency: int = 8, extra: str = "") -> str:
    engine_extra = []
    if system:
        engine_extra.append(f'system_database_url = "{system}"')
    if executor:
        engine_extra.append(f'executor_id = "{executor}"')
    config = WORKER_CONFIG.format(data=data, timeout=timeout, max_attempts=max_attempts,
                                  issuance=issuance, concurrency=concurrency,
                                  engine_extra="\n".join(engine_extra),
                                  extra=extra)
    if catalog:
        config += f'\n[catalog]\nurl = "{catalog}"\n'
    return config


def open_calls(calls: list[dict[str, Any]], pid: int) -> list[tuple[str, str]]:
    """The (run, step) provider calls of ``pid`` that began and have not ended."""
    opened: collections.Counter[tuple[str, str]] = collections.Counter()
    for call in calls:
        if call["pid"] != pid:
            continue
        key = (call["run"], call["step"])
        opened[key] += 1 if call["event"] == "begin" else -1
    return [key for key, count in opened.items() if count > 0]


# -- a data folder whose disk fills up ----------------------------------------------------

@dataclass
class SmallDisk:
    """A data folder on a small tmpfs (``mount`` as root), filled and freed by a ballast
    file; where mounting is not allowed, the worker's file-size limit (``prlimit``
    RLIMIT_FSIZE) makes its writes fail instead, a simulated full disk. ``how`` says which."""

    folder: Path
    how: str = ""
    ballast: Path = field(init=False)
    _mounted: bool = False

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.ballast = self.folder / "ballast"
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m,mode=0755", "tmpfs",
                                 str(self.folder)], capture_output=True, text=True, check=False)
        self._mounted = result.returncode == 0
        self.how = ("a 64 MiB tmpfs filled by a ballast file" if self._mounted else
                    f"a file-size limit on the worker (mount refused: {result.stderr.strip()})")

    def fill(self, worker_pid: int) -> None:
        if not self._mounted:
            _set_file_size_limit(worker_pid, _largest_file(self.folder))
            return
        with open(self.ballast, "wb") as ballast:
            chunk = b"\0" * (1 << 20)
            with contextlib.suppress(OSError):
                while True:
                    ballast.write(chunk)
                    ballast.flush()
        with contextlib.suppress(OSError), open(self.ballast, "ab") as ballast:
            # Fill the last partial block too: a full disk, not an almost full one.
            while True:
                ballast.write(b"\0" * 512)
                ballast.flush()

    def free(self, worker_pid: int) -> None:
        if not self._mounted:
            _set_file_size_limit(worker_pid, resource.RLIM_INFINITY)
            return
        self.ballast.unlink(missing_ok=True)

    def close(self) -> None:
        if self._mounted:
            subprocess.run(["umount", "-l", str(self.folder)], check=False)
            self._mounted = False


def _largest_file(folder: Path) -> int:
    return max((p.stat().st_size for p in folder.rglob("*") if p.is_file()), default=0)


def _set_file_size_limit(pid: int, limit: int) -> None:
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))


# -- what every fault test asserts ---------------------------------------------------------

def wait_all(engine: Engine, runs: Sequence[Run], timeout: float) -> list[Run]:
    deadline = time.monotonic() + timeout
    while True:
        current = [engine.get_run(run.id) for run in runs]
        if all(run.finished for run in current) or time.monotonic() > deadline:
            return current
        time.sleep(0.2)


def assert_all_succeeded(runs: Sequence[Run]) -> None:
    assert [run.status for run in runs] == ["succeeded"] * len(runs), [
        (run.tenant_slug, run.status, run.failed_step, run.error, [
            (s.name, s.status, s.message) for s in run.steps if s.status != "succeeded"])
        for run in runs if run.status != "succeeded"]


def assert_each_resource_exists_once(data: Path, engine: Engine, slugs: Sequence[str], *,
                                     databases: Callable[[], list[str]] | None = None) -> None:
    """Every tenant's zone records, database, secret, hostname binding, certificate and
    organization exist, each exactly once, and nothing else does."""
    zones = ZoneFiles(data / "dns")
    assert sorted(zones.names()) == sorted(f"{slug}.test" for slug in slugs)
    for slug in slugs:
        zone = zones.load(f"{slug}.test")
        assert zone is not None
        cname = zone.get_rdataset(dns.name.from_text(f"app.{slug}.test"), dns.rdatatype.CNAME)
        txt = zone.get_rdataset(dns.name.from_text(f"asuid.app.{slug}.test"),
                                dns.rdatatype.TXT)
        assert cname is not None
        assert txt is not None
        assert (len(cname), len(txt)) == (1, 1)
    if databases is None:
        names = sorted(p.stem for p in (data / "databases").glob("*.sqlite"))
    else:
        names = sorted(databases())
    assert names == sorted(f"tenant_{slug}" for slug in slugs)
    # Each tenant's login password and its app's connection URL, once each.
    assert sorted(p.name for p in (data / "secrets").iterdir()) == sorted(
        f"{slug}-database-{kind}" for slug in slugs for kind in ("password", "url"))
    edge = EdgeState(data / "edge")
    bindings = edge.bindings()
    assert sorted(b.tenant for b in bindings) == sorted(slugs)
    assert {b.ssl_state for b in bindings} == {"SniEnabled"}
    assert len(list((data / "edge" / "certificates").glob("*.pem"))) == len(slugs)
    organizations = engine.catalog.organizations.list()
    assert sorted(o.alias for o in organizations) == sorted(slugs)
    assert {(len(o.domains), len(o.invitations)) for o in organizations} == {(1, 1)}


def assert_no_step_ran_twice_at_once(calls: list[dict[str, Any]],
                                     frozen: Sequence[tuple[int, float, float]] = ()) -> int:
    """No two provider calls of one step of one run overlap in time (a call begins after
    the previous one of that step ended, or its process was killed or frozen); returns the
    number of steps whose provider work was done more than once (after a kill, a freeze or
    a lost connection), for the test to print."""
    killed_or_frozen: dict[int, list[tuple[float, float]]] = collections.defaultdict(list)
    for pid, began, ended in frozen:
        killed_or_frozen[pid].append((began, ended))
    intervals: dict[tuple[str, str], list[tuple[float, float, int]]] = (
        collections.defaultdict(list))
    opened: dict[tuple[str, str, int], list[float]] = collections.defaultdict(list)
    for call in calls:
        key = (call["run"], call["step"])
        mine = (call["run"], call["step"], call["pid"])
        if call["event"] == "begin":
            opened[mine].append(call["t"])
        elif opened[mine]:
            intervals[key].append((opened[mine].pop(), call["t"], call["pid"]))
    for (run, step, pid), begins in opened.items():
        for began in begins:  # killed while calling: the call ended with its process
            intervals[(run, step)].append((began, began, pid))
    for key, spans in intervals.items():
        spans.sort()
        for (b1, e1, p1), (b2, _e2, p2) in itertools.pairwise(spans):
            if b2 < e1 and not (p1 != p2 and any(f0 <= b2 <= f1 for f0, f1 in
                                                 killed_or_frozen.get(p1, []))):
                raise AssertionError(f"{key[1]} of run {key[0]} ran twice at once: "
                                     f"pid {p1} {b1:.3f}-{e1:.3f} and pid {p2} from {b2:.3f}")
    completions = collections.Counter(
        (c["run"], c["step"]) for c in calls if c["event"] == "end" and not c["pending"])
    repeated = sum(1 for count in completions.values() if count > 1)
    return repeated


def segments_of(engine: Engine, run: Run) -> list[str]:
    return [segment_workflow_id(run.workflow_id, n) for n in range(run.segment + 1)]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True

