"""Every error tenantops raises on purpose derives from one root, `TenantOpsError`.

Messages answer three questions: what failed, with which values, and what to do next.
Third-party exceptions are translated at the boundary (``raise ... from exc``) so a caller
never has to catch a library's exception type.

    TenantOpsError
    ├── ConfigError                  a setting is missing or invalid; names the setting
    ├── EmulatorError                the local Entra ID / managed-identity emulator
    │   └── DirectoryError           the emulator's directory file is invalid
    ├── IdentityError                client side: getting a token (tenantops.identity)
    │   ├── AudienceError            the audience given cannot be turned into a resource/scope
    │   ├── AudienceDiscoveryError   the API did not say which audience it expects
    │   │   └── UntrustedAudienceError   the API asked for an audience tenantops will not
    │   │                                request on its say-so (a first-party Microsoft
    │   │                                resource, or not a client ID / api:// URI)
    │   ├── CredentialUnavailableError   no identity source could even be tried
    │   ├── TokenRequestError        a source was tried and the identity platform refused
    │   ├── InsecureTransportError   a bearer token would go over plain http to another host
    │   └── CallRejectedError        the API answered 401/403; carries token vs expectation
    ├── ApiUnreachableError          the API could not be reached (DNS, connection, timeout)
    ├── ApiRedirectedError           the API answered a redirect; no token follows it
    ├── CatalogError                 the tenant catalog (tenantops.catalog) could not be used
    │   ├── TenantNotFoundError      no tenant has that slug
    │   ├── RunNotFoundError         no run has that ID
    │   ├── FleetNotFoundError       no fleet run has that ID
    │   └── EventDeliveryNotFoundError   no event delivery has that ID
    ├── EventDeliveryError           a sink (webhook, Event Grid) did not accept an event;
    │                                says whether trying again may help (tenantops.events)
    ├── ProvisioningError            onboarding/offboarding (tenantops.provisioning)
    │   ├── SpecError                TenantSpec fields are invalid; each names field, value, rule
    │   ├── TenantConflictError      the request contradicts the tenant already registered
    │   │   └── DomainConflictError  the custom domain is equal to, above or below another's
    │   ├── RunConflictError         another run of the tenant is active
    │   ├── TenantStateError         the tenant's status forbids the run asked for
    │   ├── RunStateError            retry/cancel asked of a run in a state that forbids it
    │   ├── FleetStateError          resume/cancel asked of a fleet run in a state that forbids it
    │   ├── MigrationError           the tenant migrations folder cannot be read, or a revision
    │   │                            asked for is not in it
    │   ├── ConfirmationError        a destructive request whose confirmation does not match
    │   ├── IdempotencyKeyReusedError   an Idempotency-Key sent again with another request
    │   ├── PlacementError           no database server can take the tenant (full, draining,
    │   │                            outside the plan's pool, unknown); names them
    │   └── ProviderError            a provider action failed; names provider, action, resource
    │       ├── TransientProviderError   429, 5xx, timeout, reset: retried with backoff
    │       └── PermanentProviderError   anything else: the run stops with this message
    └── AuthError                    server side: checking a token (tenantops.auth); carries
        │                            ``expected`` and ``received`` values, never the token
        ├── InvalidTokenError        → HTTP 401, WWW-Authenticate error="invalid_token"
        │   ├── MissingTokenError        no credentials at all (401 without an error code)
        │   ├── MalformedTokenError      not ``Bearer <JWT>``, or not a JWS in compact form
        │   │   └── TokenTooLargeError   over the size cap; refused before parsing
        │   ├── MalformedPrincipalHeaderError   X-MS-CLIENT-PRINCIPAL is not base64 JSON
        │   ├── DisallowedAlgorithmError ``alg`` is not RS256
        │   ├── UnknownSigningKeyError   ``kid`` missing or not in the tenant's JWKS
        │   ├── SignatureMismatchError   the signature does not verify with that key
        │   ├── TokenExpiredError        ``exp`` (plus leeway) has passed
        │   ├── TokenNotYetValidError    ``nbf`` (minus leeway) is in the future
        │   │   └── TokenIssuedInTheFutureError   ``iat`` (minus leeway) is in the future
        │   ├── TokenLifetimeTooLongError   ``exp - iat`` exceeds the longest Entra issues
        │   ├── MissingClaimError        a required claim is absent
        │   ├── InvalidClaimError        a claim has the wrong type (``roles`` as a string)
        │   ├── WrongIssuerError         ``iss`` is not the tenant's v1 or v2 issuer
        │   ├── WrongAudienceError       ``aud`` is not the API (client ID or ``api://`` URI)
        │   └── WrongTenantError         ``tid`` is not the configured tenant
        ├── AccessDeniedError        → HTTP 403, WWW-Authenticate error="insufficient_scope"
        │   ├── ApplicationNotAllowedError   ``appid``/``azp`` not in allowed_applications
        │   ├── IdentityNotAllowedError      ``oid`` not in allowed_identities
        │   ├── TenantNotAllowedError        ``tid`` not in allowed_tenants
        │   └── MissingRoleError             the route's app role is not in ``roles``
        └── SigningKeysUnavailableError  → HTTP 503: the authority's keys could not be fetched
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

__all__ = [
    "AccessDeniedError",
    "ApiRedirectedError",
    "ApiUnreachableError",
    "ApplicationNotAllowedError",
    "AudienceDiscoveryError",
    "AudienceError",
    "AuthError",
    "CallRejectedError",
    "CatalogError",
    "ConfigError",
    "ConfirmationError",
    "CredentialUnavailableError",
    "DirectoryError",
    "DisallowedAlgorithmError",
    "DomainConflictError",
    "DriftNotCheckedError",
    "EmulatorError",
    "EventDeliveryError",
    "EventDeliveryNotFoundError",
    "FleetNotFoundError",
    "FleetStateError",
    "IdempotencyKeyReusedError",
    "IdentityError",
    "IdentityNotAllowedError",
    "ImportFileError",
    "InsecureTransportError",
    "InvalidClaimError",
    "InvalidTokenError",
    "MalformedPrincipalHeaderError",
    "MalformedTokenError",
    "MigrationError",
    "MissingClaimError",
    "MissingRoleError",
    "MissingTokenError",
    "PermanentProviderError",
    "PlacementError",
    "ProviderError",
    "ProvisioningError",
    "RunConflictError",
    "RunNotFoundError",
    "RunStateError",
    "SignatureMismatchError",
    "SigningKeysUnavailableError",
    "SpecError",
    "SpecProblem",
    "TenantConflictError",
    "TenantNotAllowedError",
    "TenantNotFoundError",
    "TenantOpsError",
    "TenantStateError",
    "TokenExpiredError",
    "TokenIssuedInTheFutureError",
    "TokenLifetimeTooLongError",
    "TokenNotYetValidError",
    "TokenRequestError",
    "TokenTooLargeError",
    "TransientProviderError",
    "UnknownSigningKeyError",
    "UntrustedAudienceError",
    "WrongAudienceError",
    "WrongIssuerError",
    "WrongTenantError",
]


class TenantOpsError(Exception):
    """Root of every error tenantops raises on purpose."""


class ConfigError(TenantOpsError):
    """A setting is missing or invalid. The message names the setting and where it came from."""


class EmulatorError(TenantOpsError):
    """The emulator cannot start or cannot do what was asked."""


class DirectoryError(EmulatorError):
    """The emulator's directory (TOML) is invalid; the message names the entry and field."""


