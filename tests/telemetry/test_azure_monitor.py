"""Export to Application Insights through azure-monitor-opentelemetry when
APPLICATIONINSIGHTS_CONNECTION_STRING is set, against a local stand-in for its ingestion
endpoint, in a process of its own (the distro sets OpenTelemetry's global providers).

The stand-in keeps the track API's contract as the exporter's generated client states it
(azure/monitor/opentelemetry/exporter/_generated/exporter/_operations/_operations.py: POST
``{IngestionEndpoint}/v2.1/track``, a JSON array of envelopes, optionally gzip-encoded;
answer ``TrackResponse`` = ``itemsReceived``, ``itemsAccepted``, ``errors``). Statsbeat, SDK
stats and the OneSettings control plane are switched off with their documented variables so
nothing leaves the machine; live metrics go to the stand-in too (``LiveEndpoint``)."""

from __future__ import annotations

import gzip
import http.server
import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from typing import Any

import pytest

pytestmark = pytest.mark.integration  # a tenantops process of its own

INSTRUMENTATION_KEY = "5f9d1b7c-2a4e-4c1d-9b3a-7e6f0a1c2d3e"


@pytest.fixture
def ingestion() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    envelopes: list[dict[str, Any]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            answer = b"{}"
            if self.path.rstrip("/").endswith("/v2.1/track"):
                if self.headers.get("Content-Encoding") == "gzip" or body[:2] == b"\x1f\x8b":
                    body = gzip.decompress(body)
                received = json.loads(body)
                envelopes.extend(received)
                answer = json.dumps({"itemsReceived": len(received),
                                     "itemsAccepted": len(received), "errors": []}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", envelopes
    server.shutdown()
    server.server_close()
    thread.join()


def test_spans_and_logs_reach_application_insights_when_its_connection_string_is_set(
        ingestion: tuple[str, list[dict[str, Any]]], tmp_path: Any) -> None:
    url, envelopes = ingestion
    script = textwrap.dedent("""
        import logging
        from tenantops import telemetry
        from tenantops.config import load_settings
        from tenantops.log import configure_logging

        configure_logging("INFO")
        settings = load_settings()
        assert telemetry.configure(settings.telemetry).recording
        with telemetry.run_span("r7", tenant="acme", kind="onboard", trace_context=None) as run:
            logging.getLogger("tenantops.tests").warning("step failed: password=hunter2")
            run.finish("succeeded")
        telemetry.shutdown()
    """)
    environ = {**os.environ,
               "APPLICATIONINSIGHTS_CONNECTION_STRING":
                   f"InstrumentationKey={INSTRUMENTATION_KEY};IngestionEndpoint={url};"
                   f"LiveEndpoint={url}",
               "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
               "APPLICATIONINSIGHTS_SDKSTATS_DISABLED": "true",
               "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
               "TMPDIR": str(tmp_path)}  # the exporter's retry files stay in the test's folder
    environ = {k: v for k, v in environ.items() if not k.startswith("TENANTOPS_")}
    done = subprocess.run([sys.executable, "-c", script], env=environ, capture_output=True,
                          text=True, timeout=180, check=False, cwd=tmp_path)
    assert done.returncode == 0, done.stderr

    by_type: dict[str, list[dict[str, Any]]] = {}
    for envelope in envelopes:
        by_type.setdefault(envelope["data"]["baseType"], []).append(envelope)
    assert all(e["iKey"] == INSTRUMENTATION_KEY for e in envelopes)
    runs = [e for e in by_type.get("RequestData", []) + by_type.get("RemoteDependencyData", [])
            if e["data"]["baseData"]["name"] == "run onboard"]
    assert len(runs) == 1, by_type.keys()
    assert runs[0]["data"]["baseData"]["properties"]["tenantops.run.id"] == "r7"
    [message] = [e for e in by_type.get("MessageData", [])
                 if "step failed" in e["data"]["baseData"]["message"]]
    assert "hunter2" not in json.dumps(message)
    assert message["tags"]["ai.operation.id"] == runs[0]["tags"]["ai.operation.id"]
