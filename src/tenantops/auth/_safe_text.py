"""Making caller-supplied values safe to show: in a JSON body, a log line or an HTTP header.

A rejection names the values it received (an ``alg``, an audience, a ``kid``). Those come from
the caller and may be huge or hostile, so they are shortened and, for headers, reduced to
printable ASCII without quotes or backslashes.
"""

from __future__ import annotations

import re

__all__ = ["MAX_SHOWN", "header_safe", "shown"]

MAX_SHOWN = 120
_MAX_ITEMS = 10
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")
_SPACES = re.compile(r"\s{2,}")


def shown(value: object) -> object:
    """``value`` cut down for display: strings to `MAX_SHOWN` characters, lists to ten items.

    Other JSON types pass through; anything else is replaced by its type name.
    """
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return value if len(value) <= MAX_SHOWN else f"{value[:MAX_SHOWN]}...({len(value)} chars)"
    if isinstance(value, (list, tuple)):
        items = [shown(v) for v in value[:_MAX_ITEMS]]
        if len(value) > _MAX_ITEMS:
            items.append(f"...({len(value)} items)")
        return items
    if isinstance(value, dict):
        return f"(a JSON object with {len(value)} members)"
    return f"(a {type(value).__name__})"


def header_safe(text: str, limit: int = 1500) -> str:
    """``text`` as an RFC 6750 ``error_description``: printable ASCII without ``"`` or ``\\``.

    Non-ASCII characters become ``?``, double quotes become single quotes, line breaks become
    spaces; the result is cut to ``limit`` characters.
    """
    text = text.replace('"', "'").replace("\\", "/")
    text = _UNPRINTABLE.sub(lambda m: " " if m.group() in "\r\n\t" else "?", text)
    text = _SPACES.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."
