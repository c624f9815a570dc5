"""The provider contract every provider implements, embedded or real.

A provider makes one kind of resource exist (``ensure``), go away (``remove``), or reports
what exists (``observe``). The public methods are template methods in the octodns manner:
they check the resource is one the provider supports, run the call through any middleware
(call logs, fault injection in tests), log it, and translate whatever escapes the
implementation into a `ProviderError`. Subclasses implement ``_ensure``, ``_remove`` and
``_observe`` only.

The contract subclasses must keep:

- ``_ensure`` and ``_remove`` are idempotent: calling them again after success changes
  nothing and succeeds; ``_remove`` of something already gone succeeds.
- An operation that takes long (certificate issuance, DNS propagation) returns `Pending`
  with a hint of when to look again; it never blocks for minutes.
- A fault worth retrying (HTTP 429, 5xx, timeouts, connection resets) raises
  `TransientProviderError`; anything else raises `PermanentProviderError` with a message that
  says what failed, with which values, and what to do.
- Constructors do no I/O; connect, create folders and read files on first use.
- Outputs are JSON values and never contain a secret's value.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.utils
import errno
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

from tenantops.errors import (
    PermanentProviderError,
    ProviderError,
    TenantOpsError,
    TransientProviderError,
)

__all__ = [
    "EmbeddedService",
    "Middleware",
    "Outcome",
    "Pending",
    "Provider",
    "ProviderCall",
    "ProviderKind",
    "Ready",
    "Resource",
    "Verb",
    "retry_after_seconds",
]

log = logging.getLogger("tenantops.provisioning.providers")

ProviderKind = Literal["catalog", "secrets", "database", "dns", "webhost", "organization",
                       "custom"]
Verb = Literal["ensure", "remove"]

# A full disk (ENOSPC, EDQUOT) clears when space is freed: worth retrying, like a reset.
_TRANSIENT_ERRNOS = frozenset({
    errno.ECONNRESET, errno.ECONNREFUSED, errno.ECONNABORTED, errno.ETIMEDOUT,
    errno.EAGAIN, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EPIPE, errno.ENOSPC,
    errno.EDQUOT,
})


@dataclass(frozen=True)
class Resource:
    """A resource a provider manages; subclasses are frozen dataclasses of JSON values."""

    @property
    def key(self) -> str:
        """A short, stable name for logs, call logs and previews (``dns:CNAME:a.b.c``)."""
        raise NotImplementedError

    def desired(self) -> dict[str, Any]:
        """The state ``ensure`` converges to, compared with ``observe`` in previews."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Ready:
    """The resource is in the desired state; ``outputs`` describe it (never secrets).
    ``message``: what the provider has to say about it, shown on the step (a command step's
    redacted output)."""

    outputs: Mapping[str, Any] = field(default_factory=dict)
    changed: bool = True
    message: str | None = None


@dataclass(frozen=True)
class Pending:
    """Not done yet (issuing, propagating, waiting for a customer's DNS records): call
    ``ensure`` again after ``retry_after`` s.

    ``reason`` says what is still missing; it becomes the step's error if the wait expires.
    ``timeout_seconds`` is the longest the resource may stay pending, counted from the step's
    first `Pending` in this attempt chain (``runs retry`` starts a new one); None: the
    engine's ``engine.pending_timeout_seconds``. A wait longer than
    ``engine.long_wait_seconds`` holds no worker thread (the run continues in a delayed
    workflow), so ``retry_after`` and ``timeout_seconds`` may be hours and days."""

    reason: str
    retry_after: float
    timeout_seconds: float | None = None


Outcome = Ready | Pending


@dataclass(frozen=True)
class ProviderCall:
    """One call of a provider action, as middleware sees it."""

    provider: Provider
    verb: Verb
    resource: Resource


Middleware = Callable[[ProviderCall, Callable[[], Outcome]], Outcome]
"""Wraps a provider call: receives the call and ``proceed``; returns ``proceed()``'s outcome,
or raises instead of calling it (fault injection)."""


class EmbeddedService(Protocol):
    """A server an embedded provider needs running (DNS responder, TLS edge, sample app)."""

    @property
    def name(self) -> str: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


