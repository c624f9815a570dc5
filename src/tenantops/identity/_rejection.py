"""Why an API refused a call (401/403): the token's claims beside what the API expects.

Used by `TenantOpsClient` (for `ApiCallRejectedError`'s message) and by the doctor.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from tenantops.errors import CallRejectedError, InvalidTokenError
from tenantops.identity._audience import Audience
from tenantops.identity._challenge import (
    BearerChallenge,
    ErrorBody,
    parse_bearer_challenge,
    render_value,
)
from tenantops.identity._refusals import role_assignment_fix
from tenantops.identity._token import DecodedToken, decode_token, is_arm_audience

__all__ = ["ApiCallRejectedError", "Rejection"]


def _token_of(request: httpx.Request) -> DecodedToken | None:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("bearer "):
        return None
    try:
        return decode_token(header[7:])
    except InvalidTokenError:
        return None


def _single_role(value: object) -> str | None:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
        return value[0]
    if isinstance(value, dict):
        for key in ("role", "roles"):
            found = _single_role(value.get(key))
            if found:
                return found
    return None


@dataclass(frozen=True)
class Rejection:
    """A 401/403 answer with everything needed to explain it; holds no token."""

    method: str
    url: str
    status: int
    challenge: BearerChallenge | None
    body: ErrorBody | None
    token: DecodedToken | None

    @classmethod
    def from_response(cls, response: httpx.Response) -> Rejection:
        request = response.request
        return cls(
            method=request.method,
            url=str(request.url),
            status=response.status_code,
            challenge=parse_bearer_challenge(response.headers.get("www-authenticate")),
            body=ErrorBody.from_response(response),
            token=_token_of(request),
        )

    @property
    def error(self) -> str | None:
        return (self.challenge.error if self.challenge else None) or (
            self.body.error if self.body else None)

    @property
    def description(self) -> str | None:
        return (self.challenge.error_description if self.challenge else None) or (
            self.body.error_description if self.body else None)

    @property
    def expected_audience(self) -> str | None:
        return self.challenge.resource_id if self.challenge else None

    def _audience_mismatch(self) -> bool:
        expected, token = self.expected_audience, self.token
        if not expected or token is None or token.aud is None:
            return False
        return not Audience(expected).matches(token.aud)

    def next_step(self, now: float) -> str:
        """The one thing to do next, with the values filled in."""
        token = self.token
        expected = self.expected_audience
        if token is None:
            return ("send a bearer token: 'tenantops call' and TenantOpsClient get one for the "
                    "audience the API advertises")
        if self.status == 401 and self._audience_mismatch():
            assert expected is not None
            what = (f"the token is for Azure Resource Manager (aud={token.aud}), the default of "
                    "'az account get-access-token' and Connect-AzAccount"
                    if token.aud and is_arm_audience(token.aud)
                    else f"the token's audience {token.aud} is not this API's")
            return (f"{what}. Request a token whose resource is the API's client ID {expected}: "
                    f"managed identity resource={expected}, client credentials scope "
                    f"api://{expected}/.default, Azure CLI 'az account get-access-token "
                    f"--resource {expected}'; 'tenantops call' does this by itself.")
        exp = token.expires_on
        if self.status == 401 and exp is not None and exp <= now:
            return f"the token {token.expiry(now)}; get a new one (TenantOpsClient refreshes)."
        tenant = self.challenge.tenant_id if self.challenge else None
        if self.status == 401 and tenant and token.tid and tenant.lower() != token.tid.lower() \
                and len(tenant) == 36:
            return (f"the token is from tenant {token.tid}, the API trusts tenant {tenant}; get "
                    "the token from an identity in that tenant (AZURE_TENANT_ID).")
        if self.status == 403:
            expected_value = self.body.expected if self.body else None
            role = _single_role(expected_value)
            api = Audience(token.aud).client_id if token.aud else None
            have = ", ".join(token.roles) if token.roles else "none"
            needed = f"app role {role}" if role else render_value(expected_value)
            return (f"the token is valid but lacks the permission this call needs ({needed}; "
                    f"the token's roles: {have}); "
                    + role_assignment_fix(api=expected or api, principal_object_id=token.oid,
                                          role=role))
        return ("compare the token's claims above with what the API expects; the API's words: "
                f"{self.description or '(none)'}")

    def message(self, now: float | None = None) -> str:
        now = time.time() if now is None else now
        error = f" ({self.error})" if self.error else ""
        lines = [f"{self.method} {self.url} was refused with HTTP {self.status}{error}: "
                 f"{self.description or 'no description given'}"]
        if self.token is not None:
            lines.append(f"  the token had:     {self.token.describe(now)}")
        else:
            lines.append("  the token had:     (no bearer token was sent)")
        expects = []
        if self.body is not None and self.body.expected is not None:
            expects.append(f"expected {render_value(self.body.expected)}")
        if self.body is not None and self.body.received is not None:
            expects.append(f"received {render_value(self.body.received)}")
        if self.expected_audience:
            expects.append(f"audience (resource_id) {self.expected_audience}")
        if self.challenge is not None and self.challenge.tenant_id:
            expects.append(f"tenant {self.challenge.tenant_id}")
        lines.append(f"  the API expects:   {'; '.join(expects) if expects else '(not stated)'}")
        lines.append(f"Next: {self.next_step(now)}")
        return "\n".join(lines)


class ApiCallRejectedError(CallRejectedError):
    """`CallRejectedError` with the evidence: ``rejection`` (status, challenge, body, claims)."""

    def __init__(self, rejection: Rejection, now: float | None = None) -> None:
        super().__init__(rejection.message(now))
        self.rejection = rejection

    @property
    def status_code(self) -> int:
        return self.rejection.status
