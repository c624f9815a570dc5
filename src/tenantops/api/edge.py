"""`RequestEdge`: what happens to a request before any route reads it.

In this order, for every HTTP request the app receives:

1. under ``/api/`` (except the public routes, `PUBLIC_PATHS`): the credentials are checked
   (`Authenticator.authenticate`, in a worker thread as it may fetch signing keys; a token
   the validator remembers is answered on the event loop, `Authenticator.remembered`). A refusal
   is answered here, before a byte of the body is read: a request without a valid token never
   gets a 422 for its body, and a 100 MB body without a token costs nothing. The principal is
   passed to the route in ``scope["state"]`` so it is not checked twice. Unknown paths under
   ``/api/`` get the 401 too (no route enumeration without a token). The route's app role is
   checked by its dependency (`tenantops.api.deps.require_role`), after FastAPI has read the
   body, which step 2 bounds: a valid token without the role costs at most one small parse.
2. the body is limited to ``api.max_body_bytes`` (API JSON and dashboard forms alike): a
   ``Content-Length`` above it is answered 413 at once; a body without one (chunked) is counted
   as it streams and answered 413 as soon as it passes the limit. Nothing over the limit is
   buffered.

FastAPI reads and parses a route's body before it runs the route's dependencies, so neither
check could live in a dependency.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tenantops.auth import CLIENT_PRINCIPAL_HEADER, Authenticator, Principal
from tenantops.errors import AuthError

__all__ = ["PRINCIPAL_STATE_KEY", "PUBLIC_PATHS", "RequestEdge"]

PRINCIPAL_STATE_KEY = "tenantops.principal"
PUBLIC_PATHS = frozenset({"/api/health", "/api/health/ready", "/api/meta"})
"""The only routes under ``/api`` served without a token."""
_API_PREFIX = "/api/"


class RequestEdge:
    """The ASGI middleware described in the module docstring."""

    def __init__(self, app: ASGIApp, *, authenticator: Authenticator, max_body_bytes: int,
                 refusal: Callable[[AuthError], Response],
                 public_paths: Iterable[str] = PUBLIC_PATHS) -> None:
        self.app = app
        self.authenticator = authenticator
        self.max_body_bytes = max_body_bytes
        self.refusal = refusal
        self.public_paths = frozenset(public_paths)

    def _protected(self, path: str) -> bool:
        return (path == "/api" or path.startswith(_API_PREFIX)) and path not in self.public_paths

    async def _check(self, scope: Scope) -> Principal | Response:
        headers = Headers(scope=scope)
        authorization = headers.getlist("authorization")
        # A token verified before needs no I/O: answered here, without a thread hop.
        remembered = self.authenticator.remembered(authorization)
        if remembered is not None:
            return remembered
        try:
            principal = await run_in_threadpool(
                self.authenticator.authenticate, authorization,
                headers.getlist(CLIENT_PRINCIPAL_HEADER))
        except AuthError as exc:
            return self.refusal(exc)
        return principal

    def _too_large(self, scope: Scope, size: int, *, declared: bool) -> Response:
        limit = self.max_body_bytes
        what = (f"declared as {size} bytes (Content-Length)" if declared
                else f"longer than {limit} bytes ({size} had arrived when reading stopped)")
        description = (f"the request body is {what}; this app reads at most {limit} bytes "
                       "(api.max_body_bytes, TENANTOPS_API__MAX_BODY_BYTES). Send a smaller "
                       "body: a tenant spec is well under 1 KiB")
        headers = {"Connection": "close"}
        if scope["path"].startswith(_API_PREFIX):
            body = {"error": "request_too_large", "error_description": description,
                    "details": [{"field": "body", "value": size,
                                 "rule": f"at most {limit} bytes"}]}
            return JSONResponse(body, status_code=413, headers=headers)
        return PlainTextResponse(f"413 Request Entity Too Large: {description}\n",
                                 status_code=413, headers=headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._protected(scope["path"]):
            checked = await self._check(scope)
            if isinstance(checked, Response):
                await checked(scope, receive, send)
                return
            scope.setdefault("state", {})[PRINCIPAL_STATE_KEY] = checked
        declared = Headers(scope=scope).get("content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                size = -1
            if size < 0:
                await JSONResponse(
                    {"error": "invalid_request", "error_description":
                     f"Content-Length {declared[:40]!r} is not a number of bytes; send the "
                     "body's length in bytes, or no Content-Length",
                     "details": [{"field": "Content-Length", "value": declared[:40],
                                  "rule": "a non-negative integer"}]},
                    status_code=400, headers={"Connection": "close"})(scope, receive, send)
                return
            if size > self.max_body_bytes:
                await self._too_large(scope, size, declared=True)(scope, receive, send)
                return
        await self._limited(scope, receive, send)

    async def _limited(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app with a ``receive`` that counts body bytes and answers 413 past the
        limit (the app then sees a disconnect, and whatever it answers is dropped)."""
        state: dict[str, Any] = {"received": 0, "started": False, "replied": False}

        async def counted() -> Message:
            if state["replied"]:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > self.max_body_bytes:
                    if not state["started"]:
                        await self._too_large(scope, state["received"], declared=False)(
                            scope, receive, send)
                    state["replied"] = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            if state["replied"]:
                return
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not state["replied"]:
                raise
