"""Tokens shaped like Entra ID's, and the AADSTS refusals Entra gives instead of a token.

What decides the shape (Entra's rules, see shared reference §4):
- ``ver`` follows the *resource* app's ``accessTokenAcceptedVersion``, whichever endpoint
  the client used;
- v1 ``aud`` is the value that was requested (client ID or identifier URI), v2 ``aud`` is
  always the client ID GUID;
- v1 carries ``appid``/``appidacr``, v2 ``azp``/``azpacr``; ``roles`` only when assigned;
  ``appidacr``/``azpacr`` say how the client proved itself: ``0`` public client, ``1``
  secret, ``2`` certificate (Entra docs, access token claims reference), and ``2`` for a
  managed identity (observed) and a federated assertion (unconfirmed);
- ``idtyp`` is an optional claim (Entra docs, optional claims reference: "only in app-only
  access tokens"): present when the resource app lists it in ``optional_claims``, and in tokens
  for Microsoft's own resources (``app``, or ``user`` as observed in Azure CLI tokens for ARM);
- ``xms_mirid`` (the managed identity's ARM resource ID) is "a first party only optional claim"
  (Microsoft, MicrosoftDocs/azure-docs#96027): only in managed-identity tokens for Microsoft's
  resources, never for an API of your own;
- managed-identity tokens live about 24 hours, other access tokens about an hour.

tests/emulator/test_token_claims.py compares every kind of token with the claims reference.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import jwt

from tenantops.emulator.directory import AppRegistration, Directory, ManagedIdentity, User
from tenantops.emulator.keys import KeyStore

__all__ = ["AadstsError", "ClientCredentialKind", "IssuedToken", "TokenFactory"]

MANAGED_IDENTITY_LIFETIME = 86700  # 24 h 5 min, as observed on real MI tokens
APP_TOKEN_LIFETIME = 3599
USER_TOKEN_LIFETIME = 3599

ClientCredentialKind = Literal["public", "secret", "certificate", "federated", "managed-identity"]
_ACR: dict[ClientCredentialKind, str] = {
    "public": "0", "secret": "1", "certificate": "2", "federated": "2", "managed-identity": "2"}


@dataclass
class AadstsError(Exception):
    """A refusal as Entra words it: OAuth ``error``, AADSTS code and message, HTTP status."""

    error: str
    code: int
    message: str
    status: int = 400

    def __str__(self) -> str:
        return f"AADSTS{self.code}: {self.message}"

    def body(self, correlation_id: str) -> dict[str, Any]:
        now = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
        return {
            "error": self.error,
            "error_description": f"{self} Trace ID: {correlation_id} "
            f"Correlation ID: {correlation_id} Timestamp: {now}",
            "error_codes": [self.code],
            "timestamp": now,
            "trace_id": correlation_id,
            "correlation_id": correlation_id,
        }


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_on: int
    not_before: int
    expires_in: int
    resource: str
    claims: dict[str, Any]


def _rand_b64(n: int) -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(n)).rstrip(b"=").decode("ascii")


class TokenFactory:
    """Finds the resource, checks assignments and signs tokens for one directory."""

    def __init__(
        self,
        directory: Directory,
        keys: KeyStore,
        authority: Callable[[], str],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = directory
        self.keys = keys
        self._authority = authority
        self._clock = clock

    @property
    def tenant_id(self) -> str:
        return self.directory.tenant_id

    def issuer(self, version: int) -> str:
        """v1: ``<authority>/<tid>/``; v2: ``<authority>/<tid>/v2.0`` (Entra's shapes)."""
        base = f"{self._authority()}/{self.tenant_id}"
        return f"{base}/v2.0" if version == 2 else f"{base}/"

    def resolve_resource(self, resource: str) -> AppRegistration:
        """The app a resource string names, or Entra's AADSTS500011."""
        app = self.directory.app_for_resource(resource) if resource else None
        if app is None:
            raise AadstsError(
                "invalid_resource", 500011,
                f"The resource principal named {resource} was not found in the tenant named "
                f"{self.tenant_id}. This can happen if the application has not been installed "
                "by the administrator of the tenant or consented to by any user in the tenant. "
                "You might have sent your authentication request to the wrong tenant.",
            )
        return app

    def resolve_scope(self, scope: str) -> tuple[AppRegistration, str]:
        """The app of a v2 scope string (``<resource>/.default``) and the resource part."""
        wanted = [s for s in scope.split() if s not in {"openid", "profile", "offline_access",
                                                       "email"}]
        if len(wanted) != 1:
            raise AadstsError(
                "invalid_scope", 70011,
                f"The provided request must include a 'scope' input parameter. The provided value "
                f"for the input parameter 'scope' is not valid: {scope!r}.",
            )
        value = wanted[0]
        if not value.endswith("/.default"):
            raise AadstsError(
                "invalid_scope", 1002012,
                f"The provided value for scope {value} is not valid. Client credential flows must "
                "have a scope value with /.default suffixed to the resource identifier "
                "(application ID URI).",
            )
        resource = value[: -len("/.default")]
        return self.resolve_resource(resource), resource

    def roles_for(self, principal_name: str, client_id: str, resource: AppRegistration,
                  member_type: str) -> list[str]:
        """Roles ``principal_name`` holds on ``resource``; AADSTS501051 when assignment is
        required and it holds none."""
        roles = [
            r for r in self.directory.roles_of(principal_name, resource)
            if (role := resource.role(r)) is not None and member_type in role.allowed_member_types
        ]
        if resource.assignment_required and not roles:
            raise AadstsError(
                "invalid_grant", 501051,
                f"Application '{client_id}'({principal_name}) is not assigned to a role for the "
                f"application '{resource.client_id}'({resource.name}).",
            )
        return roles

    def _sign(self, claims: dict[str, Any], version: int) -> str:
        key = self.keys.active()
        headers: dict[str, Any] = {"typ": "JWT", "kid": key.kid}
        if version == 1:
            headers["x5t"] = key.kid
        return jwt.encode(claims, key.private_key, algorithm="RS256", headers=headers)

    def _base_claims(self, resource: AppRegistration, requested: str,
                     lifetime: int) -> tuple[dict[str, Any], int, int]:
        version = resource.access_token_accepted_version
        now = int(self._clock())
        aud = requested if version == 1 else resource.client_id
        claims: dict[str, Any] = {
            "aud": aud,
            "iss": self.issuer(version),
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "aio": _rand_b64(24),
            "rh": f"0.{_rand_b64(30)}.",
            "tid": self.tenant_id,
            "uti": _rand_b64(16),
            "ver": "1.0" if version == 1 else "2.0",
        }
        return claims, now, version

    def _finish(self, claims: dict[str, Any], version: int, now: int, lifetime: int,
                requested: str) -> IssuedToken:
        token = self._sign(claims, version)
        return IssuedToken(token, now + lifetime, now, lifetime, requested, claims)

    def app_token(
        self,
        resource: AppRegistration,
        requested: str,
        caller: ManagedIdentity | AppRegistration,
        credential: ClientCredentialKind | None = None,
    ) -> IssuedToken:
        """An app-only token for a managed identity (``credential="managed-identity"``, from a
        managed-identity endpoint) or a confidential client (an app, or a user-assigned identity
        proving itself with a federated assertion) at the token endpoint. Without
        ``credential``: a managed identity's endpoint, or an app's secret."""
        if credential is None:
            credential = "managed-identity" if isinstance(caller, ManagedIdentity) else "secret"
        client_id = caller.client_id
        object_id = caller.principal_id if isinstance(caller, ManagedIdentity) else (
            caller.service_principal_id)
        roles = self.roles_for(caller.name, client_id, resource, "Application")
        lifetime = (MANAGED_IDENTITY_LIFETIME if credential == "managed-identity"
                    else APP_TOKEN_LIFETIME)
        claims, now, version = self._base_claims(resource, requested, lifetime)
        acr = _ACR[credential]
        if version == 1:
            claims.update(appid=client_id, appidacr=acr, idp=self.issuer(1))
        else:
            claims.update(azp=client_id, azpacr=acr)
        claims.update(oid=object_id, sub=object_id)
        if resource.first_party or "idtyp" in resource.optional_claims:
            claims["idtyp"] = "app"
        if roles:
            claims["roles"] = roles
        if isinstance(caller, ManagedIdentity) and resource.first_party:
            claims["xms_mirid"] = caller.resource_id
        return self._finish(claims, version, now, lifetime, requested)

    def user_token(
        self, resource: AppRegistration, requested: str, user: User, client: AppRegistration,
        credential: ClientCredentialKind | None = None,
    ) -> IssuedToken:
        """A delegated token for ``user`` signed in through ``client``, which proved itself
        with ``credential`` (default: none for a public client, else a secret)."""
        if credential is None:
            credential = "public" if client.public_client else "secret"
        roles = self.roles_for(user.username, client.client_id, resource, "User")
        claims, now, version = self._base_claims(resource, requested, USER_TOKEN_LIFETIME)
        acr = _ACR[credential]
        pairwise = hashlib.sha256(f"{user.object_id}:{client.client_id}".encode()).digest()
        if version == 1:
            claims.update(appid=client.client_id, appidacr=acr, upn=user.username,
                          unique_name=user.username, amr=["pwd"], acr="1")
        else:
            claims.update(azp=client.client_id, azpacr=acr, preferred_username=user.username)
        claims.update(name=user.display_name or user.username, oid=user.object_id,
                      sub=base64.urlsafe_b64encode(pairwise).rstrip(b"=").decode()[:43],
                      scp="user_impersonation")
        if resource.first_party:
            claims["idtyp"] = "user"
        if roles:
            claims["roles"] = roles
        return self._finish(claims, version, now, USER_TOKEN_LIFETIME, requested)

    def id_token(self, client: AppRegistration, user: User, nonce: str | None) -> str:
        """A v2 ID token for ``client`` about ``user``."""
        now = int(self._clock())
        claims: dict[str, Any] = {
            "aud": client.client_id,
            "iss": self.issuer(2),
            "iat": now,
            "nbf": now,
            "exp": now + USER_TOKEN_LIFETIME,
            "name": user.display_name or user.username,
            "oid": user.object_id,
            "preferred_username": user.username,
            "sub": user.object_id,
            "tid": self.tenant_id,
            "uti": _rand_b64(16),
            "ver": "2.0",
        }
        if nonce:
            claims["nonce"] = nonce
        return self._sign(claims, 2)

    @staticmethod
    def new_correlation_id() -> str:
        return str(uuid.uuid4())
