"""A stand-in for the tenantops API's token check, answering 401/403 the way the API does
(``tenantops.auth._challenge``: the challenge and the ``expected``/``received`` body shapes).

It reads (does not verify) the token, because what is under test is the client: what it sends
and how it explains a refusal. Usable as an `httpx.MockTransport` handler or, for CLI tests that
need a real URL, served over HTTP on loopback by `FakeApi.serve`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt


@dataclass
class FakeApi:
    client_id: str
    tenant_id: str
    authority: str = "https://login.microsoftonline.com"
    required_role: str = "Tenants.Read"
    advertise_audience: bool = True
    calls: int = 0
    authorized_calls: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _refuse(self, status: int, error: str | None, description: str,
                expected: Any, received: Any) -> httpx.Response:
        params = ['realm="tenantops"']
        if error:
            params.append(f'error="{error}"')
        params.append(f'error_description="{description}"')
        if self.advertise_audience:
            params.append(f'resource_id="{self.client_id}"')
            params.append(
                f'authorization_uri="{self.authority}/{self.tenant_id}/oauth2/authorize"')
        body = {"error": error or "invalid_token", "error_description": description,
                "expected": expected, "received": received}
        return httpx.Response(status, json=body,
                              headers={"WWW-Authenticate": "Bearer " + ", ".join(params)})

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.calls += 1
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer "):
            return self._refuse(401, None, "no bearer token",
                                {"aud": [self.client_id, f"api://{self.client_id}"],
                                 "tid": self.tenant_id}, {"authorization": "(none)"})
        try:
            claims = jwt.decode(header[7:], options={"verify_signature": False})
        except jwt.PyJWTError:
            return self._refuse(401, "invalid_token", "the token is not a JWT",
                                {"token": "a JWT"}, {"token": "(malformed)"})
        accepted = [self.client_id, f"api://{self.client_id}"]
        aud = claims.get("aud")
        if aud not in accepted:
            return self._refuse(401, "invalid_token",
                                f"the token's audience {aud} is not this API",
                                {"aud": accepted}, {"aud": aud})
        if claims.get("tid") != self.tenant_id:
            return self._refuse(401, "invalid_token", "the token is from another tenant",
                                {"tid": self.tenant_id}, {"tid": claims.get("tid")})
        if claims.get("exp", 0) < time.time():
            return self._refuse(401, "invalid_token", "the token has expired",
                                {"exp": "in the future"}, {"exp": claims.get("exp")})
        roles = claims.get("roles", [])
        if self.required_role not in roles:
            return self._refuse(403, "insufficient_scope",
                                f"this call needs the app role {self.required_role}",
                                {"role": self.required_role}, {"roles": roles})
        with self._lock:
            self.authorized_calls += 1
        return httpx.Response(200, json={"tenants": []})

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    @contextmanager
    def serve(self) -> Iterator[str]:
        """Serve on a free loopback port; yields the base URL."""
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                request = httpx.Request(self.command, f"http://test{self.path}",
                                        headers=dict(self.headers.items()),
                                        content=self.rfile.read(length) if length else b"")
                response = api(request)
                self.send_response(response.status_code)
                for key, value in response.headers.items():
                    if key.lower() not in {"content-length", "transfer-encoding"}:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(response.content)))
                self.end_headers()
                self.wfile.write(response.content)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            server.server_close()


def body_of(response: httpx.Response) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(response.content)
    return data
