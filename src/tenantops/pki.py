"""A small local certificate authority: one CA key pair in a folder, leaf certificates on demand.

Used by the emulator (its HTTPS authority must be https for msal) and by the local TLS edge.
Keys are written readable by the owner only. Nothing here talks to the network.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tenantops.errors import ConfigError

__all__ = ["LeafCertificate", "LocalCA", "write_private"]

_CA_VALIDITY = dt.timedelta(days=3650)
_LEAF_VALIDITY = dt.timedelta(days=397)


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` with mode 0600, creating parent folders (mode 0700)."""
    _write_atomically(path, data, 0o600)


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    """Write to a temporary file beside ``path`` and rename it over ``path``: a process
    killed mid-write leaves the old file or the new one, never a truncated PEM."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(temporary, mode)
    os.replace(temporary, path)


@dataclass(frozen=True)
class LeafCertificate:
    """Paths of a leaf certificate (with the CA appended, as servers expect) and its key."""

    cert_path: Path
    key_path: Path
    certificate: x509.Certificate


class LocalCA:
    """A certificate authority kept in ``folder`` (``ca.pem``, ``ca.key``); created on first use."""

    def __init__(self, folder: Path, name: str = "tenantops local CA") -> None:
        self.folder = folder
        self.name = name
        self._key: ec.EllipticCurvePrivateKey | None = None
        self._cert: x509.Certificate | None = None

    @property
    def cert_path(self) -> Path:
        return self.folder / "ca.pem"

    def _load_or_create(self) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        if self._key is not None and self._cert is not None:
            return self._key, self._cert
        key_path = self.folder / "ca.key"
        if key_path.is_file() and self.cert_path.is_file():
            loaded = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            if not isinstance(loaded, ec.EllipticCurvePrivateKey):
                raise ConfigError(
                    f"{key_path} does not hold the elliptic-curve key of the local CA. Put "
                    "back the key it made, or remove "
                    f"{self.folder} to make a new CA (the certificates it issued are then "
                    "issued again, and clients that trust the old CA must trust the new one)")
            key = loaded
            cert = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
        else:
            key = ec.generate_private_key(ec.SECP256R1())
            subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.name)])
            now = dt.datetime.now(dt.timezone.utc)
            cert = (
                x509.CertificateBuilder()
                .subject_name(subject)
                .issuer_name(subject)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(now + _CA_VALIDITY)
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(
                    x509.KeyUsage(
                        digital_signature=True, key_cert_sign=True, crl_sign=True,
                        content_commitment=False, key_encipherment=False,
                        data_encipherment=False, key_agreement=False,
                        encipher_only=False, decipher_only=False,
                    ),
                    critical=True,
                )
                .add_extension(
                    x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
                )
                .sign(key, hashes.SHA256())
            )
            write_private(
                key_path,
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ),
            )
            _write_atomically(self.cert_path, cert.public_bytes(serialization.Encoding.PEM),
                              0o644)
        self._key, self._cert = key, cert
        return key, cert

    def ca_pem(self) -> bytes:
        _, cert = self._load_or_create()
        return cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, names: list[str], out_dir: Path, stem: str) -> LeafCertificate:
        """Issue (or reuse, while valid for the same names) a server certificate for ``names``.

        IP literals become IP SANs, everything else DNS SANs.
        """
        ca_key, ca_cert = self._load_or_create()
        cert_path, key_path = out_dir / f"{stem}.pem", out_dir / f"{stem}.key"
        existing = _read_certificate(cert_path) if key_path.is_file() else None
        if existing is not None and _san_names(existing) == sorted(names) and (
            existing.issuer == ca_cert.subject
            and existing.not_valid_after_utc
            > dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=7)
        ):
            return LeafCertificate(cert_path, key_path, existing)
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.timezone.utc)
        sans: list[x509.GeneralName] = []
        for name in names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                sans.append(x509.DNSName(name))
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + _LEAF_VALIDITY)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        write_private(
            key_path,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        _write_atomically(
            cert_path,
            cert.public_bytes(serialization.Encoding.PEM)
            + ca_cert.public_bytes(serialization.Encoding.PEM),
            0o644,
        )
        return LeafCertificate(cert_path, key_path, cert)


def _read_certificate(path: Path) -> x509.Certificate | None:
    """The certificate at ``path``; None when it is missing or unreadable (issue anew)."""
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (FileNotFoundError, ValueError):
        return None


def _san_names(cert: x509.Certificate) -> list[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    dns = [str(n) for n in ext.get_values_for_type(x509.DNSName)]
    ips = [str(n) for n in ext.get_values_for_type(x509.IPAddress)]
    return sorted(dns + ips)