class IdentityError(TenantOpsError):
    """Client side: a token for the API could not be obtained or was refused."""


class AudienceError(IdentityError):
    """The audience value cannot be used as a managed-identity resource or a /.default scope."""


class AudienceDiscoveryError(IdentityError):
    """The expected audience could not be discovered from the API or configuration."""


class UntrustedAudienceError(AudienceDiscoveryError):
    """The API asked for a token audience tenantops will not request on a server's say-so.

    ``advertised`` is what the server named, ``url`` where it said so. A server chooses the
    audience only among application IDs and ``api://`` URIs that are not Microsoft's own
    services; anything else needs the caller's explicit ``--audience``.
    """

    def __init__(self, message: str, *, advertised: str, url: str) -> None:
        super().__init__(message)
        self.advertised = advertised
        self.url = url


class CredentialUnavailableError(IdentityError):
    """No identity source could even be tried (nothing configured in this environment)."""


class TokenRequestError(IdentityError):
    """An identity source was tried and the identity platform refused to issue a token."""


class InsecureTransportError(IdentityError):
    """A bearer token would travel over plain ``http`` to a host that is not this machine."""

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message)
        self.url = url


class CallRejectedError(IdentityError):
    """The API rejected the call with 401 or 403."""


class ApiUnreachableError(TenantOpsError):
    """The API could not be reached at all (DNS, connection refused, TLS, timeout).

    ``url`` is the URL tried."""

    def __init__(self, message: str, *, url: str = "") -> None:
        super().__init__(message)
        self.url = url


