"""OpenTelemetry for the API, the engine and the providers, configured in one place.

What is traced, and how one onboarding reads as one trace:

- **API request** (`request_span`, opened by `tenantops.api.middleware`): a server span per
  request, continuing the caller's W3C ``traceparent`` when it sends one.
- **Run** (`run_span`): the catalog stores the ``traceparent`` of the request that opened
  (or retried) a run (`traceparent`), and the worker continues that trace when the workflow
  executes, whichever process and however much later: HTTP request → queue → workflow.
- **Step** (`step_span`): one span per attempt of a step, inside its run's span.
- **Provider call** (`trace_provider_calls`, a provider `Middleware`): a client span per
  ``ensure``/``remove``, inside its step's span.

Metrics: ``tenantops.runs`` (runs finished, by kind and status), ``tenantops.step.duration``
(one attempt of a step, by provider, step and outcome), ``tenantops.queue.depth`` (runs
pending and running, from the catalog) and ``tenantops.auth.token_refusals`` (by reason: the
refusal's class). A provider call's duration is its span's: a step attempt makes one call.

Telemetry is off unless an exporter is configured (``[telemetry]`` in `tenantops.config`):
OTLP over HTTP, and Azure Monitor / Application Insights through ``azure-monitor-opentelemetry``
(the ``azure`` extra) when a connection string is set. `configure` installs the exporters
once per process; until then every helper here is a no-op costing a function call.

Correlation IDs (the request ID, the run ID, the trace and span IDs) are kept in context
variables; `CorrelationFilter` puts them on every log record, the audit trail stores the
request and trace IDs with each record. Nothing here ever records a token or a secret:
messages on spans pass through `tenantops.log.redact`.
"""

from __future__ import annotations

import contextvars
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.metrics import (
    CallbackOptions,
    MeterProvider,
    NoOpMeterProvider,
    Observation,
)
from opentelemetry.trace import NoOpTracerProvider, Span, SpanKind, StatusCode, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from tenantops import __version__
from tenantops.errors import ConfigError, TransientProviderError
from tenantops.log import redact

if TYPE_CHECKING:
    from tenantops.config import TelemetrySettings
    from tenantops.provisioning.providers.base import Outcome, ProviderCall

__all__ = [
    "CorrelationFilter",
    "RunSpan",
    "StepSpan",
    "Telemetry",
    "active",
    "bound_request",
    "build_providers",
    "configure",
    "context_from",
    "current_request_id",
    "current_run_id",
    "current_trace_id",
    "otlp_exporters",
    "request_span",
    "run_span",
    "shutdown",
    "step_span",
    "token_refused",
    "trace_provider_calls",
    "traceparent",
    "using",
    "watch_queue",
]

log = logging.getLogger("tenantops.telemetry")

_SCOPE = "tenantops"
_PROPAGATOR = TraceContextTextMapPropagator()
_MAX_MESSAGE = 500
_FINISHED = frozenset({"succeeded", "failed", "cancelled"})

QueueCounts = Callable[[], Mapping[str, int]]
"""Counts of runs by status (``pending``, ``running``), for the queue-depth gauge."""


