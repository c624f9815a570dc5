"""The machinery every fake shares: an azure-core transport that routes requests to handlers.

A fake is an `azure.core.pipeline.transport.HttpTransport`, handed to the real SDK client
(``WebSiteManagementClient(..., transport=fake)``), so every request goes through the SDK's
own serialisation, policies (bearer token, retries, ARM resource-provider registration) and
deserialisation, and only the network is replaced. Nothing is patched.

What every fake checks or offers, whatever the resource type:

- ``Authorization: Bearer ...`` on every request, checked as ARM checks it: signature,
  audience, tenant and expiry (`tokens.check_arm_token`; Key Vault overrides with its own
  check). The token is never stored, only the caller's object ID taken from it.
- Each request is an operation of the table both the providers' preflight and the fake read
  (``tenantops.provisioning.providers.azure.permissions``): the caller must hold its RBAC
  action, else ARM's 403 ``AuthorizationFailed`` (`authorization.FakeAuthorization`).
- Each request is checked against its operation's contract from the specification
  (`contract`): api-version, query, required and read-only body fields. A violation answers
  400 and is kept in ``violations``; every answer is checked too (`contract.ContractError`).
- The ``api-version`` query parameter is the one the fake was written against (the SDK's
  default, shared reference provisioning-apis.md §2-§4); any other answers 400
  ``InvalidApiVersionParameter``, as ARM does, so an SDK upgrade that changes it is noticed.
- Faults (`Fault`): ``429`` with ``Retry-After`` (ARM throttling), 5xx, or any status with an
  ARM error body, injected for the next N matching requests.
- A virtual clock (`FakeClock`): ``transport.sleep`` (which azure-core's retry policy and
  pollers call instead of ``time.sleep``) advances it, so a test waits minutes in no time,
  and delays (certificate issuance, database creation) are measured on it.
- A log of the requests (`RecordedRequest`): method, path, query, the headers that carry
  meaning (If-Match, If-None-Match) and the JSON body exactly as the SDK sent it.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from azure.core.pipeline.transport import HttpTransport
from azure.core.rest import HttpRequest
from azure.core.rest._http_response_impl import HttpResponseImpl
from azure.core.utils import case_insensitive_dict

from tenantops.provisioning.providers.azure.permissions import AzureOperation, operation_for
from tests.azure_fake.contract import CONTRACTS
from tests.azure_fake.tokens import FakeEntra, TokenProblem, check_arm_token

__all__ = [
    "ArmError",
    "FakeClock",
    "FakeResponse",
    "FakeTransport",
    "Fault",
    "RecordedRequest",
    "arm_error",
    "build_response",
    "parse_request",
]

_REASONS = {
    200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 400: "Bad Request",
    401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 409: "Conflict",
    412: "Precondition Failed", 429: "Too Many Requests", 500: "Internal Server Error",
    503: "Service Unavailable",
}


class FakeClock:
    """Virtual seconds since the fake started; advanced by ``sleep`` and by tests.

    With ``speedup``, virtual time also runs on its own at that many times real time, for
    tests where something outside the fake sleeps in real time (the engine's durable sleeps).
    """

    def __init__(self, speedup: float | None = None) -> None:
        self._offset = 0.0
        self._speedup = speedup
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self.slept: list[float] = []

    def now(self) -> float:
        with self._lock:
            running = 0.0 if self._speedup is None else \
                (time.monotonic() - self._started) * self._speedup
            return self._offset + running

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += max(0.0, seconds)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: Any
    authenticated: bool

    @property
    def api_version(self) -> str | None:
        return self.query.get("api-version")


@dataclass
class FakeResponse:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class ArmError(Exception):
    """Raised by a handler to answer with an ARM error body ``{"error": {code, message}}``."""

    def __init__(self, status: int, code: str, message: str,
                 headers: Mapping[str, str] | None = None, body: Any = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.body = body

    def response(self) -> FakeResponse:
        if self.body is not None:
            return FakeResponse(self.status, self.body, dict(self.headers))
        return arm_error(self.status, self.code, self.message, self.headers)


def arm_error(status: int, code: str, message: str,
              headers: Mapping[str, str] | None = None) -> FakeResponse:
    """ARM's error envelope (Azure REST API guidelines, "Error response")."""
    return FakeResponse(status, {"error": {"code": code, "message": message}}, dict(headers or {}))


@dataclass
class Fault:
    """Answer the next ``count`` requests matching ``method`` and ``path_contains`` with
    ``status`` (and ``Retry-After`` when given) instead of handling them."""

    status: int
    count: int
    retry_after: float | None = None
    method: str | None = None
    path_contains: str = ""
    code: str = ""
    message: str = ""

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and \
            self.path_contains.lower() in path.lower()

    def response(self) -> FakeResponse:
        code = self.code or {429: "TooManyRequests", 500: "InternalServerError",
                             503: "ServiceUnavailable"}.get(self.status, "Fault")
        message = self.message or {
            429: "The request is being throttled.",
            503: "The service is temporarily unavailable.",
        }.get(self.status, "Injected fault.")
        headers = {} if self.retry_after is None else {"Retry-After": f"{self.retry_after:g}"}
        return arm_error(self.status, code, message, headers)


Handler = Callable[["Incoming", "re.Match[str]"], FakeResponse]
PermissionCheck = Callable[["FakeTransport", "Incoming", AzureOperation, Mapping[str, Any]],
                           "FakeResponse | None"]
"""(fake, request, operation, token claims) -> the 403 to answer, or None when allowed."""

_EPOCH = 1_796_515_200.0  # 2026-12-06T00:00:00Z: fake time 0


@dataclass(frozen=True)
class Incoming:
    """A request as handlers see it: path unquoted, query flattened, body parsed."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: Any
    url: str
    principal: str | None = None
    """The caller's object ID (``oid``) from a token that passed the check."""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class FakeTransport(HttpTransport):  # type: ignore[type-arg]
    """Base of the fakes: subclasses register routes with `route` in ``__init__``.

    ``api_version`` is the version every routed request must carry; ``None`` skips the check
    (a router of several fakes checks per fake instead).
    """

    host: str = "management.azure.com"

    def __init__(self, *, api_version: str | None, clock: FakeClock | None = None) -> None:
        self.api_version = api_version
        self.clock = clock or FakeClock()
        self.entra = FakeEntra(self.epoch_now)
        self.permissions: PermissionCheck | None = None
        self.violations: list[str] = []
        self.requests: list[RecordedRequest] = []
        self.faults: list[Fault] = []
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._lock = threading.RLock()

    # -- configuration --------------------------------------------------------------------

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        """``pattern`` is matched case-insensitively against the whole path (ARM paths are
        case-insensitive)."""
        self._routes.append((method, re.compile(pattern + r"\Z", re.IGNORECASE), handler))

    def inject(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def handles(self, method: str, path: str) -> bool:
        return any(m == method and p.match(path) for m, p, _ in self._routes)

    # -- HttpTransport ---------------------------------------------------------------------

    def open(self) -> None:
        return None

    def close(self) -> None:
        return None

    def __enter__(self) -> FakeTransport:
        return self

    def __exit__(self, *args: object) -> None:
        return None

    def sleep(self, duration: float) -> None:
        self.clock.sleep(duration)

    def send(self, request: Any, **kwargs: Any) -> HttpResponseImpl:
        incoming = parse_request(request)
        recorded = RecordedRequest(
            incoming.method, incoming.path, incoming.query,
            {k: v for k, v in incoming.headers.items() if k in ("if-match", "if-none-match")},
            incoming.body,
            authenticated=(incoming.header("authorization") or "").startswith("Bearer "),
        )
        with self._lock:
            self.requests.append(recorded)
            response = self._answer(incoming, recorded)
        return build_response(request, response)

    def _answer(self, incoming: Incoming, recorded: RecordedRequest) -> FakeResponse:
        for fault in self.faults:
            if fault.count > 0 and fault.matches(incoming.method, incoming.path):
                fault.count -= 1
                return fault.response()
        return self.dispatch(incoming, recorded)

    def epoch_now(self) -> float:
        """Seconds since 1970 on the fake clock (tokens' ``exp`` is checked against it)."""
        return _EPOCH + self.clock.now()

    def dispatch(self, incoming: Incoming, recorded: RecordedRequest) -> FakeResponse:
        """Check the token, the contract, api-version and the caller's permission, then call
        the route's handler and check its answer against the contract."""
        claims, problem = self.check_token(incoming.header("authorization"))
        if problem is not None:
            return self.token_refused(problem)
        incoming = dataclasses.replace(incoming, principal=str((claims or {}).get("oid") or ""))
        for method, pattern, handler in self._routes:
            match = pattern.match(incoming.path)
            if match is None or method != incoming.method:
                continue
            if self.api_version is not None and recorded.api_version != self.api_version:
                return arm_error(
                    400, "InvalidApiVersionParameter",
                    f"The api-version '{recorded.api_version}' is invalid. The supported "
                    f"versions (in this fake) are '{self.api_version}'.")
            operation = operation_for(incoming.method, incoming.path)
            contract = CONTRACTS.get(operation.name) if operation is not None else None
            if contract is not None:
                problems = contract.check_request(incoming.query, incoming.body)
                if problems:
                    said = f"{contract.operation}: {'; '.join(problems)}"
                    self.violations.append(said)
                    # ARM's code for a body its schema refuses; the fake's message.
                    return arm_error(400, "InvalidRequestContent",
                                     f"The request does not match the specification: {said}")
            if operation is not None and self.permissions is not None:
                denied = self.permissions(self, incoming, operation, claims or {})
                if denied is not None:
                    return denied
            try:
                answer = handler(incoming, match)
            except ArmError as exc:
                answer = exc.response()
            if contract is not None:
                contract.check_response(answer.status, answer.body)
            return answer
        return self.unrouted(incoming)

    def check_token(self, authorization: str | None
                    ) -> tuple[dict[str, Any] | None, TokenProblem | None]:
        return check_arm_token(self.entra, authorization)

    def token_refused(self, problem: TokenProblem) -> FakeResponse:
        return arm_error(problem.status, problem.code, problem.message, problem.headers)

    def resource_scope(self, path: str) -> str:
        """The ARM scope a request acts on (the path; Key Vault maps to its vault's ID)."""
        return path

    def unrouted(self, incoming: Incoming) -> FakeResponse:
        return arm_error(
            404, "NotRoutedInFake",
            f"the fake has no route for {incoming.method} {incoming.path}; a provider called an "
            "operation the fake does not model")

    # -- helpers for subclasses and tests --------------------------------------------------

    def calls(self, method: str | None = None, contains: str = "") -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests
                    if (method is None or r.method == method) and contains.lower()
                    in r.path.lower()]


def parse_request(request: Any) -> Incoming:
    parts = urlsplit(request.url)
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    raw = _body_bytes(request)
    body: Any = None
    if raw:
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
    headers = {k.lower(): v for k, v in request.headers.items()}
    return Incoming(request.method.upper(), unquote(parts.path), query, headers, body,
                    request.url)


def _body_bytes(request: Any) -> bytes:
    if isinstance(request, HttpRequest):
        content = request.content
    else:
        content = getattr(request, "data", None) or getattr(request, "body", None)
    if content is None:
        return b""
    if isinstance(content, str):
        return content.encode()
    if isinstance(content, (bytes, bytearray)):
        return bytes(content)
    if hasattr(content, "read"):
        data = content.read()
        return data.encode() if isinstance(data, str) else bytes(data)
    return json.dumps(content).encode()


class _Closed:
    def close(self) -> None:
        return None


def build_response(request: Any, answer: FakeResponse) -> HttpResponseImpl:
    content = b"" if answer.body is None else json.dumps(answer.body).encode()
    headers = case_insensitive_dict(answer.headers)
    if answer.body is not None:
        headers.setdefault("Content-Type", "application/json; charset=utf-8")
    headers.setdefault("x-ms-request-id", "00000000-0000-0000-0000-000000000000")

    def stream(**_kwargs: Any) -> Iterator[bytes]:
        yield content

    response = HttpResponseImpl(
        request=request, internal_response=_Closed(), status_code=answer.status,
        reason=_REASONS.get(answer.status, "Unknown"), content_type=headers.get("Content-Type"),
        headers=headers, stream_download_generator=stream,
    )
    response._content = content  # the whole body is in memory already
    return response
