"""Client assertions at the token endpoint, checked as Entra checks them.

Two kinds arrive as ``client_assertion`` (type ``urn:ietf:params:oauth:client-assertion-type:
jwt-bearer``):

- a JWT the app signed with a certificate registered on it (``private_key_jwt``; Entra docs
  "certificate credentials"): ``iss`` = ``sub`` = the client ID, ``aud`` = the token endpoint,
  header ``x5t#S256`` or ``x5t`` naming the certificate;
- a token from an outside issuer that one of the app's (or user-assigned managed identity's)
  federated identity credentials trusts (workload identity federation: AKS, GitHub Actions):
  its ``iss``, ``sub`` and ``aud`` must match one credential exactly, and its signature one of
  the issuer's keys.

Each refusal carries Entra's AADSTS code and words, with the public source beside it;
"unconfirmed" marks the codes no public source pins to that case. Statuses: Entra answers
``invalid_client`` with 401 (AADSTS700211 in Azure/azure-workload-identity#1350,
AADSTS70021 in external-secrets/external-secrets#2783).
"""

from __future__ import annotations

import base64
import datetime as dt
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa

from tenantops.emulator.directory import (
    AppRegistration,
    Directory,
    FederatedCredential,
    ManagedIdentity,
)
from tenantops.emulator.issuers import IssuerRegistry
from tenantops.emulator.tokens import AadstsError

__all__ = [
    "CLOCK_SKEW_SECONDS",
    "JWT_BEARER",
    "AssertedClient",
    "AssertionVerifier",
    "ReplayPolicy",
]

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CLOCK_SKEW_SECONDS = 300
"""Leeway on ``nbf`` and ``exp``: five minutes, the default clock skew of Microsoft's token
validation libraries (Microsoft.IdentityModel ``TokenValidationParameters.ClockSkew``); what
Entra allows for client assertions is unconfirmed."""
_CERTIFICATE_ALGORITHMS = ("RS256", "PS256")
"""Entra docs, certificate credentials: ``alg`` "should be PS256" (RS256 in the older page;
MSAL Python sends PS256 with ``x5t#S256``, RS256 with ``x5t``)."""
_FEDERATED_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "ES256", "ES384")
_CERT_DOCS = "https://learn.microsoft.com/entra/identity-platform/certificate-credentials"
_FIC_DOCS = "https://learn.microsoft.com/entra/workload-id/workload-identity-federation"

ReplayPolicy = Literal["allow", "refuse"]
"""``allow`` (default): a certificate assertion may be presented again until it expires, as
Entra accepts (MSAL Python reuses one assertion for up to 540 s across token requests:
msal/oauth2cli/assertion.py ``create_regenerative_assertion``). ``refuse``: a ``jti`` is good
for one request within the assertion's lifetime, for testing clients that must not reuse one."""


@dataclass(frozen=True)
class AssertedClient:
    """Who a valid assertion proves the caller to be, and with which kind of credential."""

    principal: AppRegistration | ManagedIdentity
    credential: Literal["certificate", "federated"]


def _invalid_client(code: int, message: str) -> AadstsError:
    return AadstsError("invalid_client", code, message, status=401)


def _timestamp(epoch: float) -> str:
    """Entra's time format in AADSTS700024: ``2024-10-02T22:05:03.6755165Z``."""
    moment = dt.datetime.fromtimestamp(epoch, dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}0Z"