class Telemetry:
    """tenantops' tracer and metric instruments over one tracer and one meter provider.

    ``recording`` is False for the no-op default: helpers then skip their work entirely.
    """

    def __init__(self, tracer_provider: TracerProvider, meter_provider: MeterProvider, *,
                 recording: bool = True) -> None:
        self.recording = recording
        self.tracer = tracer_provider.get_tracer(_SCOPE, __version__)
        meter = meter_provider.get_meter(_SCOPE, __version__)
        self.runs = meter.create_counter(
            "tenantops.runs", unit="{run}", description="runs that finished, by kind and status")
        self.step_duration = meter.create_histogram(
            "tenantops.step.duration", unit="s",
            description="one attempt of a step, by provider, step and outcome")
        self.token_refusals = meter.create_counter(
            "tenantops.auth.token_refusals", unit="{request}",
            description="requests refused by token validation or policy, by reason")
        self._queue_sources: list[QueueCounts] = []
        self._queue_lock = threading.Lock()
        meter.create_observable_gauge(
            "tenantops.queue.depth", callbacks=[self._observe_queue], unit="{run}",
            description="runs waiting for a worker (pending) and executing (running)")

    def watch_queue(self, counts: QueueCounts) -> Callable[[], None]:
        """Report ``counts()`` as the queue depth; returns a function that stops it."""
        with self._queue_lock:
            self._queue_sources.append(counts)

        def stop() -> None:
            with self._queue_lock:
                if counts in self._queue_sources:
                    self._queue_sources.remove(counts)

        return stop

    def _observe_queue(self, options: CallbackOptions) -> Iterator[Observation]:
        with self._queue_lock:
            sources = list(self._queue_sources)
        totals: dict[str, int] = {"pending": 0, "running": 0}
        for counts in sources[:1]:  # one catalog per process; several would count runs twice
            try:
                for status, count in counts().items():
                    totals[status] = totals.get(status, 0) + count
            except Exception as exc:  # the catalog down: no reading this time, no crash
                log.debug("queue depth not observed: %s: %s", type(exc).__name__, exc)
                return
        if sources:
            for status, count in totals.items():
                yield Observation(count, {"status": status})


_NOOP = Telemetry(NoOpTracerProvider(), NoOpMeterProvider(), recording=False)
_active: Telemetry = _NOOP
_installed: tuple[Any, ...] = ()
_configure_lock = threading.Lock()

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "tenantops_request_id", default=None)
_run_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "tenantops_run_id", default=None)


def active() -> Telemetry:
    """The telemetry in use in this process (a no-op one until `configure` or `using`)."""
    return _active


# -- configuration ----------------------------------------------------------------------------

def configure(settings: TelemetrySettings, *,
              environ: Mapping[str, str] = os.environ) -> Telemetry:
    """Install the exporters ``settings`` name, once per process, as OpenTelemetry's global
    providers too (so libraries that trace, like the Azure SDK, join the same traces).

    Does nothing when no exporter is configured, or when telemetry is already configured
    (the first configuration wins: OpenTelemetry's global providers can be set once).
    Raises `ConfigError` when a connection string is set but ``azure-monitor-opentelemetry``
    is not installed. Exporting happens on background threads; nothing here waits on the
    network."""
    global _active, _installed
    with _configure_lock:
        if _installed or not settings.enabled(environ):
            return _active
        tracer_provider, meter_provider = _build(settings, environ)
        _installed = (tracer_provider, meter_provider)
        _active = Telemetry(tracer_provider, meter_provider)
    destinations = [f"OTLP {settings.otlp_endpoint}"] if settings.otlp_endpoint else []
    if settings.app_insights_connection_string(environ):
        destinations.append("Azure Monitor")
    log.info("telemetry: traces and metrics of %s go to %s", settings.service_name,
             " and ".join(destinations))
    return _active


def shutdown() -> None:
    """Export what is buffered and stop the exporters `configure` started."""
    global _active, _installed
    with _configure_lock:
        providers, _installed = _installed, ()
        _active = _NOOP
    for provider in providers:
        try:
            provider.shutdown()
        except Exception as exc:  # an exporter that cannot flush must not stop the rest
            log.warning("telemetry: shutting down %s failed: %s", type(provider).__name__, exc)


@contextmanager
def using(tracer_provider: TracerProvider, meter_provider: MeterProvider | None = None
          ) -> Iterator[Telemetry]:
    """Use these providers for tenantops' telemetry inside the block, without touching
    OpenTelemetry's global providers (tests with in-memory exporters; the bench's A/B)."""
    global _active
    previous = _active
    _active = Telemetry(tracer_provider, meter_provider or NoOpMeterProvider())
    try:
        yield _active
    finally:
        _active = previous


