"""Calling the Azure SDK with errors translated at the boundary."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from tenantops.provisioning.providers.azure.errors import is_not_found, translate_azure_error

__all__ = ["azure_call", "azure_get"]

T = TypeVar("T")


def azure_call(doing: str, call: Callable[[], T]) -> T:
    """``call()``; any exception becomes a provider error whose message starts with
    "could not <doing>"."""
    try:
        return call()
    except Exception as exc:
        raise translate_azure_error(exc, doing=doing) from exc


def azure_get(doing: str, call: Callable[[], T]) -> T | None:
    """`azure_call` for a read: ``None`` when the resource does not exist (404)."""
    try:
        return call()
    except Exception as exc:
        if is_not_found(exc):
            return None
        raise translate_azure_error(exc, doing=doing) from exc
