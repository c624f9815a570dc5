"""`RequestObserver`: the one ASGI middleware that observes every request to the app, API and
dashboard alike.

For each request it

- gives it an ID (``X-Request-ID`` on the response; logs carry it),
- opens its server span (`tenantops.telemetry.request_span`), continuing the caller's
  ``traceparent``, named after the route once routing has found one,
- and, for a state-changing request (``POST``, ``PUT``, ``PATCH``, ``DELETE``, and the
  dashboard's sign-in callback), appends one record to the audit trail before the last part
  of the response leaves, refusals (401, 403, 409, 422, ...) and failures included. So a
  caller who has seen the response can read its record.

Routes do nothing for the audit trail. What a record holds comes from the route that matched
(its template, never the raw path), its path parameters (a slug, a run ID, each checked
against its pattern), the ``slug`` field of an onboarding body, the run named by a
``Location`` header, the principal the request edge checked (`tenantops.api.edge`) or the
dashboard signed in (``request.state.principal``),
the peer address and ``X-Forwarded-For``, and the ``error`` code of a refusal. Nothing else of
the request is kept: no body, no query string, no header value, no token, no secret.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import uuid
from collections.abc import MutableMapping
from contextlib import suppress
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs

import anyio.to_thread
from opentelemetry.trace import StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tenantops import telemetry
from tenantops.api.edge import PRINCIPAL_STATE_KEY
from tenantops.auth import Principal
from tenantops.catalog import AuditEntry, AuditOutcome, Catalog
from tenantops.errors import RunNotFoundError, TenantOpsError

__all__ = ["ACTIONS", "REQUEST_ID_HEADER", "RequestObserver", "route_template"]

log = logging.getLogger("tenantops.audit")

REQUEST_ID_HEADER = "X-Request-ID"

ACTIONS: dict[tuple[str, str], str] = {
    ("POST", "/api/tenants"): "tenant.onboard",
    ("DELETE", "/api/tenants/{slug}"): "tenant.offboard",
    ("POST", "/api/tenants/{slug}/reconcile"): "tenant.reconcile",
    ("POST", "/api/drift/check"): "drift.check",
    ("POST", "/api/tenants/import"): "tenant.import",
    ("POST", "/api/runs/{run_id}/retry"): "run.retry",
    ("POST", "/api/runs/{run_id}/cancel"): "run.cancel",
    ("POST", "/onboard"): "tenant.onboard",
    ("POST", "/tenants/{slug}/offboard"): "tenant.offboard",
    ("POST", "/runs/{run_id}/retry"): "run.retry",
    ("POST", "/runs/{run_id}/cancel"): "run.cancel",
    ("GET", "/auth/callback"): "session.sign_in",
    ("POST", "/auth/sign-out"): "session.sign_out",
}
"""Audit action names of the known routes; any other state-changing route is recorded as
``<METHOD> <route template>``."""

_KNOWN = {key: re.compile(re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(key[1])))
          for key in ACTIONS}

_STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_AUDITED_READS = frozenset({"/auth/callback"})  # a GET that signs someone in
_SLUG = re.compile(r"[a-z0-9-]{1,32}")
_RUN_ID = re.compile(r"[0-9a-f]{32}")
_RUN_LOCATION = re.compile(r"/(?:api/)?runs/([0-9a-f]{32})")
_ERROR_CODE = re.compile(r"[a-z_]{1,64}")
_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")
_BODY_KEPT = 64 * 1024  # enough for any onboarding request; only its slug is read
_ERROR_BODY_KEPT = 16 * 1024
_FORWARDED_KEPT = 5


class RequestObserver:
    """Request ID, server span and audit record of every request (module docstring).

    ``catalog`` receives the audit records; ``None`` leaves the audit trail out (an app
    without a catalog)."""

    def __init__(self, app: ASGIApp, *, catalog: Catalog | None) -> None:
        self.app = app
        self.catalog = catalog

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})
        request_id = uuid.uuid4().hex
        method: str = scope["method"]
        path: str = scope["path"]
        audited = self.catalog is not None and (
            method in _STATE_CHANGING or (method == "GET" and path in _AUDITED_READS))
        exchange = _Exchange(request_id, keep_body=audited and method != "GET")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        client = scope.get("client")
        peer = str(client[0]) if client else None

        async def tee_receive() -> Message:
            message = await receive()
            exchange.saw_request(message)
            return message

        async def observed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                exchange.saw_response_start(message)
                message["headers"] = [*message.get("headers", []),
                                      (REQUEST_ID_HEADER.lower().encode(), request_id.encode())]
            elif message["type"] == "http.response.body":
                exchange.saw_response_body(message)
                if audited and not message.get("more_body", False) and not exchange.recorded:
                    await self._record(scope, exchange, headers, peer)
            await send(message)

        with telemetry.bound_request(request_id), telemetry.request_span(
                method, path, headers, request_id=request_id, client=peer) as span:
            try:
                await self.app(scope, tee_receive if exchange.keep_body else receive,
                               observed_send)
            except Exception:
                exchange.status = exchange.status or 500
                if audited and not exchange.recorded:
                    await self._record(scope, exchange, headers, peer)
                raise
            finally:
                template = route_template(scope)
                if template:
                    span.update_name(f"{method} {template}")
                    span.set_attribute("http.route", template)
                if exchange.status:
                    span.set_attribute("http.response.status_code", exchange.status)
                    if exchange.status >= 500:
                        span.set_status(StatusCode.ERROR)

    async def _record(self, scope: Scope, exchange: _Exchange, headers: dict[str, str],
                      peer: str | None) -> None:
        exchange.recorded = True
        route = route_template(scope)
        if route is None or self.catalog is None:
            return  # no route matched: nothing was done, only a 404
        entry = _entry(scope, route, exchange, headers, peer)
        catalog = self.catalog
        await anyio.to_thread.run_sync(_append, catalog, entry)


class _Exchange:
    """What the middleware keeps of one request and its response, while they pass."""

    def __init__(self, request_id: str, *, keep_body: bool) -> None:
        self.request_id = request_id
        self.keep_body = keep_body
        self.body = bytearray()
        self.status = 0
        self.location = ""
        self.content_type = ""
        self.error_body = bytearray()
        self.recorded = False

    def saw_request(self, message: Message) -> None:
        if message["type"] == "http.request" and len(self.body) < _BODY_KEPT:
            self.body += message.get("body", b"")[: _BODY_KEPT - len(self.body)]

    def saw_response_start(self, message: Message) -> None:
        self.status = int(message["status"])
        for key, value in message.get("headers", []):
            name = key.decode("latin-1").lower()
            if name == "location":
                self.location = value.decode("latin-1")
            elif name == "content-type":
                self.content_type = value.decode("latin-1")

    def saw_response_body(self, message: Message) -> None:
        if self.status >= 400 and len(self.error_body) < _ERROR_BODY_KEPT:
            self.error_body += message.get("body", b"")[: _ERROR_BODY_KEPT - len(self.error_body)]

    def body_slug(self, content_type: str) -> str | None:
        """The ``slug`` field of a JSON or form body, if it is one."""
        if not self.body:
            return None
        value: object = None
        try:
            if content_type.startswith("application/json"):
                parsed = json.loads(bytes(self.body))
                value = parsed.get("slug") if isinstance(parsed, dict) else None
            elif content_type.startswith("application/x-www-form-urlencoded"):
                value = next(iter(parse_qs(self.body.decode("utf-8", "replace")).get("slug", [])),
                             None)
        except ValueError:
            return None
        return _checked(value, _SLUG)

    def error_code(self) -> str | None:
        """The ``error`` code of a JSON refusal (``missing_token``, ``tenant_conflict``)."""
        if self.status < 400 or not self.content_type.startswith("application/json"):
            return None
        try:
            parsed = json.loads(bytes(self.error_body))
        except ValueError:
            return None
        return _checked(parsed.get("error") if isinstance(parsed, dict) else None, _ERROR_CODE)


def route_template(scope: Scope) -> str | None:
    """The template of the route that matched (``/api/tenants/{slug}``), or None. FastAPI
    may hand over the route as its router declared it, without the prefix it was included
    under (``/tenants/{slug}``); the prefix is then what the request's path has before the
    route's own part. A request the edge refused before routing (401, 413) is matched
    against the templates of `ACTIONS`, and its path parameters are filled in."""
    route = scope.get("route")
    own = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not isinstance(own, str):
        return _known_template(scope)
    params: dict[str, Any] = scope.get("path_params") or {}
    rendered = _PARAM.sub(lambda m: str(params.get(m.group(1), m.group(0))), own)
    path: str = scope.get("path", "")
    if rendered and path.endswith(rendered) and path != rendered:
        return path[: -len(rendered)] + own
    return own


def _known_template(scope: Scope) -> str | None:
    for (method, template), pattern in _KNOWN.items():
        match = pattern.fullmatch(scope.get("path", ""))
        if method == scope.get("method") and match:
            scope.setdefault("path_params", match.groupdict())
            return template
    return None


def _checked(value: object, pattern: re.Pattern[str]) -> str | None:
    if isinstance(value, str):
        value = value.strip()
        if pattern.fullmatch(value):
            return value
    return None


def _outcome(status: int) -> AuditOutcome:
    return "succeeded" if status < 400 else "refused" if status < 500 else "failed"


def _forwarded_for(value: str | None) -> str | None:
    """The addresses of ``X-Forwarded-For`` that are addresses (ports dropped), at most
    five; anything else a client put there is left out."""
    if not value:
        return None
    found: list[str] = []
    for part in value.split(","):
        candidate = part.strip()
        if candidate.startswith("[") and "]" in candidate:  # [v6]:port
            candidate = candidate[1:candidate.index("]")]
        elif candidate.count(":") == 1:  # v4:port
            candidate = candidate.split(":", 1)[0]
        try:
            found.append(str(ipaddress.ip_address(candidate)))
        except ValueError:
            continue
        if len(found) == _FORWARDED_KEPT:
            break
    return ", ".join(found) or None


def _entry(scope: Scope, route: str, exchange: _Exchange, headers: dict[str, str],
           peer: str | None) -> AuditEntry:
    method: str = scope["method"]
    params: dict[str, Any] = scope.get("path_params") or {}
    state: MutableMapping[str, Any] = scope.get("state") or {}
    principal = next((p for p in (state.get(PRINCIPAL_STATE_KEY), state.get("principal"))
                      if isinstance(p, Principal)), None)
    tenant = _checked(params.get("slug"), _SLUG) or exchange.body_slug(
        headers.get("content-type", ""))
    run_id = _checked(params.get("run_id"), _RUN_ID)
    if run_id is None:
        match = _RUN_LOCATION.fullmatch(exchange.location.split("?", 1)[0])
        run_id = match.group(1) if match else None
    status = exchange.status or 500
    trace_id = telemetry.current_trace_id()
    return AuditEntry(
        request_id=exchange.request_id, trace_id=trace_id,
        channel="api" if route.startswith("/api/") or route == "/api" else "dashboard",
        action=ACTIONS.get((method, route), f"{method} {route}"), method=method, route=route,
        outcome=_outcome(status), status_code=status, tenant=tenant, run_id=run_id,
        principal_name=(principal.upn or principal.name) if principal else None,
        principal_oid=principal.oid if principal else None,
        principal_appid=principal.appid if principal else None,
        client_ip=peer, forwarded_for=_forwarded_for(headers.get("x-forwarded-for")),
        reason=exchange.error_code())


def _append(catalog: Catalog, entry: AuditEntry) -> None:
    """Append ``entry``, naming the run's tenant when only the run is known. A catalog that
    cannot take it loses the record, not the response (the action already happened): the
    record goes to the log instead, at ERROR."""
    try:
        if entry.tenant is None and entry.run_id is not None:
            with suppress(RunNotFoundError):
                entry = replace(entry, tenant=catalog.runs.get(entry.run_id).tenant_slug)
        catalog.audit.append(entry)
    except TenantOpsError as exc:
        log.error("audit record not stored (%s): %s", exc, entry)
    except Exception as exc:  # a database error the catalog did not translate
        log.error("audit record not stored (%s: %s): %s", type(exc).__name__, exc, entry)