def build_providers(settings: TelemetrySettings, *,
                    environ: Mapping[str, str] = os.environ) -> tuple[Any, Any]:
    """SDK tracer and meter providers exporting by OTLP as ``settings`` say (no exporter
    without ``otlp_endpoint``). Sets no global: `configure` does that."""
    from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    tracer_provider = SdkTracerProvider(
        resource=_resource(settings, environ),
        sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)))
    readers = []
    if settings.otlp_endpoint:
        span_exporter, metric_exporter = otlp_exporters(settings)
        tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
        readers.append(PeriodicExportingMetricReader(
            metric_exporter, export_interval_millis=settings.metric_interval_seconds * 1000))
    meter_provider = SdkMeterProvider(resource=_resource(settings, environ),
                                      metric_readers=readers)
    return tracer_provider, meter_provider


def _resource(settings: TelemetrySettings, environ: Mapping[str, str]) -> Any:
    from opentelemetry.sdk.resources import Resource

    return Resource.create({
        "service.name": settings.service_name, "service.version": __version__,
        "service.instance.id": environ.get("WEBSITE_INSTANCE_ID") or f"{os.getpid()}",
    })


def _build(settings: TelemetrySettings, environ: Mapping[str, str]) -> tuple[Any, Any]:
    from opentelemetry import metrics

    connection_string = settings.app_insights_connection_string(environ)
    if connection_string:
        processors: list[Any] = []
        readers: list[Any] = []
        if settings.otlp_endpoint:
            from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            span_exporter, metric_exporter = otlp_exporters(settings)
            processors.append(BatchSpanProcessor(span_exporter))
            readers.append(PeriodicExportingMetricReader(
                metric_exporter,
                export_interval_millis=settings.metric_interval_seconds * 1000))
        _configure_azure_monitor(connection_string, settings, _resource(settings, environ),
                                 processors, readers)
        return trace.get_tracer_provider(), metrics.get_meter_provider()
    tracer_provider, meter_provider = build_providers(settings, environ=environ)
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)
    return tracer_provider, meter_provider


def otlp_exporters(settings: TelemetrySettings) -> tuple[Any, Any]:
    """The OTLP/HTTP (protobuf) span and metric exporters for ``settings.otlp_endpoint``."""
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    base = (settings.otlp_endpoint or "").rstrip("/")
    headers = {k: v.get_secret_value() for k, v in settings.otlp_headers.items()}
    timeout = settings.otlp_timeout_seconds
    return (OTLPSpanExporter(endpoint=f"{base}/v1/traces", headers=headers, timeout=timeout),
            OTLPMetricExporter(endpoint=f"{base}/v1/metrics", headers=headers, timeout=timeout))


# Libraries the distro would instrument on its own. FastAPI is off: tenantops' middleware
# already opens the request span (both would be two server spans per request).
_AZURE_MONITOR_INSTRUMENTATIONS = {
    "fastapi": False, "django": False, "flask": False, "psycopg2": False,
    "azure_sdk": True, "requests": True, "urllib": True, "urllib3": True,
}


def _configure_azure_monitor(connection_string: str, settings: TelemetrySettings,
                             resource: Any, processors: list[Any], readers: list[Any]) -> None:
    try:
        from azure.monitor.opentelemetry import configure_azure_monitor
    except ImportError as missing:
        raise ConfigError(
            "telemetry: an Application Insights connection string is set (telemetry."
            "azure_monitor_connection_string or APPLICATIONINSIGHTS_CONNECTION_STRING) but "
            f"azure-monitor-opentelemetry cannot be imported ({missing.name or missing}); "
            "install it with pip install 'tenantops[azure]', or set telemetry."
            "use_app_insights_environment = false to export by OTLP only"
        ) from missing
    configure_azure_monitor(
        connection_string=connection_string, resource=resource, span_processors=processors,
        metric_readers=readers, logger_name="tenantops", sampling_ratio=settings.sample_ratio,
        instrumentation_options={name: {"enabled": on}
                                 for name, on in _AZURE_MONITOR_INSTRUMENTATIONS.items()},
    )
    # The distro exports the 'tenantops' logger's records: they pass the same redaction as
    # the records written to stderr.
    from tenantops.log import RedactingFilter

    for handler in logging.getLogger("tenantops").handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


