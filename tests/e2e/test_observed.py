"""Telemetry and the audit trail across processes: the emulator, the API and the worker as
separate processes exporting by OTLP/HTTP to a collector in this test; the CLI reading the
audit trail through the API."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tenantops.catalog import Catalog
from tests.support.processes import (
    PYTHON_TENANTOPS,
    Process,
    clean_environment,
    emulator_env,
    start_api,
    start_emulator,
    start_worker,
)
from tests.telemetry.conftest import Collector, collector
from tests.telemetry.test_export import spans_of

__all__ = ["collector"]

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Span:
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    attributes: dict[str, str]


def full_spans(bodies: list[bytes]) -> list[Span]:
    """Every span of the OTLP export requests, IDs in hex."""
    found = []
    for body in bodies:
        for resource_spans in ExportTraceServiceRequest.FromString(body).resource_spans:
            for scope in resource_spans.scope_spans:
                found += [Span(s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex(), s.name,
                               {a.key: a.value.string_value for a in s.attributes})
                          for s in scope.spans]
    return found


@dataclass
class Stack:
    data_dir: Path
    api_url: str
    base_env: dict[str, str]

    def tenantops(self, *args: str, identity: str) -> subprocess.CompletedProcess[str]:
        env = {**self.base_env,
               **emulator_env(self.data_dir, identity, "automation", self.base_env)}
        return subprocess.run([*PYTHON_TENANTOPS, "--data-dir", str(self.data_dir), *args,
                               "--api-url", self.api_url], capture_output=True, text=True,
                              env=env, timeout=180, check=False)


@pytest.fixture
def stack(tmp_path: Path, collector: Collector) -> Iterator[Stack]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    env = clean_environment({"TENANTOPS_PROVIDERS__DNS__PORT": "0",
                             "TENANTOPS_PROVIDERS__WEBHOST__PORT": "0",
                             "TENANTOPS_PROVIDERS__WEBHOST__APP_PORT": "0",
                             "TENANTOPS_PROVIDERS__DNS__ZONES": '["example.test"]',
                             "TENANTOPS_TELEMETRY__OTLP_ENDPOINT": collector.url,
                             "TENANTOPS_TELEMETRY__METRIC_INTERVAL_SECONDS": "1"})
    env.pop("APPLICATIONINSIGHTS_CONNECTION_STRING", None)
    processes: list[Process] = []
    try:
        emulator, info = start_emulator(data_dir, env)
        processes.append(emulator)
        api, url = start_api(data_dir, info, env, worker=False)
        processes.append(api)
        worker, _ = start_worker(data_dir, env)
        processes.append(worker)
        yield Stack(data_dir, url, env)
    finally:
        stderr = [p.stop() for p in reversed(processes)]
        for text in stderr:
            assert "eyJ" not in text, "a token reached a log"


def test_one_onboarding_is_one_trace_from_the_api_request_and_audited(
        stack: Stack, collector: Collector) -> None:
    result = stack.tenantops("onboard", "observed", "--domain", "observed.example.test",
                             "--admin-email", "it@observed.example.test",
                             identity="aa-onboarding")
    assert result.returncode == 0, result.stderr

    catalog = Catalog(f"sqlite:///{stack.data_dir / 'catalog.sqlite'}")
    try:
        [run] = catalog.list_runs("observed")
        records, _ = catalog.audit.page(tenant="observed")
    finally:
        catalog.close()
    assert run.trace_context is not None
    trace_id = run.trace_context.split("-")[1]
    def onboarding_requests(bodies: list[bytes]) -> list[tuple[str, dict[str, str],
                                                             dict[str, str]]]:
        return [s for s in spans_of(bodies) if s[0] == "POST /api/tenants"]

    request_spans = onboarding_requests(collector.wait_for(
        "/v1/traces", timeout=60, until=lambda bodies: bool(onboarding_requests(bodies))))
    assert len(request_spans) == 1
    assert request_spans[0][1]["tenantops.request.id"] == records[0].request_id
    assert records[0].trace_id == trace_id
    assert (records[0].action, records[0].outcome, records[0].run_id) == (
        "tenant.onboard", "succeeded", run.id)


def test_the_cli_reads_the_audit_trail_only_with_audit_read(stack: Stack) -> None:
    onboarded = stack.tenantops("onboard", "audited", "--domain", "audited.example.test",
                                "--admin-email", "it@audited.example.test", "--no-wait",
                                identity="aa-onboarding")
    assert onboarded.returncode == 0, onboarded.stderr
    refused = stack.tenantops("audit", identity="aa-onboarding")
    assert refused.returncode == 3
    assert "Audit.Read" in refused.stderr

    table = stack.tenantops("audit", "--tenant", "audited", identity="aa-auditor")
    assert table.returncode == 0, table.stderr
    header, row, summary = table.stdout.splitlines()
    assert header.split() == ["WHEN", "WHO", "ACTION", "TENANT", "OUTCOME", "REQUEST"]
    assert "tenant.onboard" in row
    assert "succeeded 202" in row
    assert summary == "1 shown (1-1 of 1)"
    listed = stack.tenantops("audit", "--action", "tenant.onboard", "--outcome", "succeeded",
                             "--json", identity="aa-auditor")
    assert listed.returncode == 0, listed.stderr
    page = json.loads(listed.stdout)
    assert {r["tenant"] for r in page["items"]} == {"audited"}
    assert page["items"][0]["channel"] == "api"


def test_the_worker_continues_the_requests_trace_down_to_each_provider_call(
        stack: Stack, collector: Collector) -> None:
    result = stack.tenantops("onboard", "traced", "--domain", "traced.example.test",
                             "--admin-email", "it@traced.example.test", identity="aa-onboarding")
    assert result.returncode == 0, result.stderr
    catalog = Catalog(f"sqlite:///{stack.data_dir / 'catalog.sqlite'}")
    try:
        [run] = catalog.list_runs("traced")
    finally:
        catalog.close()
    assert run.trace_context is not None
    trace_id = run.trace_context.split("-")[1]

    def of_the_run(bodies: list[bytes]) -> dict[str, Span]:
        return {s.span_id: s for s in full_spans(bodies) if s.trace_id == trace_id}

    def complete(bodies: list[bytes]) -> bool:  # the processes export every few seconds
        found = of_the_run(bodies).values()
        return (any(s.name == "POST /api/tenants" for s in found)
                and any(s.name == "run onboard" for s in found)
                and sum(s.name.startswith("step ") for s in found) >= len(run.steps))

    spans = of_the_run(collector.wait_for("/v1/traces", timeout=60, until=complete))
    [request] = [s for s in spans.values() if s.name == "POST /api/tenants"]
    [run_span] = [s for s in spans.values() if s.name == "run onboard"]
    assert run_span.parent_span_id == request.span_id
    steps = [s for s in spans.values() if s.name.startswith("step ")]
    assert {s.name.removeprefix("step ") for s in steps} == {s.name for s in run.steps}
    assert all(s.parent_span_id == run_span.span_id for s in steps)
    calls = [s for s in spans.values() if s.attributes.get("tenantops.provider.verb")]
    assert len(calls) >= len(run.steps)
    assert all(spans[c.parent_span_id].name.startswith("step ") for c in calls)