class ApiRedirectedError(TenantOpsError):
    """The API answered with a redirect. tenantops does not follow it with a token;
    ``location`` is where it was sent, ``url`` what was called."""

    def __init__(self, message: str, *, url: str, status: int, location: str) -> None:
        super().__init__(message)
        self.url = url
        self.status = status
        self.location = location


class CatalogError(TenantOpsError):
    """The tenant catalog could not be read or written (database, migrations)."""


class TenantNotFoundError(CatalogError):
    """No tenant has the slug asked for; ``slug`` names it."""

    def __init__(self, slug: str) -> None:
        super().__init__(
            f"no tenant with slug {slug!r} in the catalog; check the slug or onboard it first"
        )
        self.slug = slug


class DriftNotCheckedError(CatalogError):
    """Tenant ``slug`` has no drift report yet: it was never checked."""

    def __init__(self, slug: str) -> None:
        super().__init__(
            f"tenant {slug!r} was never checked for drift; check it now: tenantops drift "
            f"{slug} (GET /api/tenants/{slug}/drift)")
        self.slug = slug


class RunNotFoundError(CatalogError):
    """No run has the ID asked for; ``run_id`` names it."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"no run with ID {run_id!r} in the catalog; list the tenant's runs")
        self.run_id = run_id


class FleetNotFoundError(CatalogError):
    """No fleet run has the ID asked for; ``fleet_id`` names it."""

    def __init__(self, fleet_id: str) -> None:
        super().__init__(
            f"no fleet run with ID {fleet_id!r} in the catalog; list them with tenantops "
            "fleet list")
        self.fleet_id = fleet_id


class EventDeliveryNotFoundError(CatalogError):
    """No event delivery has the ID asked for; ``delivery_id`` names it."""

    def __init__(self, delivery_id: int) -> None:
        super().__init__(
            f"no event delivery with ID {delivery_id} in the catalog; list them with "
            "tenantops events deliveries")
        self.delivery_id = delivery_id


class EventDeliveryError(TenantOpsError):
    """A sink did not accept an event: ``sink`` names it, ``status`` is its HTTP answer (None:
    no answer), ``permanent`` says that trying again cannot help (the delivery is parked at
    once), ``retry_after`` is the wait the sink asked for, in seconds."""

    def __init__(self, message: str, *, sink: str, status: int | None = None,
                 permanent: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.sink = sink
        self.status = status
        self.permanent = permanent
        self.retry_after = retry_after


class ProvisioningError(TenantOpsError):
    """Onboarding or offboarding could not be requested or carried out."""


class SpecProblem(NamedTuple):
    """One invalid field of a tenant spec: which field, the value received, the rule broken."""

    field: str
    value: object
    rule: str

    def __str__(self) -> str:
        return f"{self.field} = {self.value!r}: {self.rule}"


class ImportFileError(ProvisioningError):
    """An import file (``tenantops import FILE``, the dashboard's import page) cannot be read
    as entries; the message names the file or the CSV line and what to change."""


class SpecError(ProvisioningError):
    """A tenant spec is invalid; ``problems`` lists every field, value and rule broken."""

    def __init__(self, problems: Sequence[SpecProblem]) -> None:
        self.problems = tuple(problems)
        listed = "; ".join(str(p) for p in self.problems)
        super().__init__(f"invalid tenant spec: {listed}; correct these fields and try again")


class TenantConflictError(ProvisioningError):
    """The request contradicts the tenant already in the catalog (another spec, a taken domain)."""


class DomainConflictError(TenantConflictError):
    """The custom domain asked for is equal to, above or below the custom domain of another live
    tenant (or a name made from it, such as its ``asuid.`` record).

    The message does not name the other tenant: a caller allowed to onboard may not be allowed
    to read tenants. ``holder`` and ``holder_domain`` carry them; `naming_holder` gives the same
    error with them in the message, for callers who may read tenants."""

    def __init__(self, domain: str, relation: str, *, holder: str, holder_domain: str,
                 named: bool = False) -> None:
        where = {"equal": "is the custom domain of",
                 "below": "is below the custom domain of",
                 "above": "is above the custom domain of"}[relation]
        other = (f"tenant {holder!r} ({holder_domain})" if named else "another tenant")
        super().__init__(
            f"custom domain {domain!r} {where} {other}: a domain must not be equal to, above or "
            "below another tenant's, whose records it would shadow or take over. Choose another "
            "domain, or offboard that tenant first"
        )
        self.domain = domain
        self.relation = relation
        self.holder = holder
        self.holder_domain = holder_domain

    def naming_holder(self) -> DomainConflictError:
        """The same conflict, naming the other tenant (for callers holding Tenants.Read)."""
        return DomainConflictError(self.domain, self.relation, holder=self.holder,
                                   holder_domain=self.holder_domain, named=True)


class RunConflictError(ProvisioningError):
    """Another run of the tenant is active; ``active_run_id`` names it."""

    def __init__(self, message: str, *, slug: str, active_run_id: str) -> None:
        super().__init__(message)
        self.slug = slug
        self.active_run_id = active_run_id


class TenantStateError(ProvisioningError):
    """The tenant's status forbids the kind of run asked for (resuming an active tenant,
    suspending one still being onboarded); ``status`` is the tenant's."""

    def __init__(self, message: str, *, slug: str, status: str) -> None:
        super().__init__(message)
        self.slug = slug
        self.status = status


