"""Secrets never reach a log line, whatever a caller passes to the logger."""

from __future__ import annotations

import io
import logging

import pytest

from tenantops.log import RedactingFilter, redact

JWT = ("eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJhcGk6Ly94In0."
       "c2lnbmF0dXJlLWJ5dGVzLWhlcmUtYW5kLW1vcmU")


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"got token {JWT}", JWT),
        ("Authorization: Bearer abcdefghijklmnop", "abcdefghijklmnop"),
        ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
        ("client_secret=ci-local-secret&grant_type=x", "ci-local-secret"),
        ('{"password": "hunter2-hunter2"}', "hunter2-hunter2"),
        ("X-IDENTITY-HEADER: 0123456789abcdef", "0123456789abcdef"),
        ("MSI_SECRET=topsecretvalue", "topsecretvalue"),
        ('"GET /auth/callback?code=0.AUsA-authcode&state=s1 HTTP/1.1" 302', "0.AUsA-authcode"),
        ("/callback?state=s1&code=the-code-value", "the-code-value"),
    ],
)
def test_redact_removes_secret(text: str, secret: str) -> None:
    assert secret not in redact(text)
    assert "[redacted]" in redact(text)


def test_redact_keeps_ordinary_text() -> None:
    text = "audience api://5f9d1b7c is not accepted; expected 5f9d1b7c"
    assert redact(text) == text


def test_filter_redacts_arguments_and_exception_text() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("tenantops.test-redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("calling with %s", f"Bearer {JWT}")
        try:
            raise ValueError(f"bad token {JWT}")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    output = stream.getvalue()
    assert JWT not in output
    assert output.count("[redacted]") >= 2
