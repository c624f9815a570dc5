"""Small helpers for emulator tests: environments per runtime, unverified claim reading, and
certificates and client assertions."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tenantops.emulator.runtime_env import runtime_env
from tenantops.emulator.server import EmulatorServer

RUNTIME_VARIABLES = (
    "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT",
    "MSI_ENDPOINT", "MSI_SECRET", "AZURE_POD_IDENTITY_AUTHORITY_HOST", "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID", "AZURE_AUTHORITY_HOST", "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_TOKEN_CREDENTIALS", "AZURE_USERNAME", "AZURE_CLIENT_CERTIFICATE_PATH",
)


def act_as(
    monkeypatch: pytest.MonkeyPatch, server: EmulatorServer, identity: str, runtime: str
) -> dict[str, str]:
    """Set exactly the variables ``runtime`` would set for ``identity``; clear the others."""
    for name in RUNTIME_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    env = runtime_env(server.state.directory, server.state.data_dir, server.info, identity,
                      runtime)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def claims_of(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


@dataclass(frozen=True)
class CertificateFiles:
    """A self-signed certificate and its key, as files a client and a directory would use."""

    key: rsa.RSAPrivateKey
    certificate: x509.Certificate
    certificate_pem: Path
    """The public certificate alone (what is registered on the app)."""
    combined_pem: Path
    """Private key and certificate in one file (azure-identity's certificate_path)."""

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @property
    def sha1(self) -> str:
        return hashlib.sha1(self.der, usedforsecurity=False).hexdigest()

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.der).hexdigest()

    @property
    def key_pem(self) -> str:
        return self.key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()).decode("ascii")

    @property
    def public_pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def make_certificate(folder: Path, name: str, *, valid_from: float | None = None,
                     valid_until: float | None = None) -> CertificateFiles:
    """A 2048-bit RSA self-signed certificate, valid from an hour ago for a year by default."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = time.time()
    start = dt.datetime.fromtimestamp(valid_from if valid_from is not None else now - 3600,
                                      dt.timezone.utc)
    end = dt.datetime.fromtimestamp(valid_until if valid_until is not None else now + 86400 * 365,
                                    dt.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    certificate = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(start).not_valid_after(end).sign(key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    public = folder / f"{name}.crt.pem"
    public.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    combined = folder / f"{name}.key-and-crt.pem"
    combined.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption())
        + certificate.public_bytes(serialization.Encoding.PEM))
    return CertificateFiles(key, certificate, public, combined)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def client_assertion(cert: CertificateFiles, client_id: str, audience: object, *,
                     alg: str = "PS256", lifetime: int = 600, not_before: float | None = None,
                     sign_with: rsa.RSAPrivateKey | None = None,
                     headers: dict[str, Any] | None = None, **claims: Any) -> str:
    """A certificate assertion as MSAL builds one (x5t#S256 with PS256), changeable in every
    part an attacker or a broken client could change."""
    now = time.time()
    payload: dict[str, Any] = {"aud": audience, "iss": client_id, "sub": client_id,
                               "jti": str(uuid.uuid4()), "iat": int(now),
                               "nbf": int(now if not_before is None else not_before),
                               "exp": int(now + lifetime)}
    payload.update(claims)
    header: dict[str, Any] = {"x5t#S256": b64url(bytes.fromhex(cert.sha256))}
    if headers is not None:
        header = headers
    return jwt.encode({k: v for k, v in payload.items() if v is not None},
                      sign_with or cert.key, algorithm=alg, headers=header)