def _b64url_hex(value: object) -> str | None:
    """A base64url thumbprint header (``x5t``, ``x5t#S256``) as lowercase hex."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).hex()
    except (ValueError, TypeError):
        return None


def _numeric(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else None


@dataclass
class _ReplayGuard:
    """``jti`` values seen, each kept until its assertion expires."""

    seen: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def first_use(self, key: str, expires_at: float, now: float) -> bool:
        with self.lock:
            for old in [k for k, exp in self.seen.items() if exp + CLOCK_SKEW_SECONDS < now]:
                del self.seen[old]
            if key in self.seen:
                return False
            self.seen[key] = expires_at
            return True


class AssertionVerifier:
    """Checks ``client_assertion`` values for one emulator. Construction does no I/O."""

    def __init__(
        self,
        directory: Callable[[], Directory],
        issuers: IssuerRegistry,
        authority: Callable[[], str],
        *,
        replay: ReplayPolicy = "allow",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._directory = directory
        self._issuers = issuers
        self._authority = authority
        self.replay: ReplayPolicy = replay
        self._clock = clock
        self._replays = _ReplayGuard()

    def verify(self, assertion_type: str | None, assertion: str, client_id: str | None,
               path_tenant: str) -> AssertedClient:
        """The client a ``client_assertion`` proves, or the AadstsError Entra would answer."""
        if not assertion_type:
            # Entra docs, error codes: AADSTS900144 "The request body must contain the
            # following parameter: '{name}'."
            raise AadstsError("invalid_request", 900144, "The request body must contain the "
                              "following parameter: 'client_assertion_type'.")
        if assertion_type != JWT_BEARER:
            # unconfirmed: the code Entra gives for another assertion type.
            raise AadstsError("invalid_request", 900144, "The request body must contain the "
                              f"following parameter: 'client_assertion_type' = '{JWT_BEARER}'"
                              f" (received '{assertion_type}').")
        try:
            header = jwt.get_unverified_header(assertion)
            claims: dict[str, Any] = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            # azure-identity TROUBLESHOOTING.md (ClientAssertionCredential): AADSTS50027 "JWT
            # token is invalid or malformed."
            raise _invalid_client(50027, f"JWT token is invalid or malformed. ({exc})") from exc
        iss, sub = claims.get("iss"), claims.get("sub")
        if not isinstance(iss, str) or not isinstance(sub, str):
            # Entra docs, error codes: AADSTS50027 InvalidJwtToken, "doesn't contain ... sub
            # claim".
            raise _invalid_client(50027, "JWT token is invalid or malformed: the 'iss' and "
                                  "'sub' claims must be strings.")
        wanted = (client_id or sub).strip()
        directory = self._directory()
        if iss in (wanted, sub):
            return self._certificate(directory, header, claims, wanted, path_tenant, assertion)
        if sub == wanted:
            # Entra docs, error codes: AADSTS50048 SubjectMismatchesIssuer "Subject mismatches
            # Issuer claim in the client assertion."
            raise _invalid_client(50048, "Subject mismatches Issuer claim in the client "
                                  f"assertion: iss '{iss}', sub '{sub}'. Both must be the "
                                  f"application (client) ID. Review the documentation at "
                                  f"{_CERT_DOCS}.")
        return self._federated(directory, header, claims, wanted, assertion)

    @staticmethod
    def _not_found(directory: Directory, client_id: str) -> AadstsError:
        # Entra docs, error codes: AADSTS700016 UnauthorizedClient_DoesNotMatchRequest.
        return AadstsError(
            "unauthorized_client", 700016,
            f"Application with identifier '{client_id}' was not found in the directory "
            f"'{directory.tenant_id}'. This can happen if the application has not been "
            "installed by the administrator of the tenant or consented to by any user in the "
            "tenant. You may have sent your authentication request to the wrong tenant.")

    def _app(self, directory: Directory, client_id: str) -> AppRegistration:
        app = directory.app_by_client_id(client_id)
        if app is None or app.first_party:
            raise self._not_found(directory, client_id)
        return app

    def _federation_principal(self, directory: Directory,
                              client_id: str) -> AppRegistration | ManagedIdentity:
        """An app, or a user-assigned managed identity (both can hold federated credentials)."""
        app = directory.app_by_client_id(client_id)
        if app is not None and not app.first_party:
            return app
        identity = directory.identity_by_client_id(client_id)
        if identity is not None and identity.kind == "user":
            return identity
        raise self._not_found(directory, client_id)

    def _check_times(self, claims: Mapping[str, Any], now: float) -> float:
        exp = _numeric(claims, "exp")
        nbf = _numeric(claims, "nbf")
        if exp is None:
            # Entra docs, error codes: AADSTS50027 "not within its valid time range";
            # unconfirmed that a missing exp is reported so.
            raise _invalid_client(50027, "JWT token is invalid or malformed: the assertion has "
                                  "no 'exp' claim.")
        if exp + CLOCK_SKEW_SECONDS <= now or (nbf is not None and nbf - CLOCK_SKEW_SECONDS > now):
            # AADSTS700024, wording from AzureAD/microsoft-authentication-library-for-java#984
            # and Azure/login#180 (a GitHub federated token).
            raise _invalid_client(
                700024, f"Client assertion is not within its valid time range. Current time: "
                f"{_timestamp(now)}, assertion valid from {_timestamp(nbf or 0)}, expiry time of "
                f"assertion {_timestamp(exp)}. Review the documentation at {_CERT_DOCS} .")
        return exp

    def _token_endpoints(self, tenants: set[str]) -> set[str]:
        base = self._authority()
        return {f"{base}/{tenant}/oauth2/{path}"
                for tenant in tenants for path in ("v2.0/token", "token")}

    def _certificate(self, directory: Directory, header: Mapping[str, Any],
                     claims: Mapping[str, Any], client_id: str, path_tenant: str,
                     assertion: str) -> AssertedClient:
        iss, sub = claims["iss"], claims["sub"]
        app = self._app(directory, client_id)
        if iss != sub:
            # Entra docs, error codes: AADSTS50048 SubjectMismatchesIssuer.
            raise _invalid_client(50048, "Subject mismatches Issuer claim in the client "
                                  f"assertion: iss '{iss}', sub '{sub}'. Review the "
                                  f"documentation at {_CERT_DOCS}.")
        if iss.lower() != client_id.lower():
            # azure-identity TROUBLESHOOTING.md (ClientAssertionCredential): AADSTS700021.
            raise _invalid_client(700021, "Client assertion application identifier doesn't "
                                  f"match 'client_id' parameter. Review the documentation at "
                                  f"{_CERT_DOCS}.")
        alg = header.get("alg")
        if alg not in _CERTIFICATE_ALGORITHMS:
            # Entra docs, error codes: AADSTS50027 "token format isn't proper"; unconfirmed for
            # an unsupported alg.
            raise _invalid_client(50027, f"JWT token is invalid or malformed: alg '{alg}' is "
                                  f"not one of {', '.join(_CERTIFICATE_ALGORITHMS)}.")
        sha256 = _b64url_hex(header.get("x5t#S256"))
        sha1 = _b64url_hex(header.get("x5t"))
        if sha1 is None and sha256 is None:
            # AzureAD/microsoft-authentication-library-for-dotnet#124: "AADSTS50027: Invalid
            # JWT token. No certificate thumbprint specified in token header."
            raise _invalid_client(50027, "Invalid JWT token. No certificate thumbprint "
                                  "specified in token header.")
        shown = (sha1 or sha256 or "").upper()
        certificate = self._registered_certificate(app, header, sha1, sha256)
        if certificate is None:
            # Azure/azure-sdk-for-net#29007: AADSTS700027 "[Reason - The key was not found.
            # ...]. Alternatively, SNI may be configured on the app. Please ensure that client
            # assertion is being sent with the x5c claim in the JWT header ...".
            raise _invalid_client(
                700027, "Client assertion contains an invalid signature. [Reason - The key was "
                f"not found., Thumbprint of key used by client: '{shown}', Please visit the Azure "
                "Portal, Graph Explorer or directly use MS Graph to see configured keys for app "
                f"Id '{app.client_id}'.] Alternatively, SNI may be configured on the app. Please "
                "ensure that client assertion is being sent with the x5c claim in the JWT header "
                "so that Azure Active Directory can validate the certificate being used.")
        now = self._clock()
        start = certificate.not_valid_before_utc
        end = certificate.not_valid_after_utc
        found = (f"Found key 'Start={start:%m/%d/%Y %H:%M:%S}, End={end:%m/%d/%Y %H:%M:%S}'")
        if not start.timestamp() <= now <= end.timestamp():
            # unconfirmed: AADSTS700027 with "The key used is expired." for a certificate
            # outside its validity period.
            raise _invalid_client(
                700027, "Client assertion contains an invalid signature. [Reason - The key used "
                f"is expired., Thumbprint of key used by client: '{shown}', {found}]")
        public_key = certificate.public_key()
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise _invalid_client(700027, "Client assertion contains an invalid signature. "
                                  f"[Reason - The key type is not supported., Thumbprint of "
                                  f"key used by client: '{shown}']")
        try:
            jwt.decode(assertion, public_key, algorithms=[str(alg)],
                       options={"verify_aud": False, "verify_exp": False, "verify_nbf": False,
                                "verify_iat": False, "verify_iss": False})
        except jwt.InvalidSignatureError as exc:
            # Reason text from Azure/azure-sdk-for-java#25109 (with AADSTS50013 for an OBO user
            # assertion); AADSTS700027 for a client assertion: Entra docs, error codes.
            raise _invalid_client(
                700027, "Client assertion contains an invalid signature. [Reason - The provided "
                "signature value did not match the expected signature value., Thumbprint of key "
                f"used by client: '{shown}', {found}]") from exc
        except jwt.PyJWTError as exc:
            raise _invalid_client(50027, f"JWT token is invalid or malformed. ({exc})") from exc
        aud = claims.get("aud")
        accepted = self._token_endpoints({directory.tenant_id, path_tenant})
        if isinstance(aud, list):
            # panva/openid-client#348: an aud list [issuer, token endpoint] is refused with
            # "AADSTS50027: JWT token is invalid or malformed."
            raise _invalid_client(50027, "JWT token is invalid or malformed: 'aud' must be "
                                  "one string, the token endpoint.")
        if aud not in accepted:
            # azure-identity TROUBLESHOOTING.md and AzureAD/microsoft-authentication-library-
            # for-dotnet#2746: AADSTS700023. The issuer (".../v2.0") is not accepted either
            # (erlef/oidcc#548; unconfirmed by Microsoft).
            raise _invalid_client(
                700023, "Client assertion audience claim does not match Realm issuer. Review "
                f"the documentation at {_CERT_DOCS} . (aud '{aud}'; expected "
                f"'{self._authority()}/{directory.tenant_id}/oauth2/v2.0/token')")
        exp = self._check_times(claims, now)
        if self.replay == "refuse":
            jti = claims.get("jti")
            key = f"{app.client_id}:{jti}"
            if not isinstance(jti, str) or not jti or not self._replays.first_use(key, exp, now):
                # unconfirmed: Entra is not known to refuse a repeated jti (MSAL reuses
                # assertions); AADSTS50013 InvalidAssertion is the nearest documented code.
                raise _invalid_client(
                    50013, "Assertion is invalid: the client assertion with jti "
                    f"'{jti}' was already used (replay protection is on; each assertion is "
                    "good for one request).")
        return AssertedClient(app, "certificate")

    @staticmethod
    def _registered_certificate(app: AppRegistration, header: Mapping[str, Any],
                                sha1: str | None, sha256: str | None) -> x509.Certificate | None:
        """The certificate the header names, if the app registers it: its own copy, or, for a
        thumbprint-only (SNI) registration, the ``x5c`` leaf whose thumbprint it registers and
        which the header's thumbprint names."""
        for registered in app.certificates:
            certificate = registered.x509_certificate()
            if certificate is not None and registered.matches(sha1, sha256):
                return certificate
        chain = header.get("x5c")
        if not isinstance(chain, list) or not chain or not isinstance(chain[0], str):
            return None
        try:
            leaf = x509.load_der_x509_certificate(base64.b64decode(chain[0]))
        except ValueError:
            return None
        # SHA-1 names a certificate here (x5t), it protects nothing.
        leaf_sha1 = leaf.fingerprint(hashes.SHA1()).hex()  # noqa: S303
        leaf_sha256 = leaf.fingerprint(hashes.SHA256()).hex()
        if sha1 not in (None, leaf_sha1) or sha256 not in (None, leaf_sha256):
            return None  # the header names another certificate than the chain carries
        registered_leaf = any(not r.certificate and r.matches(leaf_sha1, leaf_sha256)
                              for r in app.certificates)
        return leaf if registered_leaf else None

    def _federated(self, directory: Directory, header: Mapping[str, Any],
                   claims: Mapping[str, Any], client_id: str, assertion: str) -> AssertedClient:
        principal = self._federation_principal(directory, client_id)
        iss, sub = str(claims["iss"]), str(claims["sub"])
        credentials = [(self._issuers.resolve(c.issuer), c)
                       for c in principal.federated_credentials]
        trusting = [c for url, c in credentials if url == iss]
        if not trusting:
            # Azure/azure-workload-identity#1200 and #1350 (HTTP 401): AADSTS700211.
            raise _invalid_client(
                700211, "No matching federated identity record found for presented assertion "
                f"issuer '{iss}'. Please check your federated identity credential Subject, "
                f"Audience and Issuer against the presented assertion. {_FIC_DOCS}")
        self._verify_issuer_signature(iss, header, assertion)
        self._check_times(claims, self._clock())
        aud = claims.get("aud")
        if isinstance(aud, str):
            audiences = [aud]
        else:
            audiences = [a for a in aud if isinstance(a, str)] if isinstance(aud, list) else []
        for_audience = [c for c in trusting if any(a in c.audiences for a in audiences)]
        if not for_audience:
            # AADSTS700212: "No matching federated identity record found for presented
            # assertion audience '...'" (reported in issues, e.g. the Facets and AKS notes
            # found by the search tool; Microsoft page unconfirmed).
            shown = audiences[0] if len(audiences) == 1 else ",".join(audiences)
            raise _invalid_client(
                700212, "No matching federated identity record found for presented assertion "
                f"audience '{shown}'. Please check your federated identity credential Subject, "
                f"Audience and Issuer against the presented assertion. {_FIC_DOCS}")
        matching = self._by_subject(for_audience, sub)
        if matching is None:
            if any(c.subject.lower() == sub.lower() for c in for_audience):
                # Azure/login#515: AADSTS7002138 after Entra made subjects case-sensitive.
                raise _invalid_client(
                    7002138, "No matching federated identity record found for presented "
                    f"assertion subject '{sub}'. The subject matches with case-insensitive "
                    "comparison, but not with case-sensitive comparison. Check your federated "
                    "identity credential Subject, Audience and Issuer against the presented "
                    f"assertion. See documentation at: {_FIC_DOCS}.")
            # Azure/login#482 and dotnet/maui#31978: AADSTS700213.
            raise _invalid_client(
                700213, "No matching federated identity record found for presented assertion "
                f"subject '{sub}'. Check your federated identity credential Subject, Audience "
                f"and Issuer against the presented assertion. {_FIC_DOCS}")
        return AssertedClient(principal, "federated")

    @staticmethod
    def _by_subject(credentials: list[FederatedCredential],
                    subject: str) -> FederatedCredential | None:
        return next((c for c in credentials if c.subject == subject), None)

    def _verify_issuer_signature(self, iss: str, header: Mapping[str, Any],
                                 assertion: str) -> None:
        issuer = self._issuers.by_url(iss)
        keys = self._issuers.signing_keys(issuer) if issuer is not None else None
        if keys is None:
            # Azure/azure-workload-identity docs, troubleshooting: "AADSTS90061: Request to
            # External OIDC endpoint failed." (400 invalid_request).
            raise AadstsError("invalid_request", 90061,
                              "Request to External OIDC endpoint failed.")
        kid = header.get("kid")
        key = keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            # Azure/azure-workload-identity#1232: AADSTS7000272.
            raise _invalid_client(
                7000272, f"The certificate with identifier {kid} used to sign the federated "
                f"credential could not be found in the metadata of identity provider {iss}. "
                "Please validate that your Identity Provider's metadata exposes the key used "
                "to sign the incoming token.")
        alg = header.get("alg")
        if alg not in _FEDERATED_ALGORITHMS:
            raise _invalid_client(50027, f"JWT token is invalid or malformed: alg '{alg}' is "
                                  "not an asymmetric signature algorithm.")
        try:
            jwt.decode(assertion, key.key, algorithms=[str(alg)],
                       options={"verify_aud": False, "verify_exp": False, "verify_nbf": False,
                                "verify_iat": False, "verify_iss": False})
        except jwt.PyJWTError as exc:
            # Entra docs, error codes: AADSTS50027 lists "External ID token from issuer failed
            # signature verification."; the exact message is unconfirmed.
            raise _invalid_client(
                50027, "JWT token is invalid or malformed: External ID token from issuer "
                f"'{iss}' failed signature verification.") from exc

