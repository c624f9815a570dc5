"""Everything a running emulator holds: directory, keys, token factory, runtime hosts, codes,
the outside issuers it plays, the client-assertion checks, and the managed-identity token cache.

The directory can change while the emulator runs in one way only: app role assignments
(`EmulatorState.assign`, ``tenantops emulator assign``), so the token cache's effect on a new
role can be seen as in Azure.

A *host* stands for the Azure resource a process runs on (an Automation account, a Function
App, a VM). Each managed identity named in the directory can be "the host's identity": a
system-assigned identity is its host's default; every user-assigned identity in the directory
is attached to every host and must be selected explicitly, as on Azure. A host is addressed by
its secret (the ``IDENTITY_HEADER`` / ``MSI_SECRET`` value, or a path segment for IMDS and
Arc, which have no secret header), derived from a key kept in the data folder.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tenantops.emulator.assertions import AssertionVerifier, ReplayPolicy
from tenantops.emulator.directory import (
    AppRegistration,
    Directory,
    ManagedIdentity,
    RoleAssignment,
)
from tenantops.emulator.issuers import IssuerRegistry
from tenantops.emulator.keys import KeyStore
from tenantops.emulator.token_cache import NO_CACHE, ManagedIdentityTokenCache, TokenCachePolicy
from tenantops.emulator.tokens import TokenFactory
from tenantops.errors import DirectoryError
from tenantops.pki import write_private

__all__ = ["AssignmentChange", "AuthorizationCode", "EmulatorState", "Host", "RefreshGrant"]

CODE_LIFETIME = 600.0
REFRESH_LIFETIME = 86400.0 * 90


@dataclass(frozen=True)
class Host:
    name: str
    system_identity: ManagedIdentity | None
    user_identities: tuple[ManagedIdentity, ...]


@dataclass(frozen=True)
class AuthorizationCode:
    client_id: str
    redirect_uri: str
    scope: str
    username: str
    code_challenge: str | None
    code_challenge_method: str | None
    nonce: str | None
    expires_at: float


@dataclass(frozen=True)
class RefreshGrant:
    client_id: str
    scope: str
    username: str
    expires_at: float


@dataclass(frozen=True)
class AssignmentChange:
    """An app role assignment made or removed while the emulator runs."""

    assignment: RoleAssignment
    added: bool
    at: float


@dataclass
class EmulatorState:
    directory: Directory
    data_dir: Path
    key_grace_seconds: float = 86400.0
    token_cache: TokenCachePolicy = NO_CACHE
    assertion_replay: ReplayPolicy = "allow"
    authority_url: str = ""
    mi_url: str = ""
    stats: Counter[str] = field(default_factory=Counter)
    assignment_changes: list[AssignmentChange] = field(default_factory=list)
    _codes: dict[str, AuthorizationCode] = field(default_factory=dict)
    _refresh: dict[str, RefreshGrant] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.keys = KeyStore(self.data_dir / "keys", grace_seconds=self.key_grace_seconds)
        self.tokens = TokenFactory(self.directory, self.keys, lambda: self.authority_url)
        self.issuers = IssuerRegistry(lambda: self.directory, self.data_dir,
                                      lambda: self.authority_url)
        self.assertions = AssertionVerifier(lambda: self.directory, self.issuers,
                                            lambda: self.authority_url,
                                            replay=self.assertion_replay)
        self.mi_tokens = ManagedIdentityTokenCache(self.token_cache)
        self._host_key: bytes | None = None
        self._hosts_by_secret: dict[str, Host] | None = None

    def _set_assignments(self, assignments: list[RoleAssignment]) -> None:
        directory = self.directory.model_copy(update={"assignments": assignments})
        try:
            directory.check_references()
        except ValueError as exc:
            raise DirectoryError(f"role assignment refused: {exc}") from exc
        self.directory = directory
        self.tokens.directory = directory

    def assign(self, assignment: RoleAssignment) -> bool:
        """Give ``assignment.principal`` the app role; False if it already holds it."""
        with self._lock:
            if assignment in self.directory.assignments:
                return False
            self._set_assignments([*self.directory.assignments, assignment])
            self.assignment_changes.append(AssignmentChange(assignment, True, time.time()))
            return True

    def unassign(self, assignment: RoleAssignment) -> bool:
        """Take the app role away; False if the principal did not hold it."""
        with self._lock:
            if assignment not in self.directory.assignments:
                return False
            self._set_assignments([a for a in self.directory.assignments if a != assignment])
            self.assignment_changes.append(AssignmentChange(assignment, False, time.time()))
            return True

    def application_roles(self, principal: str, resource: AppRegistration) -> list[str]:
        """The app roles a managed identity or app holds on ``resource`` now."""
        return [r for r in self.directory.roles_of(principal, resource)
                if (role := resource.role(r)) is not None
                and "Application" in role.allowed_member_types]

    def _load_host_key(self) -> bytes:
        if self._host_key is None:
            path = self.data_dir / "host.key"
            if not path.is_file():
                write_private(path, secrets.token_bytes(32))
            self._host_key = path.read_bytes()
        return self._host_key

    def host_secret(self, identity_name: str) -> str:
        """The secret that addresses the host whose identity is ``identity_name``."""
        digest = hmac.new(self._load_host_key(), identity_name.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:24]).decode("ascii")

    def host_for_secret(self, secret: str) -> Host | None:
        if self._hosts_by_secret is None:
            users = tuple(i for i in self.directory.identities if i.kind == "user")
            self._hosts_by_secret = {
                self.host_secret(mi.name): Host(
                    mi.name, mi if mi.kind == "system" else None, users
                )
                for mi in self.directory.identities
            }
        for known, host in self._hosts_by_secret.items():
            if hmac.compare_digest(known.encode(), secret.encode()):
                return host
        return None

    def count(self, what: str) -> None:
        with self._lock:
            self.stats[what] += 1

    def issue_code(self, grant: AuthorizationCode) -> str:
        code = secrets.token_urlsafe(32)
        with self._lock:
            self._codes[code] = grant
        return code

    def redeem_code(self, code: str) -> AuthorizationCode | None:
        """A code works once and for ten minutes."""
        with self._lock:
            grant = self._codes.pop(code, None)
        if grant is None or grant.expires_at < time.time():
            return None
        return grant

    def issue_refresh_token(self, grant: RefreshGrant) -> str:
        token = secrets.token_urlsafe(48)
        with self._lock:
            self._refresh[token] = grant
        return token

    def redeem_refresh_token(self, token: str) -> RefreshGrant | None:
        """Refresh tokens rotate: each works once and is replaced by the response's new one."""
        with self._lock:
            grant = self._refresh.pop(token, None)
        if grant is None or grant.expires_at < time.time():
            return None
        return grant
