"""The managed-identity token cache of Azure's back end, as App Service users meet it.

Microsoft: "The back-end services for managed identities maintain a cache per resource URI for
around 24 hours. If you update the access policy of a particular target resource and
immediately retrieve a token for that resource, you may continue to get a cached token with
outdated permissions until that token expires. There's currently no way to force a token
refresh." (App Service docs, overview-managed-identity; the managed identities FAQ, "Are
managed identities tokens cached?", says the same of managed identities in general.)

That is the cause of "I assigned the role and still get 403". The emulator serves, per
endpoint family, identity and resource, the token it issued first until the cache age passes
(default 24 h) or too little of its lifetime is left, and says so in ``x-tenantops-diagnostic``
(which Azure does not send): when the token was issued, which roles it carries and which the
identity holds now. Which families cache is a setting (docs/decisions.md, 2026-12-06): by
default App Service (and Functions, Container Apps, its 2017 MSI endpoint); IMDS, Arc,
Automation and Azure ML only when configured.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from tenantops.emulator.tokens import IssuedToken

__all__ = [
    "APP_SERVICE_CACHE",
    "CACHE_FAMILIES",
    "MIN_LIFETIME_LEFT",
    "NO_CACHE",
    "CacheFamily",
    "ManagedIdentityTokenCache",
    "TokenCachePolicy",
]

CacheFamily = Literal["app-service", "automation", "imds", "arc", "azure-ml"]
CACHE_FAMILIES: tuple[CacheFamily, ...] = ("app-service", "automation", "imds", "arc", "azure-ml")
MIN_LIFETIME_LEFT = 600
"""A cached token is not served with less than ten minutes left: clients treat a token with
under five minutes left as expired (msal ``managed_identity.py``) and would ask again at once.
Azure's own margin is unconfirmed."""


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _span(seconds: float) -> str:
    minutes = int(seconds) // 60
    if minutes < 1:
        return f"{int(seconds)} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


@dataclass(frozen=True)
class TokenCachePolicy:
    """How long, and on which managed-identity endpoints, a token is served again."""

    hours: float = 24.0
    families: frozenset[CacheFamily] = frozenset({"app-service"})

    def caches(self, family: CacheFamily) -> bool:
        return self.hours > 0 and family in self.families

    def describe(self) -> str:
        if self.hours <= 0 or not self.families:
            return "off"
        return f"{self.hours:g} h on {', '.join(sorted(self.families))}"


NO_CACHE = TokenCachePolicy(0.0, frozenset())
APP_SERVICE_CACHE = TokenCachePolicy()
"""The default of ``tenantops emulator`` (``emulator.mi_token_cache_*`` settings)."""


@dataclass
class ManagedIdentityTokenCache:
    """Tokens by (endpoint family, identity client ID, resource as asked). Thread-safe."""

    policy: TokenCachePolicy = NO_CACHE
    clock: Callable[[], float] = time.time
    _tokens: dict[tuple[str, str, str], IssuedToken] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, family: CacheFamily, client_id: str, resource: str) -> IssuedToken | None:
        if not self.policy.caches(family):
            return None
        key = (family, client_id.lower(), resource)
        now = self.clock()
        with self._lock:
            token = self._tokens.get(key)
            if token is None:
                return None
            fresh = (now - token.not_before < self.policy.hours * 3600
                     and token.expires_on - now > MIN_LIFETIME_LEFT)
            if not fresh:
                del self._tokens[key]
                return None
            return token

    def put(self, family: CacheFamily, client_id: str, resource: str, token: IssuedToken) -> None:
        if self.policy.caches(family):
            with self._lock:
                self._tokens[(family, client_id.lower(), resource)] = token

    def renewal_time(self, token: IssuedToken) -> float:
        """When a token stops being served from the cache."""
        return min(token.not_before + self.policy.hours * 3600,
                   token.expires_on - MIN_LIFETIME_LEFT)

    def served_diagnostic(self, family: CacheFamily, token: IssuedToken,
                          roles_now: Sequence[str]) -> str:
        """``x-tenantops-diagnostic`` for a token served from the cache."""
        now = self.clock()
        in_token = token.claims.get("roles") or []
        changed = "" if list(in_token) == list(roles_now) else (
            " (different: role assignments changed after this token was issued)")
        return (
            f"cached token served: issued at {_iso(token.not_before)} "
            f"({_span(now - token.not_before)} ago) for resource {token.resource}; the "
            f"{family} managed-identity endpoint serves an identity the same token for a "
            f"resource for up to {self.policy.hours:g} h (Azure: 'around 24 hours', no forced "
            f"refresh), so role assignments made after it was issued are not in it; roles in "
            f"the token: {', '.join(in_token) or '(none)'}; roles assigned now: "
            f"{', '.join(roles_now) or '(none)'}{changed}; a new token is issued after "
            f"{_iso(self.renewal_time(token))}")

    def issued_diagnostic(self, family: CacheFamily, token: IssuedToken) -> str:
        """``x-tenantops-diagnostic`` for a token just issued and now cached."""
        return (f"new token issued at {_iso(token.not_before)}; the {family} managed-identity "
                f"endpoint serves it again for this identity and resource until "
                f"{_iso(self.renewal_time(token))} (cache {self.policy.hours:g} h)")
