"""The local edge's state on disk: site identity, hostname bindings, certificates, orders.

Shared by the ``local-edge`` provider (which writes it) and the TLS edge (which reads it),
possibly in different processes; every file is replaced atomically.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from tenantops.pki import LocalCA

__all__ = ["Binding", "EdgeState", "IssuedCertificate"]


@dataclass(frozen=True)
class Binding:
    hostname: str
    tenant: str
    ssl_state: str  # "Disabled" or "SniEnabled", as App Service names them
    thumbprint: str | None
    suspended: bool = False  # the edge answers 503 "suspended" instead of the tenant's app


@dataclass(frozen=True)
class IssuedCertificate:
    hostname: str
    cert_path: Path
    key_path: Path
    thumbprint: str
    expires_at: dt.datetime


def thumbprint_of(certificate: x509.Certificate) -> str:
    return certificate.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 - it is a name


class EdgeState:
    """Files under ``directory``: ``site.json``, ``bindings/``, ``certificates/``,
    ``orders/`` and the local CA in ``ca/``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ca = LocalCA(directory / "ca", name="tenantops local edge CA")

    @contextmanager
    def locked(self, name: str) -> Iterator[None]:
        locks = self.directory / "locks"
        locks.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(locks / f"{name}.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def ca_pem(self) -> bytes:
        """The CA certificate (created once, under a lock, on first use)."""
        with self.locked("ca"):
            return self.ca.ca_pem()

    def _write_json(self, path: Path, data: dict[str, Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(data, sort_keys=True))
        os.replace(temporary, path)

    @staticmethod
    def _read_json(path: Path) -> dict[str, Any] | None:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        assert isinstance(data, dict)
        return data

    # -- site -----------------------------------------------------------------------

    def verification_id(self) -> str:
        """The site's domain verification ID, generated once (64 hex digits, like Azure's)."""
        path = self.directory / "site.json"
        with self.locked("site"):
            data = self._read_json(path)
            if data is None:
                data = {"verification_id": secrets.token_hex(32).upper()}
                self._write_json(path, data)
        return str(data["verification_id"])

    # -- bindings -------------------------------------------------------------------

    def binding_path(self, hostname: str) -> Path:
        return self.directory / "bindings" / f"{hostname}.json"

    def binding(self, hostname: str) -> Binding | None:
        data = self._read_json(self.binding_path(hostname))
        if data is None:
            return None
        return Binding(data["hostname"], data["tenant"], data["ssl_state"], data["thumbprint"],
                       bool(data.get("suspended", False)))

    def bindings(self) -> list[Binding]:
        folder = self.directory / "bindings"
        if not folder.is_dir():
            return []
        found = (self.binding(p.name[: -len(".json")]) for p in folder.glob("*.json"))
        return sorted((b for b in found if b is not None), key=lambda b: b.hostname)

    def write_binding(self, binding: Binding) -> None:
        self._write_json(self.binding_path(binding.hostname), {
            "hostname": binding.hostname, "tenant": binding.tenant,
            "ssl_state": binding.ssl_state, "thumbprint": binding.thumbprint,
            "suspended": binding.suspended,
        })

    def delete_binding(self, hostname: str) -> bool:
        path = self.binding_path(hostname)
        existed = path.exists()
        path.unlink(missing_ok=True)
        return existed

    # -- certificates -----------------------------------------------------------------

    def certificate_paths(self, hostname: str) -> tuple[Path, Path]:
        folder = self.directory / "certificates"
        return folder / f"{hostname}.pem", folder / f"{hostname}.key"

    def certificate(self, hostname: str) -> IssuedCertificate | None:
        """The certificate issued for ``hostname``, if its key matches and it names it."""
        cert_path, key_path = self.certificate_paths(hostname)
        try:
            pem = cert_path.read_bytes()
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            leaf = x509.load_pem_x509_certificate(pem)
        except (FileNotFoundError, ValueError):
            return None
        if leaf.public_key() != key.public_key():
            return None  # a writer was killed between key and certificate
        try:
            sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return None
        if hostname not in sans.get_values_for_type(x509.DNSName):
            return None
        return IssuedCertificate(hostname, cert_path, key_path, thumbprint_of(leaf),
                                 leaf.not_valid_after_utc)

    def issue(self, hostname: str) -> IssuedCertificate:
        cert_path, _ = self.certificate_paths(hostname)
        with self.locked("ca"):
            self.ca.issue([hostname], cert_path.parent, stem=hostname)
        issued = self.certificate(hostname)
        if issued is None:
            # The leftovers of an interrupted issuance were reused; issue afresh.
            for path in self.certificate_paths(hostname):
                path.unlink(missing_ok=True)
            with self.locked("ca"):
                self.ca.issue([hostname], cert_path.parent, stem=hostname)
            issued = self.certificate(hostname)
        assert issued is not None
        return issued

    def delete_certificate(self, hostname: str) -> bool:
        existed = False
        for path in self.certificate_paths(hostname):
            existed = existed or path.exists()
            path.unlink(missing_ok=True)
        self.order_path(hostname).unlink(missing_ok=True)
        return existed

    # -- issuance orders (simulated issuance delay) -------------------------------------

    def order_path(self, hostname: str) -> Path:
        return self.directory / "orders" / f"{hostname}.json"

    def order_ready_at(self, hostname: str, delay: float) -> float:
        """When the certificate order for ``hostname`` completes (placed now if new)."""
        path = self.order_path(hostname)
        data = self._read_json(path)
        if data is None:
            data = {"ready_at": dt.datetime.now(dt.timezone.utc).timestamp() + delay}
            self._write_json(path, data)
        return float(data["ready_at"])
