"""RS256 signing keys of the emulator, persisted in its data folder and rotatable.

Keys live in ``<folder>/keys.json`` (the manifest) and one ``<kid>.pem`` per key (mode 0600).
The newest key signs; keys retired by `KeyStore.rotate` stay in the JWKS for the grace
period, as Entra keeps old keys published while tokens signed with them are still alive.
A running emulator notices a rotation done by another process (``tenantops emulator
rotate-keys``) by the manifest's modification time, checked at most once a second.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tenantops.errors import EmulatorError
from tenantops.pki import write_private

__all__ = ["KeyStore", "SigningKey"]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_b64url(value: int) -> str:
    return _b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: rsa.RSAPrivateKey
    certificate_der: bytes
    created_at: float
    retired_at: float | None

    def public_jwk(self, issuer: str | None = None) -> dict[str, Any]:
        """The key as Entra publishes it: kty, use, kid, x5t, n, e, x5c (and issuer)."""
        numbers = self.private_key.public_key().public_numbers()
        jwk: dict[str, Any] = {
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.kid,
            "n": _int_b64url(numbers.n),
            "e": _int_b64url(numbers.e),
            "x5c": [base64.b64encode(self.certificate_der).decode("ascii")],
        }
        if issuer is not None:
            jwk["issuer"] = issuer
        return jwk


def _new_key(now: float) -> SigningKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tenantops emulator token signing")])
    start = dt.datetime.fromtimestamp(now, dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - dt.timedelta(minutes=5))
        .not_valid_after(start + dt.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    der = cert.public_bytes(serialization.Encoding.DER)
    # Entra's kid is the base64url SHA-1 thumbprint of the signing certificate (= x5t).
    kid = _b64url(hashlib.sha1(der, usedforsecurity=False).digest())
    return SigningKey(kid, key, der, now, None)


class KeyStore:
    """The emulator's signing keys. Constructing it does no I/O; keys load on first use."""

    def __init__(
        self, folder: Path, grace_seconds: float = 86400.0, clock: Callable[[], float] = time.time
    ) -> None:
        self.folder = folder
        self.grace_seconds = grace_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: list[SigningKey] = []
        self._manifest_mtime: float | None = None
        self._checked_at = 0.0

    @property
    def _manifest(self) -> Path:
        return self.folder / "keys.json"

    def _load(self) -> None:
        entries = json.loads(self._manifest.read_text(encoding="utf-8"))
        keys = []
        for entry in entries:
            path = self.folder / f"{entry['kid']}.pem"
            private = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(private, rsa.RSAPrivateKey):
                raise EmulatorError(
                    f"{path} does not hold an RSA private key: the emulator signs RS256 as "
                    "Entra ID does. Put back the key it made, "
                    f"or remove {self.folder} to start with new keys (tokens signed with the "
                    "old ones then fail validation)")
            der = base64.b64decode(entry["certificate"])
            keys.append(SigningKey(entry["kid"], private, der, entry["created_at"],
                                   entry.get("retired_at")))
        self._keys = keys
        self._manifest_mtime = self._manifest.stat().st_mtime

    def _save(self) -> None:
        for key in self._keys:
            path = self.folder / f"{key.kid}.pem"
            if not path.exists():
                write_private(path, key.private_key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption()))
        manifest = [
            {"kid": k.kid, "created_at": k.created_at, "retired_at": k.retired_at,
             "certificate": base64.b64encode(k.certificate_der).decode("ascii")}
            for k in self._keys
        ]
        tmp = self._manifest.with_suffix(".tmp")
        tmp.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        tmp.replace(self._manifest)
        self._manifest_mtime = self._manifest.stat().st_mtime

    def _refresh(self) -> None:
        now = time.monotonic()
        if self._keys and now - self._checked_at < 1.0:
            return
        self._checked_at = now
        if self._manifest.is_file():
            if self._manifest.stat().st_mtime != self._manifest_mtime or not self._keys:
                self._load()
        else:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._keys = [_new_key(self._clock())]
            self._save()

    def active(self) -> SigningKey:
        """The key that signs new tokens."""
        with self._lock:
            self._refresh()
            return self._keys[-1]

    def published(self) -> list[SigningKey]:
        """Keys in the JWKS: the active one and those retired less than the grace period ago."""
        with self._lock:
            self._refresh()
            now = self._clock()
            return [
                k for k in self._keys
                if k.retired_at is None or now - k.retired_at < self.grace_seconds
            ]

    def rotate(self) -> SigningKey:
        """Make a new key active; the previous one stays published for the grace period."""
        with self._lock:
            self._checked_at = 0.0
            self._refresh()
            now = self._clock()
            kept = [
                k for k in self._keys
                if k.retired_at is None or now - k.retired_at < self.grace_seconds
            ]
            retired = [
                SigningKey(k.kid, k.private_key, k.certificate_der, k.created_at,
                           k.retired_at if k.retired_at is not None else now)
                for k in kept
            ]
            new = _new_key(now)
            for gone in {k.kid for k in self._keys} - {k.kid for k in kept}:
                (self.folder / f"{gone}.pem").unlink(missing_ok=True)
            self._keys = [*retired, new]
            self._save()
            return new
