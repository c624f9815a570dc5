"""Reading an HTTP ``Retry-After`` (RFC 9110 §10.2.3): delay-seconds or an HTTP-date."""

from __future__ import annotations

import datetime as dt

import pytest

from tenantops.errors import TransientProviderError
from tenantops.provisioning.providers.base import retry_after_seconds

NOW = dt.datetime(2026, 12, 6, 12, 0, 0, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize(("value", "expected"), [
    ("120", 120.0),
    (" 7 ", 7.0),
    ("0", 0.0),
    ("-5", 0.0),
    ("Sun, 06 Dec 2026 12:01:30 GMT", 90.0),
    ("Sun, 06 Dec 2026 11:59:00 GMT", 0.0),
    ("", None),
    (None, None),
    ("in a while", None),
])
def test_retry_after_values(value: str | None, expected: float | None) -> None:
    assert retry_after_seconds(value, now=NOW) == expected


def test_transient_error_carries_retry_after_as_a_keyword_only_argument() -> None:
    error = TransientProviderError("throttled", status_code=429, retry_after=12.5)
    assert (error.retry_after, error.status_code) == (12.5, 429)
    assert TransientProviderError("reset").retry_after is None
    with pytest.raises(TypeError):
        TransientProviderError("throttled", 12.5)  # type: ignore[call-arg, arg-type]