# -- trace context ----------------------------------------------------------------------------

def traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span, to store with a run so the worker can
    continue its trace; None when no span is being recorded."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def context_from(carrier: Mapping[str, str] | str | None) -> otel_context.Context | None:
    """The OpenTelemetry context of a stored ``traceparent`` (or of request headers)."""
    if not carrier:
        return None
    headers = {"traceparent": carrier} if isinstance(carrier, str) else carrier
    return _PROPAGATOR.extract(headers)


def current_trace_id() -> str | None:
    """The trace ID of the current span (32 hex digits), or None when none is recorded."""
    context = trace.get_current_span().get_span_context()
    return f"{context.trace_id:032x}" if context.is_valid else None


def current_request_id() -> str | None:
    """The ID of the API or dashboard request being handled, for logs and audit records."""
    return _request_id.get()


def current_run_id() -> str | None:
    """The run the engine is executing on this thread, for logs."""
    return _run_id.get()


@contextmanager
def bound_request(request_id: str) -> Iterator[None]:
    """Mark the code inside as handling request ``request_id`` (logs carry it)."""
    token = _request_id.set(request_id)
    try:
        yield
    finally:
        _request_id.reset(token)


# -- spans ------------------------------------------------------------------------------------

@contextmanager
def request_span(method: str, path: str, headers: Mapping[str, str], *,
                 request_id: str, client: str | None) -> Iterator[Span]:
    """A server span for one HTTP request, continuing the caller's ``traceparent``, named
    by the method until the caller renames it by its route (``span.update_name``)."""
    telemetry = _active
    if not telemetry.recording:
        yield trace.INVALID_SPAN
        return
    attributes: dict[str, Any] = {"http.request.method": method, "url.path": redact(path),
                                  "tenantops.request.id": request_id}
    if client:
        attributes["client.address"] = client
    # Named by the method alone until a route matches: raw paths would make a name per URL.
    with telemetry.tracer.start_as_current_span(
            method, context=context_from(headers), kind=SpanKind.SERVER,
            attributes=attributes, record_exception=False, set_status_on_exception=False,
    ) as span:
        yield span


@dataclass
class RunSpan:
    """The span of one execution of a run; `finish` records how it ended."""

    span: Span
    kind: str
    status: str = "interrupted"

    def finish(self, status: str, error: str | None = None) -> None:
        self.status = status
        self.span.set_attribute("tenantops.run.status", status)
        if status == "failed":
            self.span.set_status(StatusCode.ERROR, redact(error or "")[:_MAX_MESSAGE])


@contextmanager
def run_span(run_id: str, *, tenant: str, kind: str, trace_context: str | None
             ) -> Iterator[RunSpan]:
    """The span of one execution of run ``run_id``, in the trace of the request that opened
    it (``trace_context``, as the catalog stored it). Counts the run in ``tenantops.runs``
    when `RunSpan.finish` says it finished (succeeded, failed, cancelled; an execution that
    ends waiting for a later one is not counted). Logs inside carry the run ID."""
    telemetry = _active
    token = _run_id.set(run_id)
    try:
        if not telemetry.recording:
            yield RunSpan(trace.INVALID_SPAN, kind)
            return
        with telemetry.tracer.start_as_current_span(
                f"run {kind}", context=context_from(trace_context), kind=SpanKind.CONSUMER,
                attributes={"tenantops.run.id": run_id, "tenantops.run.kind": kind,
                            "tenantops.tenant": tenant},
        ) as span:
            handle = RunSpan(span, kind)
            try:
                yield handle
            finally:
                if handle.status in _FINISHED:  # not a segment that waits or hands over
                    telemetry.runs.add(1, {"kind": kind, "status": handle.status})
    finally:
        _run_id.reset(token)


@dataclass
class StepSpan:
    """The span of one attempt of a step; `finish` records its outcome."""

    span: Span
    outcome: str = "interrupted"
    started: float = field(default_factory=time.perf_counter)

    def finish(self, outcome: str, error: str | None = None) -> None:
        """``outcome``: succeeded, pending, transient, failed or cancelled."""
        self.outcome = outcome
        self.span.set_attribute("tenantops.step.outcome", outcome)
        if outcome in ("transient", "failed"):
            self.span.set_status(StatusCode.ERROR, redact(error or "")[:_MAX_MESSAGE])


