"""`DiscoveryCache`: the audience each API said it expects, remembered between commands.

Every CLI command is a new process; without this file each one would ask the API again. The
cache is a JSON file in the user's cache folder (platformdirs: ``~/.cache/tenantops`` on Linux),
keyed by the API root (scheme, host, port and the path through ``/api``), holding only what
the API published (audience, tenant): no token and no secret. Entries live a day, are dropped
when the API refuses a token for them, and are checked against the pinning rules again when
read, so a file edited by hand cannot make tenantops request a Microsoft first-party token.

The file is written atomically (a temporary file renamed over it) with mode 0600 in a 0700
folder. An unreadable or malformed file counts as empty. The constructor does no I/O.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

__all__ = ["DEFAULT_TTL_SECONDS", "CachedDiscovery", "DiscoveryCache", "api_root_of"]

log = logging.getLogger("tenantops.identity")

DEFAULT_TTL_SECONDS = 24 * 3600
_FILE = "audiences.json"
_VERSION = 1


def api_root_of(url: str) -> str:
    """The API root a URL belongs to: origin plus the path through its first ``/api`` segment
    (``https://h/api/runs/1`` → ``https://h/api``), or the origin when there is none."""
    parsed = httpx.URL(url)
    origin = f"{parsed.scheme}://{parsed.netloc.decode('ascii').lower()}"
    segments = parsed.path.split("/")
    if "api" in segments:
        return origin + "/".join(segments[: segments.index("api") + 1])
    return origin


@dataclass(frozen=True)
class CachedDiscovery:
    """What an API root published, and when tenantops learned it."""

    audience: str
    tenant_id: str | None
    learned_from: str
    learned_at: float


class DiscoveryCache:
    """The audiences of APIs, by root, in ``<folder>/audiences.json``. Thread-safe."""

    def __init__(self, folder: Path, *, ttl_seconds: float = DEFAULT_TTL_SECONDS,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = folder / _FILE
        self._ttl = ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()

    @classmethod
    def default(cls, folder: Path | None = None) -> DiscoveryCache:
        """The cache in ``folder``, else the user's cache folder for tenantops."""
        if folder is None:
            import platformdirs

            folder = Path(platformdirs.user_cache_dir("tenantops", appauthor=False))
        return cls(folder)

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("version") != _VERSION:
            return {}
        apis = data.get("apis")
        return apis if isinstance(apis, dict) else {}

    def _write(self, apis: dict[str, Any]) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, temporary = tempfile.mkstemp(prefix=".audiences-", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    json.dump({"version": _VERSION, "apis": apis}, handle, indent=2)
                os.chmod(temporary, 0o600)
                os.replace(temporary, self.path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        except OSError as exc:  # a cache that cannot be written only costs a request
            log.debug("could not write the discovery cache %s: %s", self.path, exc)

    def get(self, root: str) -> CachedDiscovery | None:
        """The entry for ``root`` if it is younger than the TTL."""
        with self._lock:
            entry = self._read().get(root)
        if not isinstance(entry, dict):
            return None
        audience, learned_at = entry.get("audience"), entry.get("learned_at")
        tenant, learned_from = entry.get("tenant_id"), entry.get("learned_from")
        if not isinstance(audience, str) or not isinstance(learned_at, int | float):
            return None
        if not 0 <= self._clock() - learned_at < self._ttl:
            return None
        return CachedDiscovery(audience, tenant if isinstance(tenant, str) else None,
                               learned_from if isinstance(learned_from, str) else "",
                               float(learned_at))

    def put(self, root: str, *, audience: str, tenant_id: str | None, learned_from: str) -> None:
        with self._lock:
            apis = self._read()
            apis[root] = {"audience": audience, "tenant_id": tenant_id,
                          "learned_from": learned_from, "learned_at": self._clock()}
            self._write(apis)

    def forget(self, root: str) -> None:
        with self._lock:
            apis = self._read()
            if apis.pop(root, None) is not None:
                self._write(apis)