class RunStateError(ProvisioningError):
    """The run's state forbids what was asked (retrying a run that succeeded, say)."""


class PlacementError(ProvisioningError):
    """No database server can take the tenant: every server of its plan's pool is full or
    draining, or the one named is unknown, full, draining, outside the pool or already holds
    a copy of the tenant. ``pool`` and ``server`` name what was asked for."""

    def __init__(self, message: str, *, pool: str, server: str | None = None) -> None:
        super().__init__(message)
        self.pool = pool
        self.server = server


class FleetStateError(ProvisioningError):
    """The fleet run's status forbids what was asked (resuming one that is running,
    cancelling one that finished); ``status`` is the fleet's."""

    def __init__(self, message: str, *, fleet_id: str, status: str) -> None:
        super().__init__(message)
        self.fleet_id = fleet_id
        self.status = status


class MigrationError(ProvisioningError):
    """The tenant migrations folder (``migrations.folder``) cannot be used: missing,
    neither Alembic scripts nor SQL files, or without the revision asked for."""


class ConfirmationError(ProvisioningError):
    """A destructive request was not confirmed: ``confirm`` must repeat the slug."""

    def __init__(self, slug: str, confirm: str) -> None:
        super().__init__(
            f"confirm = {confirm!r} does not match the tenant {slug!r}: offboarding deletes the "
            f"tenant's resources, so repeat the slug to confirm (?confirm={slug})"
        )
        self.slug = slug
        self.confirm = confirm


class IdempotencyKeyReusedError(ProvisioningError):
    """An ``Idempotency-Key`` came back with a different request than it was first sent with."""

    def __init__(self, key: str, run_id: str) -> None:
        super().__init__(
            f"Idempotency-Key {key!r} was first sent with another request, which made run "
            f"{run_id}; send a new key for a new request, or the same request to get that run"
        )
        self.key = key
        self.run_id = run_id


class ProviderError(ProvisioningError):
    """A provider action failed. ``provider`` is ``kind:name`` (``dns:zone-file``), ``action``
    the verb (``ensure``), ``resource`` the resource's key; the message is the provider's own."""

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        action: str = "",
        resource: str = "",
        status_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.action = action
        self.resource = resource
        self.status_code = status_code


class TransientProviderError(ProviderError):
    """Worth retrying: throttled (429), a server error (5xx), a timeout or a reset connection.
    ``retry_after`` is the wait the service asked for (a 429's or 503's ``Retry-After``), in
    seconds: the engine makes the next attempt no sooner, up to
    ``engine.retry_after_max_seconds``."""

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        action: str = "",
        resource: str = "",
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, provider=provider, action=action, resource=resource,
                         status_code=status_code)
        self.retry_after = retry_after


