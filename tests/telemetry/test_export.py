"""Export: OTLP over HTTP to a collector in the test (export requests decoded with
opentelemetry-proto), `configure` in a process of its own, Azure Monitor's absence, and the
``[telemetry]`` settings."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tenantops import telemetry
from tenantops.config import Settings, TelemetrySettings, load_settings
from tenantops.errors import ConfigError

from .conftest import Collector

STORED = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def spans_of(bodies: list[bytes]) -> list[tuple[str, dict[str, str], dict[str, str]]]:
    """(name, attributes, resource attributes) of every span in the export requests."""
    found = []
    for body in bodies:
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    attributes = {a.key: a.value.string_value or str(a.value.int_value)
                                  for a in span.attributes}
                    found.append((span.name, attributes, resource))
    return found


def test_spans_and_metrics_reach_an_otlp_collector_over_http(collector: Collector) -> None:
    settings = TelemetrySettings(otlp_endpoint=collector.url, service_name="tenantops-test",
                                 otlp_headers={"x-api-key": "collector-key-123"})
    tracer_provider, meter_provider = telemetry.build_providers(settings)
    with telemetry.using(tracer_provider, meter_provider):
        with telemetry.run_span("r9", tenant="acme", kind="onboard",
                                trace_context=STORED) as run:
            with telemetry.step_span("r9", "database", provider="database:sqlite") as step:
                step.finish("succeeded")
            run.finish("succeeded")
        tracer_provider.force_flush()
        meter_provider.force_flush()
    tracer_provider.shutdown()
    meter_provider.shutdown()

    spans = spans_of(collector.wait_for("/v1/traces"))
    names = {name for name, _, _ in spans}
    assert {"run onboard", "step database"} <= names
    run_attributes = next(a for n, a, _ in spans if n == "run onboard")
    assert run_attributes["tenantops.run.id"] == "r9"
    assert all(r["service.name"] == "tenantops-test" for _, _, r in spans)
    metrics = set()
    for body in collector.wait_for("/v1/metrics"):
        for resource in ExportMetricsServiceRequest.FromString(body).resource_metrics:
            for scope in resource.scope_metrics:
                metrics |= {m.name for m in scope.metrics}
    assert {"tenantops.runs", "tenantops.step.duration"} <= metrics
    assert all(headers.get("x-api-key") == "collector-key-123"
               for _, headers, _ in collector.requests)
    assert all(headers.get("content-type") == "application/x-protobuf"
               for _, headers, _ in collector.requests)


@pytest.mark.integration  # a tenantops process of its own
def test_configure_installs_the_exporters_for_the_whole_process(collector: Collector) -> None:
    """In a process of its own: OpenTelemetry's global providers can be set only once."""
    script = textwrap.dedent(f"""
        from opentelemetry import trace
        from tenantops import telemetry
        from tenantops.config import load_settings

        settings = load_settings()
        first = telemetry.configure(settings.telemetry)
        assert first.recording
        assert telemetry.configure(settings.telemetry) is first  # once per process
        assert type(trace.get_tracer_provider()).__module__.startswith("opentelemetry.sdk")
        with telemetry.run_span("r1", tenant="acme", kind="onboard",
                                trace_context="{STORED}"):
            pass
        telemetry.shutdown()
        assert not telemetry.active().recording
    """)
    environ = {**os.environ, "TENANTOPS_TELEMETRY__OTLP_ENDPOINT": collector.url,
               "TENANTOPS_TELEMETRY__SERVICE_NAME": "tenantops-process"}
    environ.pop("APPLICATIONINSIGHTS_CONNECTION_STRING", None)
    done = subprocess.run([sys.executable, "-c", script], env=environ, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    [(name, _, resource)] = spans_of(collector.wait_for("/v1/traces"))
    assert name == "run onboard"
    assert resource["service.name"] == "tenantops-process"


def test_a_connection_string_without_the_azure_monitor_package_says_how_to_install_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "azure.monitor.opentelemetry", None)
    settings = TelemetrySettings()
    environ = {"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=00000000-0000-0000"
               "-0000-000000000000;IngestionEndpoint=http://127.0.0.1:9/"}
    with pytest.raises(ConfigError) as refused:
        telemetry.configure(settings, environ=environ)
    message = str(refused.value)
    assert "APPLICATIONINSIGHTS_CONNECTION_STRING" in message
    assert "pip install 'tenantops[azure]'" in message
    assert "InstrumentationKey" not in message
    assert telemetry.active().recording is False


def test_telemetry_is_off_unless_an_exporter_is_configured() -> None:
    assert not TelemetrySettings().enabled({})
    assert TelemetrySettings(otlp_endpoint="http://collector:4318").enabled({})
    environ = {"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=x"}
    assert TelemetrySettings().enabled(environ)
    assert not TelemetrySettings(use_app_insights_environment=False).enabled(environ)
    assert TelemetrySettings(azure_monitor_connection_string="InstrumentationKey=y"
                             ).app_insights_connection_string(environ) == "InstrumentationKey=y"


@pytest.mark.parametrize(("key", "value", "rule"), [
    ("otlp_endpoint", "collector:4318", "should match pattern"),
    ("sample_ratio", "1.5", "less than or equal to 1"),
    ("exporter", "zipkin", "Extra inputs are not permitted"),
])
def test_bad_telemetry_settings_name_the_setting_and_the_rule(
        monkeypatch: pytest.MonkeyPatch, key: str, value: str, rule: str) -> None:
    monkeypatch.setenv(f"TENANTOPS_TELEMETRY__{key.upper()}", value)
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert f"telemetry.{key}" in str(refused.value)
    assert rule in str(refused.value)


def test_otlp_headers_are_secrets_and_never_printed() -> None:
    settings = Settings(telemetry={"otlp_endpoint": "http://c:4318",
                                   "otlp_headers": {"authorization": "Bearer abc.def"}})
    assert "abc.def" not in repr(settings)
    assert "abc.def" not in str(settings.model_dump())
