"""`TokenCache`: one token request per token lifetime, however many threads ask.

Refresh policy (msal's, shared reference §2): a token is refreshed 5 minutes before it expires,
or at half its lifetime when it lives 2 hours or more (managed-identity tokens live about 24 h
and the endpoint caches them, so half-life leaves room to recover from a failing refresh), or
at the ``refresh_on`` the source suggested, whichever comes first. While a refresh runs, other
threads keep using the current token if it is still valid; if the refresh fails and the current
token is still valid, the current token is used and the next call tries again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from tenantops.identity._audience import Audience
from tenantops.identity._credential import BearerToken, TokenProvider
from tenantops.identity._token import describe_expiry

__all__ = ["EXPIRY_MARGIN", "LONG_LIVED", "TokenCache", "refresh_time"]

log = logging.getLogger("tenantops.identity")

EXPIRY_MARGIN = 300
"""Seconds before ``exp`` at which a token counts as expired for sending."""
LONG_LIVED = 7200
"""Tokens living at least this long are refreshed at half-life."""


def refresh_time(token: BearerToken, fetched_at: float) -> float:
    """When ``token``, obtained at ``fetched_at``, should be replaced."""
    due = float(token.expires_on - EXPIRY_MARGIN)
    lifetime = token.expires_on - fetched_at
    if lifetime >= LONG_LIVED:
        due = min(due, fetched_at + lifetime / 2)
    if token.refresh_on is not None:
        due = min(due, token.refresh_on)
    return due


@dataclass(frozen=True)
class _Entry:
    token: BearerToken
    refresh_at: float


class TokenCache:
    """Caches ``provider``'s token for ``audience``; `token` is safe to call from any thread.

    ``clock`` returns epoch seconds (inject one in tests). Construction does no I/O.
    """

    def __init__(
        self,
        provider: TokenProvider,
        audience: Audience,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.audience = audience
        self._provider = provider
        self._clock = clock
        self._entry: _Entry | None = None
        self._refreshing = False
        self._changed = threading.Condition()

    def _usable(self, entry: _Entry | None, now: float) -> bool:
        return entry is not None and now < entry.token.expires_on - EXPIRY_MARGIN

    def token(self) -> BearerToken:
        """The cached token, or a new one (exactly one request, whatever the concurrency)."""
        with self._changed:
            while True:
                now = self._clock()
                entry = self._entry
                if entry is not None and now < entry.refresh_at:
                    return entry.token
                if not self._refreshing:
                    self._refreshing = True
                    break
                if self._usable(entry, now):
                    assert entry is not None
                    return entry.token  # someone else is refreshing; this one is still good
                self._changed.wait()
        try:
            fetched_at = self._clock()
            fresh = self._provider.get_token(self.audience)
        except BaseException:
            with self._changed:
                self._refreshing = False
                self._changed.notify_all()
                now = self._clock()
                if self._usable(entry, now):
                    assert entry is not None
                    log.warning("token refresh for %s failed; using the current token, which %s",
                                self.audience.resource, describe_expiry(entry.token.expires_on,
                                                                        now))
                    return entry.token
            raise
        with self._changed:
            self._entry = _Entry(fresh, refresh_time(fresh, fetched_at))
            self._refreshing = False
            self._changed.notify_all()
        return fresh

    def invalidate(self) -> None:
        """Forget the cached token; the next `token` call fetches a new one."""
        with self._changed:
            self._entry = None
