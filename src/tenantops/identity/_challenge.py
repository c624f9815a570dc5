"""What a refusing API says: the ``WWW-Authenticate: Bearer`` challenge and the JSON error body.

The tenantops API (and any API following RFC 6750 the way Entra-protected APIs do) answers a
request without an acceptable token with::

    WWW-Authenticate: Bearer realm="tenantops", error="invalid_token",
        error_description="...", resource_id="<client id>", authorization_uri="..."

and a body ``{"error", "error_description", "expected", "received"}``. Both are parsed
leniently: a missing or malformed part yields ``None``, never an exception, because they are
evidence for a message, not input to trust.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

__all__ = ["BearerChallenge", "ErrorBody", "parse_bearer_challenge"]

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_PARAM = re.compile(
    rf"\s*(?P<name>{_TOKEN})\s*=\s*(?:\"(?P<quoted>(?:[^\"\\]|\\.)*)\"|(?P<token>{_TOKEN}))\s*,?"
)
_SCHEME = re.compile(rf"\s*,?\s*(?P<scheme>{_TOKEN})(?:\s+|$)")


@dataclass(frozen=True)
class BearerChallenge:
    """The parameters of one ``Bearer`` challenge (names lower-cased)."""

    params: Mapping[str, str] = field(default_factory=dict)

    def _get(self, name: str) -> str | None:
        value = self.params.get(name)
        return value if value else None

    @property
    def realm(self) -> str | None:
        return self._get("realm")

    @property
    def error(self) -> str | None:
        return self._get("error")

    @property
    def error_description(self) -> str | None:
        return self._get("error_description")

    @property
    def resource_id(self) -> str | None:
        """The audience the API expects (its client ID), when it advertises one."""
        return self._get("resource_id")

    @property
    def authorization_uri(self) -> str | None:
        return self._get("authorization_uri")

    @property
    def tenant_id(self) -> str | None:
        """The tenant in ``authorization_uri`` (``https://<authority>/<tenant>/oauth2/...``)."""
        uri = self.authorization_uri
        if not uri:
            return None
        segments = [s for s in urlsplit(uri).path.split("/") if s]
        return segments[0] if segments else None


def _auth_items(header: str) -> list[tuple[str, str, str]]:
    """``("scheme", name, "")`` and ``("param", name, value)`` items, in order."""
    items: list[tuple[str, str, str]] = []
    pos = 0
    while pos < len(header):
        param = _PARAM.match(header, pos)
        if param:
            quoted = param.group("quoted")
            value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else param.group("token")
            items.append(("param", param.group("name").lower(), value))
            pos = param.end()
            continue
        scheme = _SCHEME.match(header, pos)
        if scheme and scheme.end() > pos:
            items.append(("scheme", scheme.group("scheme").lower(), ""))
            pos = scheme.end()
            continue
        comma = header.find(",", pos)  # a token68 or something malformed: skip it
        if comma == -1:
            break
        pos = comma + 1
    return items


def parse_bearer_challenge(header: str | None) -> BearerChallenge | None:
    """The ``Bearer`` challenge in a ``WWW-Authenticate`` value, or ``None`` if there is none.

    Handles quoted strings with escapes and commas, and other schemes (``Basic realm=...``)
    before or after the Bearer one.
    """
    params: dict[str, str] | None = None
    for kind, name, value in _auth_items(header or ""):
        if kind == "scheme":
            if params is not None:
                break
            if name == "bearer":
                params = {}
        elif params is not None:
            params[name] = value
    return None if params is None else BearerChallenge(params)


@dataclass(frozen=True)
class ErrorBody:
    """The JSON error body of a refusal; every field optional."""

    error: str | None = None
    error_description: str | None = None
    expected: Any = None
    received: Any = None

    @classmethod
    def from_response(cls, response: httpx.Response) -> ErrorBody | None:
        try:
            data = json.loads(response.content or b"null")
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        detail = data.get("detail")
        if isinstance(detail, dict) and "error" not in data:
            data = detail  # FastAPI's HTTPException(detail={...}) shape
        error = data.get("error")
        description = data.get("error_description")
        return cls(
            error=error if isinstance(error, str) else None,
            error_description=description if isinstance(description, str) else None,
            expected=data.get("expected"),
            received=data.get("received"),
        )


def render_value(value: Any) -> str:
    """A compact, human form of an ``expected``/``received`` value from an error body."""
    if value is None:
        return "(not given)"
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple):
        return " or ".join(render_value(v) for v in value) if value else "(none)"
    if isinstance(value, dict):
        return ", ".join(f"{k}={render_value(v)}" for k, v in value.items())
    return json.dumps(value)
