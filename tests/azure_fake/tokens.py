"""Bearer tokens as Entra issues them and as ARM and Key Vault check them.

`FakeEntra` signs RS256 access tokens for the fakes' tenant; `FakeEntra.credential` is a
``TokenCredential`` handing the SDK a token for the scope it asks for, with the audience Entra
would put in it (the resource's identifier, ``/.default`` removed). Tests make bad tokens
with its knobs: another tenant, an audience of their choice, an expired lifetime.

`check_arm_token` and `check_key_vault_token` answer what each service answers when a token
is wrong. Each answer's source:

- ARM, wrong audience: 401 ``InvalidAuthenticationTokenAudience`` "The access token has been
  obtained for wrong audience or resource '<aud>'. It should exactly match with one of the
  allowed audiences 'https://management.core.windows.net/','https://management.core.windows.
  net','https://management.azure.com/','https://management.azure.com'." (recorded in
  Azure-Samples/active-directory-dotnetcore-daemon-v2#145 and hashicorp/go-azure-helpers#51).
- ARM, another tenant's token: 401 ``InvalidAuthenticationTokenTenant`` "The access token is
  from the wrong issuer '<iss>'. It must match the tenant '<tenant iss>' associated with this
  subscription. Please use the authority (URL) 'https://login.windows.net/<tenant>' to get the
  token. ..." (Azure/azure-sdk-for-net#49391, Azure/pcs-cli#357).
- ARM, expired: 401 ``ExpiredAuthenticationToken`` "The access token expiry UTC time '<exp>'
  is earlier than current UTC time '<now>'." (microsoft/vscode-azureappservice#2483).
- ARM, no token: 401 ``AuthenticationFailed`` (kept from the first version of the fake; the
  exact message is unconfirmed). A token that does not verify: 401
  ``InvalidAuthenticationToken`` (the code is ARM's; the message is unconfirmed).
- Key Vault, no token: 401 with the ``WWW-Authenticate: Bearer authorization=...,
  resource="https://vault.azure.net"`` challenge and "AKV10000: Request is missing a Bearer,
  PoP, or MTLS_POP token." (recording ``test_example_secrets_recover[2025-07-01]``, see
  recordings/).
- Key Vault, wrong audience: 401 ``Unauthorized`` "AKV10022: Invalid audience. Expected
  https://vault.azure.net, found: <aud>." (crossplane-contrib/provider-azure#346; Key Vault also
  accepts its application ID cfa8b339-82a2-471a-a3c9-0fc0be7a4093 as audience,
  argoproj-labs/argocd-vault-plugin#621). A trailing slash is refused
  (Azure/go-autorest#525).
- Key Vault, another tenant or expired: 401 ``Unauthorized``; the AKV codes and messages are
  **unconfirmed** (the status follows RFC 6750 §3.1, ``invalid_token``).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
from azure.core.credentials import AccessToken
from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = [
    "ARM_AUDIENCES",
    "KEY_VAULT_AUDIENCES",
    "PRINCIPAL",
    "TENANT",
    "FakeEntra",
    "TokenProblem",
    "check_arm_token",
    "check_key_vault_token",
]

TENANT = "11111111-1111-1111-1111-111111111111"
PRINCIPAL = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
"""The object ID of the identity the tests' providers run as."""
APP_ID = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"

ARM_AUDIENCES = ("https://management.core.windows.net/", "https://management.core.windows.net",
                 "https://management.azure.com/", "https://management.azure.com")
KEY_VAULT_AUDIENCES = ("https://vault.azure.net", "cfa8b339-82a2-471a-a3c9-0fc0be7a4093")

_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass(frozen=True)
class TokenProblem:
    """What the service answers: status, error code, message and extra headers."""

    status: int
    code: str
    message: str
    headers: dict[str, str]


class FakeEntra:
    """Signs tokens for ``tenant``; ``now`` is the clock the services check expiry against."""

    def __init__(self, now: Callable[[], float], tenant: str = TENANT) -> None:
        self.now = now
        self.tenant = tenant
        self.public_key = _KEY.public_key()

    def issue(self, audience: str, *, principal: str = PRINCIPAL, tenant: str | None = None,
              lifetime: float = 3600.0, app_id: str = APP_ID) -> str:
        """A v1 access token as Entra issues one to a service principal or managed identity
        (claims per the shared reference azure-identity-and-easy-auth.md, "Token claims")."""
        tid = tenant or self.tenant
        now = int(self.now())
        claims: dict[str, Any] = {
            "aud": audience, "iss": f"https://sts.windows.net/{tid}/", "iat": now,
            "nbf": now, "exp": int(now + lifetime), "oid": principal, "sub": principal,
            "tid": tid, "appid": app_id, "appidacr": "2", "idtyp": "app", "ver": "1.0",
            "uti": uuid.uuid4().hex[:22],
        }
        return jwt.encode(claims, _KEY, algorithm="RS256", headers={"kid": "fake-entra"})

    def credential(self, *, principal: str = PRINCIPAL, tenant: str | None = None,
                   lifetime: float = 10 * 86400.0, audience: str | None = None
                   ) -> EntraCredential:
        """Tokens live ``lifetime`` fake seconds (ten days by default, so tests that run the
        fake clock fast never see one expire; a negative lifetime makes expired ones)."""
        return EntraCredential(self, principal, tenant, lifetime, audience)

    def verify(self, token: str) -> dict[str, Any] | None:
        """The claims when the signature verifies (nothing else is checked here)."""
        try:
            claims: dict[str, Any] = jwt.decode(
                token, self.public_key, algorithms=["RS256"],
                options={"verify_aud": False, "verify_exp": False, "verify_nbf": False,
                         "verify_iat": False})
        except jwt.PyJWTError:
            return None
        return claims


