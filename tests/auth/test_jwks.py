"""JwksCache: issuers and keys from discovery, refresh on an unknown kid, rate limiting,
thread safety, and no I/O before first use."""

from __future__ import annotations

import gc
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tenantops.auth import JwksCache, TokenValidator
from tenantops.emulator.directory import Directory
from tenantops.emulator.server import EmulatorInfo, EmulatorServer
from tenantops.errors import SigningKeysUnavailableError, UnknownSigningKeyError
from tests.auth.support import (
    API_CLIENT_ID,
    CountingTransport,
    FakeClock,
    FakeEntra,
    Forge,
    auth_settings,
    mi_token,
    public_jwk,
    ssl_context,
)


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def entra_key() -> rsa.RSAPrivateKey:
    return _key()


@pytest.fixture
def entra(entra_key: rsa.RSAPrivateKey) -> FakeEntra:
    return FakeEntra(str(uuid.uuid4()), {"key-1": entra_key})


def _counting(info: EmulatorInfo) -> CountingTransport:
    return CountingTransport(httpx.HTTPTransport(verify=ssl_context(info)))


def _cache(info: EmulatorInfo, transport: httpx.BaseTransport, clock: FakeClock,
           min_refresh: float = 60.0) -> JwksCache:
    return JwksCache(info.authority, info.tenant_id, min_refresh_seconds=min_refresh,
                     transport=transport, clock=clock)


class Refusing(httpx.BaseTransport):
    def handle_request(self, request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"unexpected request to {request.url}")


def test_constructing_does_no_io(emulator: EmulatorInfo) -> None:
    jwks = JwksCache(emulator.authority, emulator.tenant_id, transport=Refusing(),
                     ca_bundle="/nonexistent/ca.pem")
    TokenValidator(auth_settings(emulator), jwks=jwks)

    assert jwks.known_kids() == ()
    assert jwks.refresh_count == 0


def test_issuers_come_from_the_emulators_discovery_documents(emulator: EmulatorInfo) -> None:
    transport = _counting(emulator)
    jwks = _cache(emulator, transport, FakeClock())

    issuers = jwks.issuers()

    base = f"{emulator.authority}/{emulator.tenant_id}"
    assert issuers.all() == (f"{base}/", f"{base}/v2.0")
    assert jwks.jwks_uris == (f"{base}/discovery/keys", f"{base}/discovery/v2.0/keys")
    assert transport.paths == [
        f"/{emulator.tenant_id}/.well-known/openid-configuration",
        f"/{emulator.tenant_id}/v2.0/.well-known/openid-configuration",
        f"/{emulator.tenant_id}/discovery/keys",
        f"/{emulator.tenant_id}/discovery/v2.0/keys",
    ]
    jwks.close()


def test_real_entra_issuers_are_sts_windows_net_and_login_v2(entra: FakeEntra) -> None:
    jwks = JwksCache.from_settings(entra.settings(), transport=entra.transport)

    issuers = jwks.issuers()

    assert issuers.v1 == f"https://sts.windows.net/{entra.tenant}/"
    assert issuers.v2 == f"https://login.microsoftonline.com/{entra.tenant}/v2.0"


def test_unknown_kid_refreshes_at_most_once_per_interval(emulator: EmulatorInfo) -> None:
    transport, clock = _counting(emulator), FakeClock()
    jwks = _cache(emulator, transport, clock, min_refresh=60)

    assert jwks.key("made-up-1") is None
    for n in range(5):
        clock.advance(10)
        assert jwks.key(f"made-up-{n + 2}") is None
    assert jwks.refresh_count == 1
    clock.advance(11)
    assert jwks.key("made-up-7") is None

    assert jwks.refresh_count == 2
    assert transport.jwks_fetches() == 4
    jwks.close()


def test_known_kid_is_served_from_memory(emulator: EmulatorInfo) -> None:
    transport, clock = _counting(emulator), FakeClock()
    jwks = _cache(emulator, transport, clock, min_refresh=0)
    jwks.issuers()
    real = jwks.known_kids()[0]
    requests = len(transport.paths)

    for _ in range(100):
        assert jwks.key(real) is not None

    assert len(transport.paths) == requests
    jwks.close()


def test_keys_older_than_max_age_are_refreshed(emulator: EmulatorInfo) -> None:
    transport, clock = _counting(emulator), FakeClock()
    jwks = JwksCache(emulator.authority, emulator.tenant_id, transport=transport, clock=clock,
                     max_age_seconds=3600)
    jwks.issuers()
    kid = jwks.known_kids()[0]

    clock.advance(3601)

    assert jwks.key(kid) is not None
    assert jwks.refresh_count == 2
    jwks.close()


