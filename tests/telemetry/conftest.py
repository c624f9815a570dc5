"""In-memory exporters for tenantops' telemetry (`telemetry.using`: no global provider is
set, so tests do not leak spans into one another), and an OTLP/HTTP collector."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tenantops import telemetry
from tests.provisioning.conftest import make_engine

__all__ = ["Collector", "Traced", "collector", "make_engine", "traced"]


@dataclass
class Traced:
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.finished() if s.name == name]

    def points(self, metric: str) -> list[tuple[dict[str, Any], Any]]:
        """(attributes, data point) of every point of ``metric`` collected now."""
        data = self.metrics.get_metrics_data()
        found: list[tuple[dict[str, Any], Any]] = []
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for m in scope.metrics:
                    if m.name == metric:
                        found += [(dict(p.attributes or {}), p) for p in m.data.data_points]
        return found


@pytest.fixture
def traced() -> Iterator[Traced]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    with telemetry.using(tracer_provider, meter_provider):
        yield Traced(spans, reader)
    tracer_provider.shutdown()
    meter_provider.shutdown()


@dataclass
class Collector:
    """An OTLP/HTTP receiver: keeps every export request's path, headers and body."""

    url: str
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, path: str, timeout: float = 30.0,
                 until: Callable[[list[bytes]], bool] | None = None) -> list[bytes]:
        """The bodies of the export requests to ``path``, once one has arrived (or, with
        ``until``, once ``until(bodies)`` holds; exporters send in batches, every few
        seconds); what has arrived after ``timeout`` seconds otherwise."""

        def bodies() -> list[bytes]:
            return [body for p, _, body in self.requests if p == path]

        with self.arrived:
            self.arrived.wait_for(lambda: bool(bodies()) and (until is None or until(bodies())),
                                  timeout)
            return bodies()


@pytest.fixture
def collector() -> Iterator[Collector]:
    box: list[Collector] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()
            with box[0].arrived:
                box[0].requests.append((self.path, {k.lower(): v for k, v in self.headers.items()},
                                        body))
                box[0].arrived.notify_all()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    box.append(Collector(f"http://127.0.0.1:{server.server_address[1]}"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield box[0]
    server.shutdown()
    server.server_close()
    thread.join()
