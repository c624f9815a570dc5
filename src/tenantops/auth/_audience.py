"""The one rule by which the API compares a token's ``aud`` with the audiences it accepts.

Accepted audiences are the API's client ID, ``api://<client ID>`` and ``auth.extra_audiences``
(`expected_audiences`). A token's ``aud`` matches one of them when:

- it is a GUID and equals the client ID ignoring case (``5F9D...`` is ``5f9d...``); nothing
  may follow it (``<id>/`` is not a GUID and not a URI: refused);
- it is a URI (a scheme, then no whitespace) and equals an accepted URI ignoring case, where
  either side may end in **one** ``/`` (``api://<id>/`` is ``api://<id>``; ``api://<id>//``
  is not). Entra issues v1 tokens with the App ID URI as requested, "with or without a
  trailing slash" (shared reference §4).

Nothing else is normalised: no whitespace is trimmed, no ``/.default`` removed, no percent
sign decoded, no scheme guessed, and a list of audiences is refused (`TokenValidator`).
docs/auth.md lists every variant with its test.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["audience_key", "audience_matches"]

_GUID = re.compile(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+")


def audience_key(value: str) -> str | None:
    """The form two audiences are compared in (lower case, a URI without one trailing slash),
    or ``None`` for a value that is neither a GUID nor a URI."""
    if _GUID.fullmatch(value):
        return value.lower()
    if not _URI.fullmatch(value):
        return None
    return (value[:-1] if value.endswith("/") else value).lower()


def audience_matches(aud: str, accepted: Iterable[str]) -> bool:
    """True when the token audience ``aud`` is one of ``accepted`` under the rule above."""
    key = audience_key(aud)
    return key is not None and any(key == audience_key(a) for a in accepted)