class Provider(ABC):
    """Base of every provider. Subclasses set ``kind``, ``name`` and ``resource_types``."""

    kind: ClassVar[ProviderKind]
    name: ClassVar[str]
    resource_types: ClassVar[tuple[type[Resource], ...]]

    def __init__(self) -> None:
        self._middleware: tuple[Middleware, ...] = ()

    @property
    def label(self) -> str:
        """``kind:name``, as step records and messages show it."""
        return f"{self.kind}:{self.name}"

    def use(self, middleware: Sequence[Middleware]) -> None:
        """Run every later call through ``middleware`` (first listed = outermost)."""
        self._middleware = tuple(middleware)

    def services(self) -> list[EmbeddedService]:
        """Servers this provider needs running in the worker; none for real providers."""
        return []

    def ensure(self, resource: Resource) -> Outcome:
        """Create or converge ``resource``; `Ready` with outputs, or `Pending`."""
        return self._call("ensure", resource, self._ensure)

    def remove(self, resource: Resource) -> Outcome:
        """Delete ``resource``; succeeds when it is already gone."""
        return self._call("remove", resource, self._remove)

    def observes(self, resource: Resource) -> bool:
        """Whether `observe` can tell what exists of ``resource`` (a command step that
        declares no observe cannot; previews then show ``check``)."""
        return True

    def observe(self, resource: Resource) -> dict[str, Any] | None:
        """What exists of ``resource`` now (``None``: nothing), for previews and drift."""
        self._check_supported(resource)
        try:
            return self._observe(resource)
        except ProviderError as exc:
            raise self._annotated(exc, "observe", resource) from None
        except Exception as exc:
            raise self._translated(exc, "observe", resource) from exc

    @abstractmethod
    def _ensure(self, resource: Resource) -> Outcome: ...

    @abstractmethod
    def _remove(self, resource: Resource) -> Outcome: ...

    @abstractmethod
    def _observe(self, resource: Resource) -> dict[str, Any] | None: ...

    def _check_supported(self, resource: Resource) -> None:
        if not isinstance(resource, self.resource_types):
            supported = ", ".join(t.__name__ for t in self.resource_types)
            raise PermanentProviderError(
                f"provider {self.label} does not manage {type(resource).__name__} resources "
                f"(it manages {supported}); check which provider the plan step names",
                provider=self.label, resource=getattr(resource, "key", ""),
            )

    def _call(
        self, verb: Verb, resource: Resource, implementation: Callable[[Resource], Outcome]
    ) -> Outcome:
        self._check_supported(resource)

        def proceed() -> Outcome:
            try:
                return implementation(resource)
            except ProviderError as exc:
                raise self._annotated(exc, verb, resource) from None
            except Exception as exc:
                raise self._translated(exc, verb, resource) from exc

        call = ProviderCall(self, verb, resource)
        chained: Callable[[], Outcome] = proceed
        for middleware in reversed(self._middleware):
            chained = _bind(middleware, call, chained)
        started = time.perf_counter()
        try:
            outcome = chained()
        except ProviderError as exc:
            log.info("%s %s %s failed: %s", self.label, verb, resource.key, exc)
            raise self._annotated(exc, verb, resource) from None
        elapsed_ms = (time.perf_counter() - started) * 1000
        if isinstance(outcome, Pending):
            log.info("%s %s %s pending (%s, again in %.1fs)", self.label, verb, resource.key,
                     outcome.reason, outcome.retry_after)
        else:
            log.debug("%s %s %s %s in %.1f ms", self.label, verb, resource.key,
                      "changed" if outcome.changed else "unchanged", elapsed_ms)
        return outcome

    def _annotated(self, exc: ProviderError, verb: str, resource: Resource) -> ProviderError:
        exc.provider = exc.provider or self.label
        exc.action = exc.action or verb
        exc.resource = exc.resource or resource.key
        return exc

    def _translated(self, exc: Exception, verb: str, resource: Resource) -> ProviderError:
        """Turn an exception the implementation let escape into a `ProviderError`."""
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        message = f"{self.label} could not {verb} {resource.key}: {detail}"
        transient = isinstance(exc, (TimeoutError, ConnectionError)) or (
            isinstance(exc, OSError) and exc.errno in _TRANSIENT_ERRNOS
        )
        if transient:
            return TransientProviderError(
                message, provider=self.label, action=verb, resource=resource.key
            )
        if isinstance(exc, TenantOpsError):
            message = f"{self.label} could not {verb} {resource.key}: {exc}"
        return PermanentProviderError(
            message, provider=self.label, action=verb, resource=resource.key
        )


def _bind(
    middleware: Middleware, call: ProviderCall, proceed: Callable[[], Outcome]
) -> Callable[[], Outcome]:
    return lambda: middleware(call, proceed)


def retry_after_seconds(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """The wait an HTTP ``Retry-After`` header asks for, in seconds (RFC 9110 §10.2.3: a
    number of seconds, or an HTTP date); None when absent or unreadable, never negative."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    current = now or dt.datetime.now(dt.timezone.utc)
    return max(0.0, (when - current).total_seconds())