class EntraCredential:
    """A ``TokenCredential`` over `FakeEntra`: the audience is the scope without
    ``/.default`` (Entra's resource for that scope), unless ``audience`` forces another."""

    def __init__(self, entra: FakeEntra, principal: str, tenant: str | None, lifetime: float,
                 audience: str | None) -> None:
        self.entra = entra
        self.principal = principal
        self.tenant = tenant
        self.lifetime = lifetime
        self.audience = audience
        self.scopes: list[str] = []

    def get_token(self, *scopes: str, claims: str | None = None, tenant_id: str | None = None,
                  enable_cae: bool = False, **kwargs: Any) -> AccessToken:
        self.scopes.extend(scopes)
        scope = scopes[0]
        audience = self.audience or scope.removesuffix("/.default")
        if self.audience is None and audience == "https://vault.azure.net/":
            audience = "https://vault.azure.net"  # Key Vault's identifier URI has no slash
        token = self.entra.issue(audience, principal=self.principal, tenant=self.tenant,
                                 lifetime=self.lifetime)
        # The SDK caches the token by real time; the fakes check ``exp`` on the fake clock.
        return AccessToken(token, int(time.time() + self.lifetime))


def _bearer(authorization: str | None) -> str | None:
    if not authorization or not authorization.startswith("Bearer "):
        return None
    return authorization[len("Bearer "):].strip()


def _utc(seconds: float) -> str:
    moment = dt.datetime.fromtimestamp(seconds, dt.timezone.utc)
    return f"{moment.month}/{moment.day}/{moment.year} {moment:%I:%M:%S %p}"


def check_arm_token(entra: FakeEntra, authorization: str | None
                    ) -> tuple[dict[str, Any] | None, TokenProblem | None]:
    """(claims, None) for a good ARM token, else (None, what ARM answers)."""
    challenge = {"WWW-Authenticate": f'Bearer authorization_uri="https://login.windows.net/'
                                     f'{entra.tenant}", error="invalid_token"'}
    token = _bearer(authorization)
    if token is None:
        return None, TokenProblem(401, "AuthenticationFailed",
                                  "Authentication failed. The 'Authorization' header is "
                                  "missing.", challenge)
    claims = entra.verify(token)
    if claims is None:
        return None, TokenProblem(401, "InvalidAuthenticationToken",
                                  "The access token is invalid.", challenge)
    if claims.get("aud") not in ARM_AUDIENCES:
        allowed = ",".join(f"'{a}'" for a in ARM_AUDIENCES)
        return None, TokenProblem(
            401, "InvalidAuthenticationTokenAudience",
            f"The access token has been obtained for wrong audience or resource "
            f"'{claims.get('aud')}'. It should exactly match with one of the allowed "
            f"audiences {allowed}.", challenge)
    expected_iss = f"https://sts.windows.net/{entra.tenant}/"
    if claims.get("iss") != expected_iss:
        return None, TokenProblem(
            401, "InvalidAuthenticationTokenTenant",
            f"The access token is from the wrong issuer '{claims.get('iss')}'. It must match "
            f"the tenant '{expected_iss}' associated with this subscription. Please use the "
            f"authority (URL) 'https://login.windows.net/{entra.tenant}' to get the token. "
            "Note, if the subscription is transferred to another tenant there is no impact to "
            "the services, but information about new tenant could take time to propagate (up "
            "to an hour). If you just transferred your subscription and see this error "
            "message, please try back later.", challenge)
    now = entra.now()
    if float(claims.get("exp", 0)) <= now:
        return None, TokenProblem(
            401, "ExpiredAuthenticationToken",
            f"The access token expiry UTC time '{_utc(float(claims['exp']))}' is earlier than "
            f"current UTC time '{_utc(now)}'.", challenge)
    return claims, None


def check_key_vault_token(entra: FakeEntra, authorization: str | None
                          ) -> tuple[dict[str, Any] | None, TokenProblem | None]:
    """(claims, None) for a good Key Vault token, else (None, what Key Vault answers)."""
    challenge = {"WWW-Authenticate": f'Bearer authorization="https://login.microsoftonline.com/'
                                     f'{entra.tenant}", resource="https://vault.azure.net"'}
    token = _bearer(authorization)
    if token is None:
        return None, TokenProblem(401, "Unauthorized", "AKV10000: Request is missing a Bearer, "
                                  "PoP, or MTLS_POP token.", challenge)
    claims = entra.verify(token)
    if claims is None:
        return None, TokenProblem(401, "Unauthorized", "The token could not be validated "
                                  "(message unconfirmed).", challenge)
    if claims.get("aud") not in KEY_VAULT_AUDIENCES:
        return None, TokenProblem(
            401, "Unauthorized", f"AKV10022: Invalid audience. Expected "
            f"https://vault.azure.net, found: {claims.get('aud')}.", challenge)
    if claims.get("tid") != entra.tenant:
        return None, TokenProblem(
            401, "Unauthorized", f"The token's tenant {claims.get('tid')} is not the vault's "
            f"tenant {entra.tenant} (message unconfirmed).", challenge)
    if float(claims.get("exp", 0)) <= entra.now():
        return None, TokenProblem(401, "Unauthorized", "The token is expired (message "
                                  "unconfirmed).", challenge)
    return claims, None
