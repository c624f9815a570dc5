"""The token cache: one request per token lifetime, refreshed before expiry, single-flight."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import pytest

from tenantops.errors import TokenRequestError
from tenantops.identity import Audience, BearerToken, TokenCache, refresh_time

AUDIENCE = Audience("api://5f9d1b7c-2a4e-4c1d-9b3a-7e6f0a1c2d3e")
START = 1_800_000_000.0


@dataclass
class Clock:
    now: float = START

    def __call__(self) -> float:
        return self.now


@dataclass
class CountingProvider:
    """Issues ``lifetime``-second tokens on the injected clock; can fail or be slow on demand."""

    clock: Clock
    lifetime: int = 3600
    refresh_in: int | None = None
    delay: float = 0.0
    fail: bool = False
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get_token(self, audience: Audience) -> BearerToken:
        with self.lock:
            self.requests += 1
            number = self.requests
        if self.delay:
            time.sleep(self.delay)
        if self.fail:
            raise TokenRequestError("the identity endpoint is down")
        now = int(self.clock())
        refresh_on = now + self.refresh_in if self.refresh_in else None
        return BearerToken(f"token-{number}", now + self.lifetime, refresh_on, "fake")


def test_one_request_serves_every_call_until_refresh_time() -> None:
    clock = Clock()
    provider = CountingProvider(clock)
    cache = TokenCache(provider, AUDIENCE, clock=clock)
    assert {cache.token().value for _ in range(100)} == {"token-1"}
    assert provider.requests == 1


def test_short_lived_token_is_refreshed_five_minutes_before_expiry() -> None:
    clock = Clock()
    provider = CountingProvider(clock, lifetime=3600)
    cache = TokenCache(provider, AUDIENCE, clock=clock)
    cache.token()
    clock.now = START + 3600 - 301
    assert cache.token().value == "token-1"
    clock.now = START + 3600 - 300
    assert cache.token().value == "token-2"
    assert provider.requests == 2


def test_long_lived_managed_identity_token_is_refreshed_at_half_life() -> None:
    clock = Clock()
    provider = CountingProvider(clock, lifetime=86700)  # 24 h 5 min, as MI tokens live
    cache = TokenCache(provider, AUDIENCE, clock=clock)
    cache.token()
    clock.now = START + 43349
    assert cache.token().value == "token-1"
    clock.now = START + 43350
    assert cache.token().value == "token-2"


def test_the_sources_refresh_on_is_honoured_when_earlier() -> None:
    clock = Clock()
    provider = CountingProvider(clock, lifetime=3600, refresh_in=600)
    cache = TokenCache(provider, AUDIENCE, clock=clock)
    cache.token()
    clock.now = START + 600
    assert cache.token().value == "token-2"


def test_refresh_time_rules() -> None:
    short = BearerToken("t", int(START) + 3600)
    long = BearerToken("t", int(START) + 86400)
    hinted = BearerToken("t", int(START) + 86400, refresh_on=int(START) + 100)
    assert refresh_time(short, START) == START + 3300
    assert refresh_time(long, START) == START + 43200
    assert refresh_time(hinted, START) == START + 100


def test_a_failed_refresh_keeps_using_the_still_valid_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    provider = CountingProvider(clock, lifetime=86700)
    cache = TokenCache(provider, AUDIENCE, clock=clock)
    cache.token()
    clock.now = START + 50000
    provider.fail = True
    assert cache.token().value == "token-1"
    assert "token refresh for api://5f9d1b7c-2a4e-4c1d-9b3a-7e6f0a1c2d3e failed; using the " \
        "current token, which expires in 10 h 11 min" in caplog.text
    assert "token-1" not in caplog.text
    provider.fail = False
    assert cache.token().value == "token-3"


def test_an_expired_token_is_never_returned_when_refresh_fails() -> None:
    clock = Clock()
    provider = CountingProvider(clock, lifetime=3600)
    cache = TokenCache(provider, AUDIENCE, clock=clock)
    cache.token()
    clock.now = START + 3500
    provider.fail = True
    with pytest.raises(TokenRequestError, match="the identity endpoint is down"):
        cache.token()


def test_concurrent_first_calls_make_a_single_request() -> None:
    clock = Clock()
    provider = CountingProvider(clock, delay=0.2)
    cache = TokenCache(provider, AUDIENCE, clock=clock)
    barrier = threading.Barrier(20)
    seen: list[str] = []

    def worker() -> None:
        barrier.wait()
        seen.append(cache.token().value)

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert provider.requests == 1
    assert set(seen) == {"token-1"}


def test_during_a_refresh_other_threads_keep_the_current_token() -> None:
    clock = Clock()
    provider = CountingProvider(clock, lifetime=86700)
    cache = TokenCache(provider, AUDIENCE, clock=clock)
    cache.token()
    clock.now = START + 50000
    provider.delay = 0.3
    refresher = threading.Thread(target=cache.token)
    refresher.start()
    time.sleep(0.05)
    started = time.monotonic()
    assert cache.token().value == "token-1"
    assert time.monotonic() - started < 0.2, "a reader waited for the refresh"
    refresher.join()
    assert cache.token().value == "token-2"
    assert provider.requests == 2


def test_invalidate_forces_a_new_request() -> None:
    clock = Clock()
    provider = CountingProvider(clock)
    cache = TokenCache(provider, AUDIENCE, clock=clock)
    cache.token()
    cache.invalidate()
    assert cache.token().value == "token-2"


def test_bearer_token_repr_never_shows_the_token() -> None:
    token = BearerToken("eyJhbGciOi.secret.part", 1, None, "fake")
    assert "secret" not in repr(token)
    assert "secret" not in str(token)
