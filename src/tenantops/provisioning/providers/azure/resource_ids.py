"""ARM resource IDs, built in one place so every provider spells them the same way."""

from __future__ import annotations

__all__ = ["resource_id"]


def resource_id(subscription_id: str, resource_group: str, provider: str, *path: str) -> str:
    """``/subscriptions/<sub>/resourceGroups/<rg>/providers/<provider>/<path...>``."""
    tail = "/".join(path)
    return (f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}"
            f"/providers/{provider}/{tail}")