def test_concurrent_lookups_of_an_unknown_kid_fetch_once(emulator: EmulatorInfo) -> None:
    transport = _counting(emulator)
    jwks = _cache(emulator, transport, FakeClock())
    start = threading.Barrier(8)
    results: list[object] = []

    def look_up() -> None:
        start.wait()
        results.append(jwks.key("made-up"))

    threads = [threading.Thread(target=look_up) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results == [None] * 8
    assert jwks.refresh_count == 1
    assert len(transport.paths) == 4
    jwks.close()


def test_unreachable_authority_is_reported_with_the_url_and_retried_later(
    entra: FakeEntra,
) -> None:
    clock = FakeClock()
    entra.status = 503
    jwks = JwksCache.from_settings(entra.settings(), transport=entra.transport, clock=clock)

    with pytest.raises(SigningKeysUnavailableError) as first:
        jwks.key("key-1")
    with pytest.raises(SigningKeysUnavailableError) as second:
        jwks.key("key-1")
    entra.status = 200
    clock.advance(61)
    key = jwks.key("key-1")

    url = f"{entra.authority}/{entra.tenant}/.well-known/openid-configuration"
    assert f"the OpenID discovery document {url} answered HTTP 503" in str(first.value)
    assert "next attempt in 60 s" in str(second.value)
    assert len(entra.transport.paths) == 1 + 4
    assert key is not None


def test_failed_refresh_keeps_known_keys_but_cannot_rule_on_a_new_kid(
    entra: FakeEntra,
) -> None:
    clock = FakeClock()
    jwks = JwksCache.from_settings(entra.settings(), transport=entra.transport, clock=clock)
    assert jwks.key("key-1") is not None
    entra.status = 500
    clock.advance(61)

    with pytest.raises(SigningKeysUnavailableError):
        jwks.key("key-2")
    assert jwks.key("key-1") is not None


def test_keys_that_are_not_usable_rsa_signing_keys_are_skipped(
    entra: FakeEntra, entra_key: rsa.RSAPrivateKey
) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    encryption = {**public_jwk(entra_key, "enc-key"), "use": "enc"}
    private = {**public_jwk(entra_key, "private-key"), "d": "AQAB"}
    curve = ec.generate_private_key(ec.SECP256R1()).public_key().public_numbers()
    ec_key = {"kty": "EC", "kid": "ec-key", "crv": "P-256", "x": str(curve.x), "y": "0"}
    broken = {"kty": "RSA", "kid": "broken-key", "n": "!!", "e": "AQAB"}
    entra.v1_jwks = entra.v2_jwks = [
        public_jwk(entra_key, "key-1"), public_jwk(weak, "weak-key"), encryption, private,
        ec_key, broken, {"kty": "RSA"}, "not an object",  # type: ignore[list-item]
    ]
    jwks = JwksCache.from_settings(entra.settings(), transport=entra.transport)

    jwks.issuers()

    assert jwks.known_kids() == ("key-1",)


def test_a_kid_naming_two_different_keys_is_trusted_for_neither(
    entra: FakeEntra, entra_key: rsa.RSAPrivateKey
) -> None:
    entra.v1_jwks = [public_jwk(entra_key, "key-1"), public_jwk(entra_key, "same")]
    entra.v2_jwks = [public_jwk(entra_key, "key-1"), public_jwk(_key(), "same")]
    jwks = JwksCache.from_settings(entra.settings(), transport=entra.transport)

    jwks.issuers()

    assert jwks.known_kids() == ("key-1",)


@pytest.fixture(scope="module")
def rotating_emulator(
    tmp_path_factory: pytest.TempPathFactory, directory: Directory
) -> Iterator[EmulatorServer]:
    """Its own emulator, so rotating keys disturbs no other test; retired keys leave the JWKS
    at once (no grace period)."""
    server = EmulatorServer(directory, Path(tmp_path_factory.mktemp("rotating")),
                            key_grace_seconds=0)
    server.start()
    yield server
    gc.collect()
    server.stop()


@pytest.fixture
def closing() -> Iterator[list[JwksCache]]:
    """Caches registered here are closed after the test, pass or fail."""
    caches: list[JwksCache] = []
    yield caches
    for cache in caches:
        cache.close()


def _validator(
    server: EmulatorServer, clock: FakeClock, closing: list[JwksCache], min_refresh: float = 60
) -> TokenValidator:
    settings = auth_settings(server.info, jwks_min_refresh_seconds=min_refresh)
    jwks = JwksCache.from_settings(
        settings, transport=httpx.HTTPTransport(verify=ssl_context(server.info)), clock=clock)
    closing.append(jwks)
    return TokenValidator(settings, jwks=jwks)


def test_rotated_key_is_fetched_when_a_token_signed_with_it_arrives(
    rotating_emulator: EmulatorServer, closing: list[JwksCache]
) -> None:
    clock = FakeClock()
    validator = _validator(rotating_emulator, clock, closing)
    validator.validate(mi_token(rotating_emulator, "aa-onboarding", API_CLIENT_ID))
    fetched = rotating_emulator.state.stats["jwks"]
    clock.advance(61)

    rotating_emulator.state.keys.rotate()
    principal = validator.validate(mi_token(rotating_emulator, "aa-onboarding", API_CLIENT_ID))

    assert principal.roles == ("Tenants.Read", "Tenants.Write")
    assert rotating_emulator.state.stats["jwks"] - fetched == 2
    assert validator.jwks.refresh_count == 2


def test_remembered_token_is_refused_once_its_key_is_withdrawn(
    rotating_emulator: EmulatorServer, closing: list[JwksCache]
) -> None:
    validator = _validator(rotating_emulator, FakeClock(), closing, min_refresh=0)
    old = mi_token(rotating_emulator, "aa-onboarding", API_CLIENT_ID)
    validator.validate(old)

    rotating_emulator.state.keys.rotate()
    validator.validate(mi_token(rotating_emulator, "aa-onboarding", API_CLIENT_ID))

    with pytest.raises(UnknownSigningKeyError):
        validator.validate(old)


def test_made_up_kids_cause_at_most_one_jwks_fetch_per_interval(
    emulator_server: EmulatorServer, closing: list[JwksCache]
) -> None:
    clock = FakeClock()
    validator = _validator(emulator_server, clock, closing)
    forge = Forge(emulator_server)
    validator.validate(forge.token())
    fetched = emulator_server.state.stats["jwks"]

    for _ in range(120):
        clock.advance(1)
        with pytest.raises(UnknownSigningKeyError):
            validator.validate(forge.sign(forge.claims(), kid=str(uuid.uuid4())))

    assert emulator_server.state.stats["jwks"] - fetched == 2 * 2
    assert validator.jwks.refresh_count == 3
