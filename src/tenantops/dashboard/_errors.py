"""The dashboard's own refusals, placed in the `tenantops.errors` tree::

    AuthError
    ├── SignInError          (401) the sign-in round trip failed: state, code, tokens
    └── AccessDeniedError
        ├── CsrfTokenError   (403) a form without this session's CSRF token
        └── MissingRoleError
            └── RoleMissingError (403) an action the person's app roles do not allow

Signing in is not an error: `SignInRequired` is the signal that sends a person to sign in.
"""

from __future__ import annotations

from tenantops.errors import AccessDeniedError, AuthError, MissingRoleError

__all__ = ["CsrfTokenError", "RoleMissingError", "SignInError", "SignInRequired"]


class SignInError(AuthError):
    """Signing in failed (the authority refused, the state did not match, a token was not
    good for this API). The message says what to do; it never holds a token or a code."""

    status_code = 401


class CsrfTokenError(AccessDeniedError):
    """A form was posted without the CSRF token of the signed-in session."""


class SignInRequired(Exception):
    """No valid session: the person must sign in, then come back to ``next_path``."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class RoleMissingError(MissingRoleError):
    """A signed-in person asked for something their app roles do not allow; ``action`` says
    what (in words), ``role`` which app role it needs, ``held`` the roles they have."""

    def __init__(self, *, action: str, role: str, held: tuple[str, ...], who: str) -> None:
        roles = ", ".join(held) if held else "no app roles"
        super().__init__(
            f"{action} needs the app role {role}. You are signed in as {who}, with {roles}. "
            f"Ask an administrator of the tenantops API app registration to assign you "
            f"{role}, then sign out and sign in again.",
            expected={"role": role}, received={"roles": list(held)})
        self.action = action
        self.role = role
        self.held = held
