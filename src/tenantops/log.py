"""Logging that never prints a secret.

`RedactingFilter` rewrites every record's final message: JWTs, ``Bearer`` credentials,
``Basic`` credentials and ``secret=``/``password=``-style pairs become ``[redacted]``.
It is attached to tenantops' handler by `configure_logging`, so a secret that reaches a log
call by accident (an exception message carrying a token, say) is still not written.
"""

from __future__ import annotations

import logging
import re

__all__ = ["RedactingFilter", "configure_logging", "redact", "redact_values"]

_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_AUTH_HEADER = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE)
_PAIRS = re.compile(
    r"(?P<key>[\"']?(?:client_secret|secret|password|passwd|access_token|refresh_token|id_token"
    r"|code_verifier|identity_header|msi_secret|x-identity-header|api[_-]?key"
    r"|(?<=[?&])code)[\"']?\s*[=:]\s*)"
    r"(?P<quote>[\"']?)(?P<value>[^\"'\s&,;}]+)",
    re.IGNORECASE,
)
REDACTED = "[redacted]"


def redact(text: str) -> str:
    """Return ``text`` with tokens, credentials and secret-looking values replaced."""
    text = _JWT.sub(REDACTED, text)
    text = _AUTH_HEADER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    return _PAIRS.sub(lambda m: f"{m.group('key')}{m.group('quote')}{REDACTED}", text)


_SECRET_KEYS = re.compile(
    r"(client_secret|password|passwd|access_token|refresh_token|id_token|code_verifier"
    r"|identity_header|msi_secret|api[_-]?key|private_key|connection_string|secret_value)$",
    re.IGNORECASE,
)


def redact_values(value: object) -> object:
    """``value`` (JSON-like: dicts, lists, strings) with the values of secret-named keys
    replaced and every string passed through `redact`. A key named ``secret`` holds the *name*
    of a secret (``acme-database-password``), not its value, and is kept."""
    if isinstance(value, dict):
        return {k: REDACTED if isinstance(k, str) and _SECRET_KEYS.search(k)
                else redact_values(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_values(v) for v in value]
    if isinstance(value, str):
        return redact(value)
    return value


class RedactingFilter(logging.Filter):
    """Redacts the formatted message (and exception text) of every record it sees."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        record.msg = redact(message)
        record.args = None
        return True


def configure_logging(level: str = "INFO") -> None:
    """Send tenantops' (and uvicorn's) logs to stderr through the redacting filter, each
    line ending with the request, run, trace and span IDs known when it was written
    (`tenantops.telemetry.CorrelationFilter`)."""
    from tenantops.telemetry import CorrelationFilter

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s%(correlation)s"))
    handler.addFilter(RedactingFilter())
    handler.addFilter(CorrelationFilter())
    for name in ("tenantops", "uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False
