"""Run, step and provider-call spans: one trace from the stored traceparent down to each
provider call; their metrics; redacted errors; logs that carry the correlation IDs."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
from opentelemetry.trace import StatusCode

from tenantops import telemetry
from tenantops.catalog import Catalog
from tenantops.log import RedactingFilter
from tenantops.provisioning import Engine
from tests.provisioning.conftest import EngineFactory, spec_for
from tests.provisioning.middleware import Outage

from .conftest import Traced

pytestmark = pytest.mark.integration  # the engine tests run DBOS and embedded servers

STORED = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_a_run_continues_the_trace_stored_with_it_down_to_its_steps(traced: Traced) -> None:
    with telemetry.run_span("r1", tenant="acme", kind="onboard", trace_context=STORED) as run:
        with telemetry.step_span("r1", "dns_cname", provider="dns:zone-file", attempt=1) as step:
            step.finish("succeeded")
        run.finish("succeeded")

    [run_span] = traced.named("run onboard")
    [step_span] = traced.named("step dns_cname")
    assert f"{run_span.context.trace_id:032x}" == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert run_span.parent is not None
    assert f"{run_span.parent.span_id:016x}" == "00f067aa0ba902b7"
    assert step_span.parent is not None
    assert step_span.parent.span_id == run_span.context.span_id
    assert run_span.attributes is not None
    assert step_span.attributes is not None
    assert run_span.attributes["tenantops.run.id"] == "r1"
    assert run_span.attributes["tenantops.run.status"] == "succeeded"
    assert step_span.attributes["tenantops.provider"] == "dns:zone-file"
    [(attributes, point)] = traced.points("tenantops.runs")
    assert attributes == {"kind": "onboard", "status": "succeeded"}
    assert point.value == 1
    [(attributes, point)] = traced.points("tenantops.step.duration")
    assert attributes == {"provider": "dns:zone-file", "step": "dns_cname",
                          "outcome": "succeeded"}
    assert point.count == 1


def test_a_run_without_stored_context_starts_its_own_trace(traced: Traced) -> None:
    with telemetry.run_span("r2", tenant="acme", kind="offboard", trace_context=None) as run:
        run.finish("failed", "dns:zone-file: refused password=hunter2")
    [span] = traced.named("run offboard")
    assert span.parent is None
    assert span.status.status_code is StatusCode.ERROR
    assert "hunter2" not in (span.status.description or "")
    assert "[redacted]" in (span.status.description or "")


def test_one_onboarding_is_one_trace_from_the_request_down_to_each_provider_call(
        traced: Traced, make_engine: EngineFactory) -> None:
    engine: Engine = make_engine()  # the engine traces provider calls itself
    with telemetry.request_span("POST", "/api/tenants", {}, request_id="t" * 32,
                                client=None) as request:
        run_id = engine.onboard(spec_for("traced"), requested_by="tests").id
    run = engine.wait(run_id, timeout=120)
    assert run.status == "succeeded"

    calls = [s for s in traced.finished()
             if s.attributes and "tenantops.provider.verb" in s.attributes]
    providers = {s.attributes["tenantops.provider"] for s in calls if s.attributes}
    assert {"dns:zone-file", "database:sqlite", "webhost:local-edge",
            "organization:local"} <= providers
    assert all(s.name == f"{s.attributes['tenantops.provider']!s} ensure"
               for s in calls if s.attributes)
    assert {s.attributes["tenantops.provider.outcome"] for s in calls if s.attributes} <= {
        "changed", "unchanged", "pending"}
    by_id = {s.context.span_id: s for s in traced.finished()}
    assert all(c.parent is not None and by_id[c.parent.span_id].name.startswith("step ")
               for c in calls)
    [run_span] = traced.named("run onboard")
    assert run_span.parent is not None
    assert run_span.parent.span_id == request.get_span_context().span_id
    steps = [s for s in traced.finished() if s.name.startswith("step ")]
    assert {s.name.removeprefix("step ") for s in steps} == {s.name for s in run.steps}
    assert all(s.parent is not None and s.parent.span_id == run_span.context.span_id
               for s in steps)
    assert len({s.context.trace_id for s in (*calls, *steps, run_span)}) == 1
    [(attributes, point)] = traced.points("tenantops.runs")
    assert attributes == {"kind": "onboard", "status": "succeeded"}
    assert point.value == 1
    durations = traced.points("tenantops.step.duration")
    assert {a["step"] for a, _ in durations} == {s.name for s in run.steps}


def test_a_failing_provider_call_carries_its_redacted_message_and_no_stack(
        traced: Traced, make_engine: EngineFactory) -> None:
    outage = Outage("dns", "the DNS server refused the update (tsig secret=s3cr3t-key)")
    engine = make_engine(outage)
    run = engine.wait(engine.onboard(spec_for("broken"), requested_by="tests").id, timeout=120)
    assert run.status == "failed"

    [failed] = [s for s in traced.finished() if s.attributes
                and s.attributes.get("tenantops.provider.outcome") == "failed"]
    assert failed.status.status_code is StatusCode.ERROR
    assert "refused the update" in (failed.status.description or "")
    exposed = str(failed.status.description) + str([dict(e.attributes or {})
                                                    for e in failed.events])
    assert "s3cr3t-key" not in exposed
    assert all("exception.stacktrace" not in (e.attributes or {}) for e in failed.events)


def test_no_spans_and_no_cost_while_telemetry_is_off() -> None:
    assert telemetry.active().recording is False
    with telemetry.run_span("r3", tenant="acme", kind="onboard", trace_context=STORED) as run:
        assert telemetry.traceparent() is None
        assert telemetry.current_run_id() == "r3"
        run.finish("succeeded")
    assert telemetry.current_run_id() is None


def test_log_lines_carry_the_request_run_trace_and_span_ids(traced: Traced) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s%(correlation)s"))
    handler.addFilter(RedactingFilter())
    handler.addFilter(telemetry.CorrelationFilter())
    logger = logging.getLogger("tenantops.tests.correlation")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info("outside")
        with telemetry.bound_request("req123"), telemetry.run_span(
                "run456", tenant="acme", kind="onboard", trace_context=STORED):
            logger.info("inside")
    finally:
        logger.removeHandler(handler)
    outside, inside = stream.getvalue().splitlines()
    assert outside == "outside"
    [span] = traced.named("run onboard")
    assert inside == (f"inside [request=req123 run=run456 trace={span.context.trace_id:032x} "
                      f"span={span.context.span_id:016x}]")


def test_an_execution_that_ends_waiting_is_not_counted_as_a_finished_run(
        traced: Traced) -> None:
    with telemetry.run_span("r4", tenant="acme", kind="onboard", trace_context=STORED) as run:
        run.finish("waiting")
    with telemetry.run_span("r4", tenant="acme", kind="onboard", trace_context=STORED) as run:
        run.finish("cancelled")
    assert len(traced.named("run onboard")) == 2
    assert [(a, p.value) for a, p in traced.points("tenantops.runs")] == [
        ({"kind": "onboard", "status": "cancelled"}, 1)]


def test_a_run_keeps_the_trace_of_the_request_that_opened_it_then_of_its_retry(
        traced: Traced, tmp_path: Path) -> None:
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    catalog.migrate()
    try:
        with telemetry.request_span("POST", "/api/tenants", {}, request_id="r" * 32,
                                    client=None) as opening:
            run = catalog.open_onboarding(spec_for("retraced"), requested_by="tests",
                                          steps=[]).run
        context = opening.get_span_context()
        assert run.trace_context == (f"00-{context.trace_id:032x}-{context.span_id:016x}-"
                                     f"{int(context.trace_flags):02x}")
        catalog.finish_run(run.id, "failed", error="boom", failed_step="x")
        with telemetry.request_span("POST", "/api/runs/{run_id}/retry", {},
                                    request_id="s" * 32, client=None) as retrying:
            reopened = catalog.reopen_run(run.id)
        assert reopened.trace_context is not None
        assert reopened.trace_context.split("-")[1] == (
            f"{retrying.get_span_context().trace_id:032x}")
    finally:
        catalog.close()


def test_a_run_opened_outside_any_trace_keeps_none(tmp_path: Path) -> None:
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    catalog.migrate()
    try:
        run = catalog.open_onboarding(spec_for("untraced"), requested_by="tests", steps=[]).run
        assert run.trace_context is None
    finally:
        catalog.close()
