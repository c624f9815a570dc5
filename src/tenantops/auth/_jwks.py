"""The configured tenant's token-signing keys and issuers, from its OIDC discovery documents.

`JwksCache` reads the authority's v1 and v2 discovery documents
(``<authority>/<tid>/.well-known/openid-configuration`` and
``<authority>/<tid>/v2.0/.well-known/openid-configuration``) once, for the two issuers and the
two ``jwks_uri``; it then keeps the keys of both JWKS, already parsed into ``cryptography``
public keys so the hot path never parses a key.

Refreshing: on a ``kid`` it does not know, and when the keys are older than ``max_age_seconds``,
but never more than once per ``min_refresh_seconds`` (a stream of tokens with made-up ``kid``
values must not turn into a stream of requests to the authority). Failed fetches count too.
Thread-safe: lookups read an immutable snapshot; refreshes are serialised by a lock.
Constructing it does no I/O; the first lookup fetches.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.algorithms import RSAAlgorithm
from jwt.exceptions import PyJWTError

from tenantops.config import AuthSettings
from tenantops.errors import ConfigError, SigningKeysUnavailableError

__all__ = ["JwksCache", "TenantIssuers"]

log = logging.getLogger("tenantops.auth")

MIN_KEY_BITS = 2048


@dataclass(frozen=True)
class TenantIssuers:
    """The ``iss`` values of the tenant's v1 and v2 access tokens, as discovery states them.

    For Microsoft Entra ID: ``https://sts.windows.net/<tid>/`` and
    ``https://login.microsoftonline.com/<tid>/v2.0``.
    """

    v1: str
    v2: str

    def all(self) -> tuple[str, str]:
        return (self.v1, self.v2)

    def version_of(self, issuer: str) -> str:
        return "2.0" if issuer == self.v2 else "1.0"


@dataclass(frozen=True)
class _Snapshot:
    keys: Mapping[str, RSAPublicKey]
    fetched_at: float


class JwksCache:
    """Signing keys and issuers of one tenant at one authority; see the module docstring."""

    def __init__(
        self,
        authority: str,
        tenant_id: str,
        *,
        ca_bundle: Path | str | None = None,
        min_refresh_seconds: float = 60.0,
        max_age_seconds: float = 86400.0,
        timeout_seconds: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.authority = authority.rstrip("/")
        self.tenant_id = tenant_id
        self.ca_bundle = Path(ca_bundle) if ca_bundle is not None else None
        self.min_refresh_seconds = min_refresh_seconds
        self.max_age_seconds = max_age_seconds
        self._timeout = timeout_seconds
        self._transport = transport
        self._clock = clock
        self._lock = threading.Lock()
        self._client: httpx.Client | None = None
        self._issuers: TenantIssuers | None = None
        self._jwks_uris: tuple[str, ...] = ()
        self._snapshot: _Snapshot | None = None
        self._last_attempt: float | None = None
        self._last_error: SigningKeysUnavailableError | None = None
        self.refresh_count = 0
        """Successful JWKS refreshes so far (each fetches every distinct ``jwks_uri``)."""

    @classmethod
    def from_settings(
        cls,
        settings: AuthSettings,
        *,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> JwksCache:
        if not settings.tenant_id:
            raise ConfigError("auth.tenant_id is not set (TENANTOPS_AUTH__TENANT_ID)")
        return cls(
            settings.authority, settings.tenant_id, ca_bundle=settings.ca_bundle,
            min_refresh_seconds=settings.jwks_min_refresh_seconds, transport=transport,
            clock=clock,
        )

    @property
    def discovery_urls(self) -> tuple[str, str]:
        base = f"{self.authority}/{self.tenant_id}"
        return (f"{base}/.well-known/openid-configuration",
                f"{base}/v2.0/.well-known/openid-configuration")

    @property
    def jwks_uris(self) -> tuple[str, ...]:
        return self._jwks_uris

    def known_kids(self) -> tuple[str, ...]:
        """The ``kid`` values currently trusted; no I/O."""
        snapshot = self._snapshot
        return tuple(snapshot.keys) if snapshot is not None else ()

    def is_published(self, kid: str) -> bool:
        """True when ``kid`` is in the current snapshot; no I/O, no refresh."""
        snapshot = self._snapshot
        return snapshot is not None and kid in snapshot.keys

    def issuers(self) -> TenantIssuers:
        """The tenant's v1 and v2 issuers; fetches discovery and keys on first use."""
        issuers = self._issuers
        if issuers is not None:
            return issuers
        with self._lock:
            if self._issuers is None:
                self._refresh_if_allowed(reason="first use")
            if self._issuers is None:
                raise self._unavailable()
            return self._issuers

    def key(self, kid: str) -> RSAPublicKey | None:
        """The public key for ``kid``, refreshing (rate-limited) when it is unknown or stale.

        Returns ``None`` when the tenant does not publish ``kid``. Raises
        `SigningKeysUnavailableError` when the keys cannot be fetched and ``kid`` is unknown.
        """
        snapshot = self._snapshot
        if snapshot is not None:
            found = snapshot.keys.get(kid)
            if found is not None and not self._stale(snapshot):
                return found
        with self._lock:
            snapshot = self._snapshot
            if snapshot is not None and kid in snapshot.keys and not self._stale(snapshot):
                return snapshot.keys[kid]
            reason = "stale keys" if snapshot is not None and kid in snapshot.keys else (
                f"unknown kid {kid[:64]!r}" if snapshot is not None else "first use")
            self._refresh_if_allowed(reason=reason)
            snapshot = self._snapshot
            if snapshot is not None and kid in snapshot.keys:
                return snapshot.keys[kid]
            if self._last_error is not None and self._last_attempt is not None and (
                snapshot is None or snapshot.fetched_at < self._last_attempt
            ):
                # The freshest answer we have is a failure: we cannot say the kid is unknown.
                raise self._unavailable()
            return None

    def seconds_until_refresh_allowed(self) -> float:
        if self._last_attempt is None:
            return 0.0
        return max(0.0, self._last_attempt + self.min_refresh_seconds - self._clock())

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def _stale(self, snapshot: _Snapshot) -> bool:
        return self._clock() - snapshot.fetched_at > self.max_age_seconds

    def _unavailable(self) -> SigningKeysUnavailableError:
        last = self._last_error
        wait = self.seconds_until_refresh_allowed()
        message = (str(last) if last is not None else
                   f"the signing keys of tenant {self.tenant_id} have not been fetched")
        return SigningKeysUnavailableError(
            f"{message}; next attempt in {wait:.0f} s",
            expected=last.expected if last is not None else {},
            received=last.received if last is not None else {},
        )

    def _refresh_if_allowed(self, reason: str) -> None:
        """Caller holds the lock."""
        if self.seconds_until_refresh_allowed() > 0:
            return
        self._last_attempt = self._clock()
        try:
            self._refresh(reason)
        except SigningKeysUnavailableError as exc:
            self._last_error = exc
            if self._snapshot is not None:
                log.warning("keeping the previous signing keys: %s", exc)
            else:
                log.error("%s", exc)
        else:
            self._last_error = None

    def _http(self) -> httpx.Client:
        if self._client is None:
            verify: ssl.SSLContext | bool = True
            if self.ca_bundle is not None and self._transport is None:
                try:
                    verify = ssl.create_default_context(cafile=str(self.ca_bundle))
                except (OSError, ssl.SSLError) as exc:
                    raise SigningKeysUnavailableError(
                        f"cannot read the CA bundle auth.ca_bundle = {self.ca_bundle}: {exc}; "
                        "point it at a PEM file (for the emulator: ca_bundle in emulator.json)",
                        expected={"ca_bundle": "a readable PEM file"},
                        received={"ca_bundle": str(self.ca_bundle)},
                    ) from exc
            self._client = httpx.Client(
                transport=self._transport, verify=verify, timeout=self._timeout,
                follow_redirects=False, headers={"Accept": "application/json"},
            )
        return self._client

    def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            response = self._http().get(url)
        except httpx.HTTPError as exc:
            raise SigningKeysUnavailableError(
                f"cannot fetch the {what} {url}: {type(exc).__name__}: {exc}; check "
                "auth.authority and auth.tenant_id, network access to the authority, and "
                "auth.ca_bundle when the authority uses a private CA (the emulator)",
                expected={"url": url}, received={"failure": f"{type(exc).__name__}: {exc}"},
            ) from exc
        if response.status_code != 200:
            raise SigningKeysUnavailableError(
                f"the {what} {url} answered HTTP {response.status_code}; check auth.authority "
                f"({self.authority}) and auth.tenant_id ({self.tenant_id})",
                expected={"url": url, "status": 200},
                received={"status": response.status_code},
            )
        try:
            body = json.loads(response.content)
        except (ValueError, RecursionError) as exc:
            raise SigningKeysUnavailableError(
                f"the {what} {url} is not JSON: {exc}",
                expected={"url": url, "content": "JSON"}, received={"failure": str(exc)},
            ) from exc
        if not isinstance(body, dict):
            raise SigningKeysUnavailableError(
                f"the {what} {url} is not a JSON object",
                expected={"url": url, "content": "a JSON object"},
                received={"content": type(body).__name__},
            )
        return body

    def _discover(self) -> None:
        found: list[tuple[str, str]] = []
        for url in self.discovery_urls:
            doc = self._get_json(url, "OpenID discovery document")
            issuer, jwks_uri = doc.get("issuer"), doc.get("jwks_uri")
            if not isinstance(issuer, str) or not issuer or not isinstance(jwks_uri, str) or (
                not jwks_uri.startswith(("https://", "http://"))
            ):
                raise SigningKeysUnavailableError(
                    f"the OpenID discovery document {url} lacks a string 'issuer' or an http(s) "
                    "'jwks_uri'",
                    expected={"url": url, "members": ["issuer", "jwks_uri"]},
                    received={"issuer": issuer, "jwks_uri": jwks_uri},
                )
            found.append((issuer, jwks_uri))
        (v1_issuer, v1_jwks), (v2_issuer, v2_jwks) = found
        self._issuers = TenantIssuers(v1=v1_issuer, v2=v2_issuer)
        self._jwks_uris = tuple(dict.fromkeys((v1_jwks, v2_jwks)))

    def _refresh(self, reason: str) -> None:
        if self._issuers is None:
            self._discover()
        keys: dict[str, RSAPublicKey] = {}
        conflicting: set[str] = set()
        for url in self._jwks_uris:
            for kid, key in _parse_jwks(self._get_json(url, "JWKS"), url).items():
                existing = keys.get(kid)
                if existing is not None and existing.public_numbers() != key.public_numbers():
                    conflicting.add(kid)
                keys[kid] = key
        for kid in conflicting:
            # Two different keys under one kid: trust neither rather than guess.
            log.warning("kid %r names different keys in %s; ignoring it", kid, self._jwks_uris)
            del keys[kid]
        self._snapshot = _Snapshot(keys=keys, fetched_at=self._clock())
        self.refresh_count += 1
        log.info("signing keys of tenant %s refreshed (%s): %d keys %s", self.tenant_id, reason,
                 len(keys), sorted(keys))


def _parse_jwks(body: dict[str, Any], url: str) -> dict[str, RSAPublicKey]:
    """RSA signing keys by kid; keys that are not usable RSA public keys are skipped."""
    entries = body.get("keys")
    if not isinstance(entries, list):
        raise SigningKeysUnavailableError(
            f"the JWKS {url} has no 'keys' list",
            expected={"url": url, "members": ["keys"]}, received={"keys": type(entries).__name__},
        )
    keys: dict[str, RSAPublicKey] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        kid = entry.get("kid")
        if entry.get("kty") != "RSA" or entry.get("use", "sig") != "sig" or not isinstance(
            kid, str
        ) or "d" in entry:
            continue
        try:
            key = RSAAlgorithm.from_jwk(entry)
        except (PyJWTError, ValueError, TypeError, KeyError) as exc:
            log.warning("skipping key %r of %s: %s", kid, url, exc)
            continue
        if not isinstance(key, RSAPublicKey) or key.key_size < MIN_KEY_BITS:
            log.warning("skipping key %r of %s: not an RSA public key of at least %d bits",
                        kid, url, MIN_KEY_BITS)
            continue
        keys[kid] = key
    return keys
