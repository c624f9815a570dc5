"""RFC 1035 zone files in a folder, read with a cache that notices every rewrite.

`ZoneFiles` is shared by the ``zone-file`` provider (which rewrites zones atomically, under
a lock) and by the embedded responder (which only reads them).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from threading import Lock

import dns.exception
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.zone

__all__ = ["ZoneFiles"]


class ZoneFiles:
    """Zones stored as ``<directory>/zones/<zone>.zone``; locks in ``<directory>/locks``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._cache: dict[str, tuple[tuple[int, int, int], dns.zone.Zone]] = {}
        self._cache_lock = Lock()

    @property
    def zones_dir(self) -> Path:
        return self.directory / "zones"

    def path(self, zone: str) -> Path:
        return self.zones_dir / f"{zone}.zone"

    def names(self) -> list[str]:
        """Zones that exist, by name."""
        if not self.zones_dir.is_dir():
            return []
        return sorted(p.name[: -len(".zone")] for p in self.zones_dir.glob("*.zone"))

    @contextmanager
    def locked(self, zone: str) -> Iterator[None]:
        """Hold the zone's lock (across threads and processes) while rewriting it."""
        locks = self.directory / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        with open(locks / f"{zone}.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def load(self, zone: str) -> dns.zone.Zone | None:
        """The zone as stored now (absolute names), or None; cached until the file changes."""
        path = self.path(zone)
        try:
            stat = path.stat()
        except FileNotFoundError:
            with self._cache_lock:
                self._cache.pop(zone, None)
            return None
        stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        with self._cache_lock:
            cached = self._cache.get(zone)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        try:
            loaded = dns.zone.from_file(str(path), origin=f"{zone}.", relativize=False)
        except (FileNotFoundError, dns.exception.DNSException):
            return None
        with self._cache_lock:
            self._cache[zone] = (stamp, loaded)
        return loaded

    def zone_of(self, name: dns.name.Name) -> dns.zone.Zone | None:
        """The most specific stored zone that contains ``name``."""
        labels = name.to_text(omit_final_dot=True).lower().split(".")
        for start in range(len(labels)):
            zone = self.load(".".join(labels[start:]))
            if zone is not None:
                return zone
        return None

    def write(self, zone: str, content: dns.zone.Zone) -> None:
        """Replace the zone file atomically (readers see the old or the new zone whole)."""
        self.zones_dir.mkdir(parents=True, exist_ok=True)
        path = self.path(zone)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(temporary, "w") as handle:
            content.to_file(handle, sorted=True, relativize=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)

    def delete(self, zone: str) -> None:
        self.path(zone).unlink(missing_ok=True)

    def resolve(self, name: str, type: str) -> list[str]:
        """Answer from the files as an authoritative server would (values as text)."""
        qname = dns.name.from_text(name)
        zone = self.zone_of(qname)
        if zone is None:
            return []
        node = zone.get_node(qname)
        if node is None:
            return []
        rdataset = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.from_text(type))
        if rdataset is None:
            return []
        return [rdata_text(rdata) for rdata in rdataset]


def rdata_text(rdata: object) -> str:
    """A record's value the way tenantops compares it: TXT unquoted, names without final dot."""
    strings = getattr(rdata, "strings", None)
    if strings is not None:
        return b"".join(strings).decode()
    target = getattr(rdata, "target", None)
    if isinstance(target, dns.name.Name):
        return target.to_text(omit_final_dot=True)
    return str(rdata)