@contextmanager
def step_span(run_id: str, step: str, *, provider: str, attempt: int | None = None
              ) -> Iterator[StepSpan]:
    """The span of one attempt of ``step`` (provider ``kind:name``) of run ``run_id``, and
    its duration in ``tenantops.step.duration``."""
    telemetry = _active
    if not telemetry.recording:
        yield StepSpan(trace.INVALID_SPAN)
        return
    attributes: dict[str, Any] = {"tenantops.run.id": run_id, "tenantops.step.name": step,
                                  "tenantops.provider": provider}
    if attempt is not None:
        attributes["tenantops.step.attempt"] = attempt
    with telemetry.tracer.start_as_current_span(f"step {step}", attributes=attributes) as span:
        handle = StepSpan(span)
        try:
            yield handle
        finally:
            telemetry.step_duration.record(
                time.perf_counter() - handle.started,
                {"provider": provider, "step": step, "outcome": handle.outcome})


def trace_provider_calls(call: ProviderCall, proceed: Callable[[], Outcome]) -> Outcome:
    """Provider middleware: a client span per provider call. The span's error is the
    provider's (redacted) message; no stack trace, which could hold values the message
    leaves out."""
    telemetry = _active
    if not telemetry.recording:
        return proceed()
    provider = call.provider.label
    outcome_label = "error"
    with telemetry.tracer.start_as_current_span(
            f"{provider} {call.verb}", kind=SpanKind.CLIENT,
            attributes={"tenantops.provider": provider, "tenantops.provider.verb": call.verb,
                        "tenantops.resource": call.resource.key},
            record_exception=False, set_status_on_exception=False,
    ) as span:
        try:
            outcome = proceed()
        except Exception as exc:
            outcome_label = "transient" if isinstance(exc, TransientProviderError) else "failed"
            message = redact(str(exc))[:_MAX_MESSAGE]
            span.set_status(StatusCode.ERROR, message)
            span.add_event("exception", {"exception.type": type(exc).__name__,
                                         "exception.message": message})
            raise
        else:
            from tenantops.provisioning.providers.base import Pending

            outcome_label = "pending" if isinstance(outcome, Pending) else (
                "changed" if outcome.changed else "unchanged")
            return outcome
        finally:
            span.set_attribute("tenantops.provider.outcome", outcome_label)


# -- metrics recorded elsewhere -----------------------------------------------------------------

def token_refused(error: Exception, status: int) -> None:
    """Count a request refused by token validation or policy (reason: the error's class)."""
    telemetry = _active
    if telemetry.recording:
        telemetry.token_refusals.add(1, {"reason": type(error).__name__, "status": status})


def watch_queue(counts: QueueCounts) -> Callable[[], None]:
    """Report ``counts()`` (runs by status) as ``tenantops.queue.depth``; returns a function
    that stops it. A no-op while telemetry is off."""
    return _active.watch_queue(counts)


# -- logs -------------------------------------------------------------------------------------

class CorrelationFilter(logging.Filter):
    """Puts the request, run, trace and span IDs on every record (``%(correlation)s`` is
    `` [request=... run=... trace=... span=...]`` with the IDs that are known, else empty)."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = _request_id.get()
        run_id = _run_id.get()
        context = trace.get_current_span().get_span_context()
        trace_id = f"{context.trace_id:032x}" if context.is_valid else None
        span_id = f"{context.span_id:016x}" if context.is_valid else None
        record.request_id, record.run_id = request_id or "", run_id or ""
        record.trace_id, record.span_id = trace_id or "", span_id or ""
        parts = [f"{name}={value}" for name, value in (
            ("request", request_id), ("run", run_id), ("trace", trace_id), ("span", span_id))
            if value]
        record.correlation = f" [{' '.join(parts)}]" if parts else ""
        return True
