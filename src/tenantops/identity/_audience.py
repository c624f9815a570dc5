"""Audience rules: which values name an API, and how each flow must ask for it.

A managed-identity endpoint takes a ``resource`` (the API's client ID or App ID URI); the
client-credentials flow takes a ``scope`` that must end in ``/.default``. azure-identity turns a
scope into a resource only by removing a trailing ``/.default`` and passes anything else through
unchanged, so ``api://app/some-scope`` reaches Entra as a resource name that does not exist and
comes back as AADSTS500011 (shared reference §0, §2). `parse_audience` refuses such values
before any request is made and says what to use instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from tenantops.errors import AudienceError
from tenantops.first_party import FirstPartyResource, first_party_resource

__all__ = ["DEFAULT_SCOPE_SUFFIX", "Audience", "is_guid", "parse_audience"]

DEFAULT_SCOPE_SUFFIX = "/.default"
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)


def is_guid(value: str) -> bool:
    """True for a GUID in its usual 8-4-4-4-12 form, any case."""
    return bool(_GUID.match(value))


_is_guid = is_guid


def _without_one_slash(value: str) -> str:
    return value[:-1] if value.endswith("/") else value


def _same_uri(a: str, b: str) -> bool:
    """The API's rule (docs/auth.md): case-insensitive, one trailing slash optional on URIs."""
    if is_guid(a) or is_guid(b):
        return a.lower() == b.lower()
    return _without_one_slash(a).lower() == _without_one_slash(b).lower()


@dataclass(frozen=True)
class Audience:
    """An API's audience in the two shapes Entra's flows need.

    ``resource`` is what a managed-identity endpoint (and ``az account get-access-token
    --resource``) is given; ``scope`` is what the client-credentials flow is given. ``given`` is
    the value as the user wrote it, kept for messages; it does not take part in equality.
    """

    resource: str
    given: str = field(default="", compare=False)

    @property
    def scope(self) -> str:
        """``<resource>/.default`` (a resource ending in ``/`` gives Entra's ``//.default``)."""
        return f"{self.resource}{DEFAULT_SCOPE_SUFFIX}"

    @property
    def client_id(self) -> str | None:
        """The API's client ID when the audience names it (a GUID or ``api://<GUID>``)."""
        if _is_guid(self.resource):
            return self.resource.lower()
        if self.resource.lower().startswith("api://"):
            rest = self.resource[len("api://"):].rstrip("/")
            if _is_guid(rest):
                return rest.lower()
        return None

    @property
    def first_party(self) -> FirstPartyResource | None:
        """The Microsoft service this audience names (Azure Resource Manager, Graph, ...)."""
        return first_party_resource(self.resource)

    def matches(self, aud: str) -> bool:
        """True when a token whose ``aud`` claim is ``aud`` was issued for this audience.

        v1 tokens carry the value that was requested (client ID or App ID URI), v2 tokens the
        client ID, so ``<id>`` and ``api://<id>`` are the same audience.
        """
        if _same_uri(aud, self.resource):
            return True
        mine = self.client_id
        if mine is None:
            return False
        return Audience(aud.strip()).client_id == mine

    def __str__(self) -> str:
        return self.resource


def _scope_refusal(value: str, base: str, name: str) -> AudienceError:
    service = first_party_resource(base)
    which = f" {base!r}, which is {service.name}" if service else f" {base!r}"
    return AudienceError(
        f"audience {value!r} looks like a delegated permission scope ({name!r} of the API"
        f"{which}), not a resource. A managed-identity endpoint passes it to Entra unchanged and "
        f"Entra answers AADSTS500011 (\"The resource principal named {value} was not found\"); "
        "the client-credentials flow answers AADSTS1002012 (scope must end in /.default). "
        f"Use the App ID URI {base!r}, the scope '{base}{DEFAULT_SCOPE_SUFFIX}', or the API's "
        f"client ID (a GUID). If {value!r} really is the App ID URI, write "
        f"'{value}{DEFAULT_SCOPE_SUFFIX}'."
    )


def _resource_of(value: str, given: str, *, allow_path: bool) -> str:
    if _is_guid(value):
        return value.lower()
    if not _SCHEME.match(value):
        raise AudienceError(
            f"audience {given!r} is neither a client ID (a GUID such as "
            "5f9d1b7c-2a4e-4c1d-9b3a-7e6f0a1c2d3e), an App ID URI (api://...) nor a /.default "
            "scope. Use the API app registration's client ID or App ID URI; "
            "'tenantops auth doctor <url>' shows the one the API expects."
        )
    parts = urlsplit(value)
    if parts.query or parts.fragment:
        raise AudienceError(
            f"audience {given!r} has a query or fragment; an App ID URI has neither. Use the "
            "API's client ID or its App ID URI such as api://<client-id>."
        )
    path = parts.path.strip("/")
    if path and not allow_path:
        base = f"{parts.scheme}://{parts.netloc}"
        raise _scope_refusal(given, base, path)
    if parts.netloc == "" and parts.scheme.lower() in {"api", "http", "https"}:
        raise AudienceError(
            f"audience {given!r} has no host; an App ID URI looks like api://<client-id> or "
            "https://<verified-domain>/<name>."
        )
    return value


def parse_audience(value: str) -> Audience:
    """Turn a client ID, an App ID URI or a ``/.default`` scope into an `Audience`.

    Accepted: ``<GUID>``, ``api://<host>`` (also ``https://<host>/``), and any of those (or an
    App ID URI with a path, such as ``api://<tenant>/<name>``) followed by ``/.default``.
    Refused with `AudienceError`: several scopes, named scopes (``api://app/some-scope``),
    plain words. GUIDs are lower-cased; URIs are kept as written, because a v1 token's
    ``aud`` is the requested value.
    """
    given = value
    value = value.strip()
    if not value:
        raise AudienceError(
            "the audience is empty; give the API's client ID or App ID URI (api://<client-id>), "
            "or let tenantops discover it from the API URL"
        )
    if any(ch.isspace() for ch in value):
        raise AudienceError(
            f"audience {given!r} contains several values; a token is for exactly one API. Give "
            "one client ID, App ID URI or '<App ID URI>/.default' scope."
        )
    if value.endswith(DEFAULT_SCOPE_SUFFIX):
        base = value[: -len(DEFAULT_SCOPE_SUFFIX)]
        if not base:
            raise AudienceError(
                f"audience {given!r} has no resource before /.default; write "
                "'api://<client-id>/.default' or '<client-id>/.default'."
            )
        if base.endswith(DEFAULT_SCOPE_SUFFIX):
            raise AudienceError(f"audience {given!r} ends in /.default twice; keep one.")
        return Audience(_resource_of(base, given, allow_path=True), given)
    return Audience(_resource_of(value, given, allow_path=False), given)
