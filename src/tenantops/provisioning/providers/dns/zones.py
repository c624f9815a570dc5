"""RFC 1035 zone files in a folder, read with a cache that notices every rewrite, and the one
rule that says which zone holds a name.

`ZoneFiles` is shared by the ``zone-file`` provider (which rewrites zones atomically, under
a lock) and by the embedded responder (which only reads them). Both ask `ZoneFiles` which zone
holds a name, so the responder answers from the zone the provider wrote:

- with configured zones (``providers.dns.zones``), the longest of them that contains the
  name, and only those are served (a stray file in the folder shadows nothing);
- without, the longest stored zone that contains the name; a name no stored zone contains
  goes into a new zone, its parent (or the zone hinted). A new zone is therefore never made
  below an existing one, where it would shadow that zone's records.

`containing_zone` is the same choice over a list of zone names, which the ``rfc2136`` and
``azure-dns`` providers make over their configured zones.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from threading import Lock

import dns.exception
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.zone

__all__ = ["ZoneFiles", "containing_zone", "rdata_text"]


def containing_zone(name: str, zones: Iterable[str]) -> str | None:
    """The longest of ``zones`` that is ``name`` or an ancestor of it (names compared without
    case or final dot), or None."""
    name = name.lower().rstrip(".")
    found: str | None = None
    for zone in zones:
        zone = zone.lower().rstrip(".")
        if (name == zone or name.endswith(f".{zone}")) and (
                found is None or len(zone) > len(found)):
            found = zone
    return found


class ZoneFiles:
    """Zones stored as ``<directory>/zones/<zone>.zone``; locks in ``<directory>/locks``.

    ``configured`` are the zones of ``providers.dns.zones``: when given, they are the only
    zones that hold names (see the module docstring)."""

    def __init__(self, directory: Path, configured: Sequence[str] = ()) -> None:
        self.directory = directory
        self.configured = tuple(z.lower().rstrip(".") for z in configured)
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

    def holding_zone(self, name: str) -> str | None:
        """The zone that holds ``name`` now: the longest configured zone containing it (stored
        or not yet), else, with none configured, the longest stored zone containing it."""
        if self.configured:
            return containing_zone(name, self.configured)
        labels = name.lower().rstrip(".").split(".")
        for start in range(len(labels)):
            candidate = ".".join(labels[start:])
            if self.path(candidate).is_file():
                return candidate
        return None

    def zone_for_writing(self, name: str, hint: str | None = None) -> str:
        """The zone a record named ``name`` goes into: the zone holding it (`holding_zone`);
        with no zone configured and none stored that holds it, ``hint`` or the name's parent,
        which becomes a new zone. Raises ValueError naming the rule when no zone may hold it."""
        name = name.lower().rstrip(".")
        zone = self.holding_zone(name)
        if zone is not None:
            return zone
        if self.configured:
            raise ValueError(
                f"no zone in providers.dns.zones ({', '.join(self.configured)}) contains "
                f"{name}; add its zone there or use a domain inside one of them"
            )
        if hint:
            hint = hint.lower().rstrip(".")
            if not name.endswith(f".{hint}"):
                raise ValueError(f"{name} is not inside zone {hint}")
            return hint
        if "." not in name:
            raise ValueError(f"{name} has no parent zone to hold its records")
        return name.split(".", 1)[1]

    def zone_of(self, name: dns.name.Name) -> dns.zone.Zone | None:
        """The stored zone that holds ``name`` (`holding_zone`), as the responder serves it."""
        zone = self.holding_zone(name.to_text(omit_final_dot=True))
        return None if zone is None else self.load(zone)

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