class PermanentProviderError(ProviderError):
    """Not worth retrying until something is fixed; the run stops with this message."""


class AuthError(TenantOpsError):
    """Server side: a request's credentials were checked and refused.

    ``expected`` and ``received`` hold the values a person needs to fix the call (audiences,
    issuers, roles, ...). They never hold the token itself. ``error_code`` is the RFC 6750
    ``error`` of the ``WWW-Authenticate`` challenge (``None``: no error code is sent).
    """

    status_code: int = 401
    error_code: str | None = "invalid_token"

    def __init__(
        self,
        message: str,
        *,
        expected: Mapping[str, object] | None = None,
        received: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.expected: dict[str, object] = dict(expected or {})
        self.received: dict[str, object] = dict(received or {})


class InvalidTokenError(AuthError):
    """The token is malformed, unsigned, badly signed, expired, or for someone else (401)."""


class MissingTokenError(InvalidTokenError):
    """The request carries no credentials; the challenge has no error code (RFC 6750 §3.1)."""

    error_code = None


class MalformedTokenError(InvalidTokenError):
    """The Authorization header is not ``Bearer <JWT>``, or the JWT cannot be parsed."""


class TokenTooLargeError(MalformedTokenError):
    """The token is larger than the cap; it was refused before any parsing."""


class MalformedPrincipalHeaderError(InvalidTokenError):
    """``X-MS-CLIENT-PRINCIPAL`` is not the base64 JSON App Service Authentication sends."""


class DisallowedAlgorithmError(InvalidTokenError):
    """The token's ``alg`` is not in the allow-list (RS256)."""


class UnknownSigningKeyError(InvalidTokenError):
    """The token's ``kid`` is missing or names no key of the configured tenant's JWKS."""


class SignatureMismatchError(InvalidTokenError):
    """The signature does not verify with the tenant's key: altered or forged."""


class TokenExpiredError(InvalidTokenError):
    """``exp`` is in the past (beyond the leeway)."""


class TokenNotYetValidError(InvalidTokenError):
    """``nbf`` is in the future (beyond the leeway)."""


class TokenIssuedInTheFutureError(TokenNotYetValidError):
    """``iat`` is in the future (beyond the leeway): a clock is wrong, or the token is forged."""


class TokenLifetimeTooLongError(InvalidTokenError):
    """``exp - iat`` is longer than Entra ever issues (``auth.max_token_lifetime_seconds``)."""


class MissingClaimError(InvalidTokenError):
    """A claim the API needs is absent; ``claim`` names it."""

    def __init__(
        self,
        message: str,
        *,
        claim: str,
        expected: Mapping[str, object] | None = None,
        received: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__(message, expected=expected, received=received)
        self.claim = claim


class InvalidClaimError(InvalidTokenError):
    """A claim is present but has the wrong type or shape (``roles`` as a string, say)."""


class WrongIssuerError(InvalidTokenError):
    """``iss`` is neither the v1 nor the v2 issuer of the configured tenant."""


class WrongAudienceError(InvalidTokenError):
    """``aud`` is not the API: not its client ID, ``api://`` URI or an extra audience."""


class WrongTenantError(InvalidTokenError):
    """``tid`` is not the configured tenant."""


class AccessDeniedError(AuthError):
    """The token is valid but the caller is not allowed (403)."""

    status_code = 403
    error_code = "insufficient_scope"


class ApplicationNotAllowedError(AccessDeniedError):
    """The calling application (``appid``/``azp``) is not in ``auth.allowed_applications``."""


class IdentityNotAllowedError(AccessDeniedError):
    """The caller's object ID (``oid``) is not in ``auth.allowed_identities``."""


class TenantNotAllowedError(AccessDeniedError):
    """The caller's tenant (``tid``) is not in ``auth.allowed_tenants``."""


class MissingRoleError(AccessDeniedError):
    """The token lacks the app role the route needs."""


class SigningKeysUnavailableError(AuthError):
    """The authority's discovery documents or JWKS could not be fetched, so no token can be
    checked (503). Not the caller's fault; the message names the URL and the failure."""

    status_code = 503
    error_code = None
