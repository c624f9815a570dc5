"""The emulator's directory: a tenant with app registrations, managed identities and users.

It mirrors the parts of Microsoft Entra ID that decide what a token looks like and whether one
is issued at all: an app's identifier URIs and ``accessTokenAcceptedVersion`` (v1 or v2 token),
its app roles and "assignment required" switch, client secrets, certificates and federated
identity credentials, and redirect URIs; managed identities (client ID, principal/object ID, ARM
resource ID, system- or user-assigned, federated credentials for user-assigned ones); users for
the sign-in page; app role assignments; and the outside token issuers (an AKS cluster, GitHub
Actions) that federated credentials trust, which the emulator can play itself.

A directory is read from TOML (`load_directory`) or built in (`default_directory`). The
first-party resources every Entra tenant has (Azure Resource Manager, Key Vault, Microsoft
Graph, Storage) are always present, so a request for them behaves as in Azure.
"""

from __future__ import annotations

import re
import sys
import uuid
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from tenantops.errors import DirectoryError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

__all__ = [
    "FEDERATION_AUDIENCE",
    "AppRegistration",
    "AppRole",
    "Directory",
    "FederatedCredential",
    "Issuer",
    "KeyCredential",
    "ManagedIdentity",
    "Principal",
    "RoleAssignment",
    "User",
    "default_directory",
    "describe",
    "load_directory",
]

_NAMESPACE = uuid.UUID("6f1d7c3e-8a52-4b8e-9a43-0e2f6c1d5b70")


def _stable_id(*parts: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, "/".join(parts)))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AppRole(_Model):
    value: str
    id: str = ""
    display_name: str = ""
    allowed_member_types: list[Literal["Application", "User"]] = Field(
        default_factory=lambda: ["Application", "User"]  # type: ignore[arg-type]
    )


FEDERATION_AUDIENCE = "api://AzureADTokenExchange"
"""The audience Entra expects in federated assertions unless a credential names another
(Microsoft Graph federatedIdentityCredential, ``audiences``: "the recommended value is
api://AzureADTokenExchange")."""

_HEX = re.compile(r"[0-9a-f]+")


def _hex_thumbprint(value: str, length: int, field: str) -> str:
    cleaned = value.replace(":", "").replace(" ", "").lower()
    if len(cleaned) != length or not _HEX.fullmatch(cleaned):
        raise ValueError(f"{field} = {value!r}: expected {length} hexadecimal digits")
    return cleaned


class KeyCredential(_Model):
    """A certificate registered on an app (Microsoft Graph ``keyCredentials``).

    Either the public certificate (``certificate`` as PEM, or ``certificate_file``), from which
    both thumbprints follow; or only ``thumbprint`` (SHA-1, Graph's ``customKeyIdentifier``)
    and/or ``thumbprint_sha256``, for an app that trusts a certificate it has never seen: the
    client assertion must then carry the certificate in its ``x5c`` header, as with Entra's
    subject-name-and-issuer (SNI) registrations.
    """

    display_name: str = ""
    certificate: str = ""
    certificate_file: Path | None = None
    thumbprint: str = ""
    thumbprint_sha256: str = ""

    @model_validator(mode="before")
    @classmethod
    def _read_certificate(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        path = data.get("certificate_file")
        if path and data.get("certificate"):
            raise ValueError("give certificate or certificate_file, not both")
        if path:
            try:
                data["certificate"] = Path(path).read_text(encoding="utf-8")
            except OSError as exc:
                raise ValueError(f"certificate_file = {str(path)!r} cannot be read: "
                                 f"{exc.strerror or exc}") from exc
        pem = data.get("certificate")
        if pem:
            try:
                cert = x509.load_pem_x509_certificate(str(pem).encode("ascii"))
            except (ValueError, UnicodeEncodeError) as exc:
                raise ValueError("certificate is not a PEM X.509 certificate (-----BEGIN "
                                 "CERTIFICATE-----); give the public certificate, never the "
                                 "private key") from exc
            # SHA-1 names the certificate (Graph customKeyIdentifier, x5t); it protects nothing.
            for field, algorithm in (("thumbprint", hashes.SHA1()),  # noqa: S303
                                     ("thumbprint_sha256", hashes.SHA256())):
                actual = cert.fingerprint(algorithm).hex()
                given = data.get(field)
                if given and _hex_thumbprint(str(given), len(actual), field) != actual:
                    raise ValueError(f"{field} = {given!r} is not the certificate's "
                                     f"({actual}); leave it out, it is computed")
                data[field] = actual
        elif not (data.get("thumbprint") or data.get("thumbprint_sha256")):
            raise ValueError("a certificate credential needs certificate, certificate_file, "
                             "thumbprint or thumbprint_sha256")
        if data.get("thumbprint"):
            data["thumbprint"] = _hex_thumbprint(str(data["thumbprint"]), 40, "thumbprint")
        if data.get("thumbprint_sha256"):
            data["thumbprint_sha256"] = _hex_thumbprint(str(data["thumbprint_sha256"]), 64,
                                                        "thumbprint_sha256")
        return data

    def x509_certificate(self) -> x509.Certificate | None:
        """The registered certificate, or None for a thumbprint-only (SNI) registration."""
        if not self.certificate:
            return None
        return x509.load_pem_x509_certificate(self.certificate.encode("ascii"))

    def matches(self, sha1: str | None, sha256: str | None) -> bool:
        """Whether the hex thumbprints of an assertion's header name this certificate."""
        return bool((sha256 and sha256 == self.thumbprint_sha256)
                    or (sha1 and sha1 == self.thumbprint))


class FederatedCredential(_Model):
    """A federated identity credential (Microsoft Graph ``federatedIdentityCredential``).

    A token from ``issuer`` whose ``sub`` is ``subject`` and whose ``aud`` is one of
    ``audiences`` stands in for a secret. ``issuer`` is a URL, or the name of one of the
    directory's issuers (whose URL depends on where the emulator listens). Entra compares all
    three case-sensitively (Entra breaking changes, August 2024).
    """

    name: str
    issuer: str
    subject: str
    audiences: list[str] = Field(default_factory=lambda: [FEDERATION_AUDIENCE])
    description: str = ""

    @field_validator("audiences")
    @classmethod
    def _one_audience(cls, value: list[str]) -> list[str]:
        # Graph: "audiences ... can only have a single value".
        if len(value) != 1:
            raise ValueError(f"exactly one audience, as Microsoft Graph allows; got {value}")
        return value


_ISSUER_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


class Issuer(_Model):
    """An OIDC token issuer outside Entra that federated credentials trust.

    Without ``url`` the emulator plays it: discovery at ``<authority>/issuers/<name>/.well-known
    /openid-configuration``, its own signing keys, and tokens minted for any subject (an AKS
    cluster's service accounts, a GitHub Actions workflow). With ``url`` it is an issuer the
    emulator cannot reach (it works offline): its keys come from ``jwks_file`` (for example
    ``kubectl get --raw /openid/v1/jwks``), and without one every assertion from it is refused
    as Entra refuses an issuer whose metadata it cannot fetch (AADSTS90061).
    """

    name: str
    url: str = ""
    jwks_file: Path | None = None

    @field_validator("name")
    @classmethod
    def _path_safe(cls, value: str) -> str:
        if not _ISSUER_NAME.fullmatch(value):
            raise ValueError(f"{value!r}: lowercase letters, digits and '-' (it is a URL path "
                             "segment)")
        return value

    @property
    def hosted(self) -> bool:
        return not self.url


class AppRegistration(_Model):
    """An app registration together with its service principal in this tenant."""

    name: str
    client_id: str = ""
    service_principal_id: str = ""
    identifier_uris: list[str] = Field(default_factory=list)
    app_roles: list[AppRole] = Field(default_factory=list)
    access_token_accepted_version: Literal[1, 2] = 1
    assignment_required: bool = False
    client_secrets: list[SecretStr] = Field(default_factory=list)
    certificates: list[KeyCredential] = Field(default_factory=list)
    federated_credentials: list[FederatedCredential] = Field(default_factory=list)
    optional_claims: list[Literal["idtyp"]] = Field(default_factory=list)
    """Access-token optional claims the app asks for (app manifest ``optionalClaims``)."""
    redirect_uris: list[str] = Field(default_factory=list)
    public_client: bool = False
    first_party: bool = False

    def role(self, value: str) -> AppRole | None:
        return next((r for r in self.app_roles if r.value == value), None)

    def matches_resource(self, resource: str) -> bool:
        """True when ``resource`` names this app: its client ID or an identifier URI.

        Entra compares identifier URIs case-insensitively and with or without a trailing slash.
        """
        wanted = resource.strip().rstrip("/").lower()
        if wanted == self.client_id.lower():
            return True
        return any(uri.rstrip("/").lower() == wanted for uri in self.identifier_uris)


class ManagedIdentity(_Model):
    name: str
    kind: Literal["system", "user"] = "system"
    client_id: str = ""
    principal_id: str = ""
    resource_id: str = ""
    federated_credentials: list[FederatedCredential] = Field(default_factory=list)

    @model_validator(mode="after")
    def _federation_needs_user_assigned(self) -> ManagedIdentity:
        # "Federated identity credentials are supported on user-assigned managed identities"
        # (Entra docs, workload-identity-federation-create-trust-user-assigned-managed-identity).
        if self.federated_credentials and self.kind != "user":
            raise ValueError(f"identity {self.name!r}: federated_credentials need kind = "
                             "\"user\" (Entra trusts outside issuers for user-assigned managed "
                             "identities only)")
        return self


class User(_Model):
    username: str
    display_name: str = ""
    object_id: str = ""
    password: SecretStr


class RoleAssignment(_Model):
    """``principal`` (identity, app or user name) holds ``role`` on app ``resource``."""

    principal: str
    resource: str
    role: str


Principal = ManagedIdentity | AppRegistration | User


class Directory(_Model):
    tenant_id: str
    apps: list[AppRegistration] = Field(default_factory=list)
    identities: list[ManagedIdentity] = Field(default_factory=list)
    users: list[User] = Field(default_factory=list)
    assignments: list[RoleAssignment] = Field(default_factory=list)
    issuers: list[Issuer] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _fill_ids(cls, data: object) -> object:
        """Give every object without an ID a stable one derived from its name."""
        if not isinstance(data, dict):
            return data
        tenant = str(data.get("tenant_id", ""))
        for app in data.get("apps", []) or []:
            if isinstance(app, dict):
                name = str(app.get("name", ""))
                app.setdefault("client_id", _stable_id(tenant, "app", name))
                app.setdefault("service_principal_id", _stable_id(tenant, "sp", name))
                for role in app.get("app_roles", []) or []:
                    if isinstance(role, dict):
                        value = str(role.get("value"))
                        role.setdefault("id", _stable_id(tenant, name, "role", value))
        for mi in data.get("identities", []) or []:
            if isinstance(mi, dict):
                name = str(mi.get("name", ""))
                mi.setdefault("client_id", _stable_id(tenant, "mi-client", name))
                mi.setdefault("principal_id", _stable_id(tenant, "mi-principal", name))
                if mi.get("kind", "system") == "user":
                    default_rid = (
                        "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/"
                        f"rg-tenantops/providers/Microsoft.ManagedIdentity/"
                        f"userAssignedIdentities/{name}"
                    )
                else:
                    default_rid = (
                        "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/"
                        f"rg-tenantops/providers/Microsoft.Automation/automationAccounts/{name}"
                    )
                mi.setdefault("resource_id", default_rid)
        for user in data.get("users", []) or []:
            if isinstance(user, dict):
                user.setdefault("object_id", _stable_id(tenant, "user", str(user.get("username"))))
        return data

    @model_validator(mode="after")
    def _check_references(self) -> Directory:
        self.check_references()
        return self

    def check_references(self) -> None:
        """Raise ValueError naming the entry when a name refers to nothing."""
        names = [a.name for a in self.apps] + [i.name for i in self.identities]
        names += [u.username for u in self.users]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(
                f"names must be unique across apps, identities and users: {duplicates}"
            )
        for index, assignment in enumerate(self.assignments):
            app = self.app_by_name(assignment.resource)
            where = f"assignments[{index}]"
            if app is None:
                raise ValueError(f"{where}.resource = {assignment.resource!r}: no such app")
            if self.principal_by_name(assignment.principal) is None:
                raise ValueError(
                    f"{where}.principal = {assignment.principal!r}: no such identity, app or user"
                )
            if app.role(assignment.role) is None:
                raise ValueError(
                    f"{where}.role = {assignment.role!r}: app {app.name!r} defines "
                    f"{[r.value for r in app.app_roles]}"
                )
        issuer_names = [i.name for i in self.issuers]
        if len(set(issuer_names)) != len(issuer_names):
            raise ValueError(f"issuer names must be unique: {sorted(issuer_names)}")
        owners: list[tuple[str, AppRegistration | ManagedIdentity]] = [
            *((f"apps[{n}]", a) for n, a in enumerate(self.apps)),
            *((f"identities[{n}]", i) for n, i in enumerate(self.identities))]
        for where, owner in owners:
            for n, credential in enumerate(owner.federated_credentials):
                if "://" not in credential.issuer and credential.issuer not in issuer_names:
                    raise ValueError(
                        f"{where}.federated_credentials[{n}].issuer = {credential.issuer!r}: "
                        f"neither a URL nor one of the directory's issuers {issuer_names}")

    def app_by_name(self, name: str) -> AppRegistration | None:
        return next((a for a in self.apps if a.name == name), None)

    def app_by_client_id(self, client_id: str) -> AppRegistration | None:
        wanted = client_id.lower()
        return next((a for a in self.apps if a.client_id.lower() == wanted), None)

    def issuer_by_name(self, name: str) -> Issuer | None:
        return next((i for i in self.issuers if i.name == name), None)

    def identity_by_client_id(self, client_id: str) -> ManagedIdentity | None:
        wanted = client_id.lower()
        return next((i for i in self.identities if i.client_id.lower() == wanted), None)

    def app_for_resource(self, resource: str) -> AppRegistration | None:
        return next((a for a in self.apps if a.matches_resource(resource)), None)

    def identity_by_name(self, name: str) -> ManagedIdentity | None:
        return next((i for i in self.identities if i.name == name), None)

    def user_by_username(self, username: str) -> User | None:
        wanted = username.strip().lower()
        return next((u for u in self.users if u.username.lower() == wanted), None)

    def principal_by_name(self, name: str) -> Principal | None:
        return self.identity_by_name(name) or self.app_by_name(name) or self.user_by_username(name)

    def roles_of(self, principal_name: str, resource: AppRegistration) -> list[str]:
        """App roles that ``principal_name`` holds on ``resource``, in definition order."""
        held = {
            a.role
            for a in self.assignments
            if a.principal == principal_name and a.resource == resource.name
        }
        return [r.value for r in resource.app_roles if r.value in held]


_FIRST_PARTY = [
    ("Azure Resource Manager", "797f4846-ba00-4fd7-ba43-dac1f8f63013",
     ["https://management.core.windows.net/", "https://management.azure.com/"]),
    ("Azure Key Vault", "cfa8b339-82a2-471a-a3c9-0fc0be7a4093", ["https://vault.azure.net"]),
    ("Microsoft Graph", "00000003-0000-0000-c000-000000000000", ["https://graph.microsoft.com"]),
    ("Azure Storage", "e406a681-f3d4-42a8-90b6-c2b029497af1", ["https://storage.azure.com/"]),
    # Event Grid's application ID: "Deliver events to Microsoft Entra protected endpoints"
    # ($eventGridAppId in Microsoft's secure webhook delivery scripts).
    ("Azure Event Grid", "4962773b-9cdb-44cf-a8bf-237846a00ab7",
     ["https://eventgrid.azure.net"]),
]

API_CLIENT_ID = "5f9d1b7c-2a4e-4c1d-9b3a-7e6f0a1c2d3e"
DEFAULT_TENANT_ID = "8d6f5c2a-1b3e-4f70-9a6c-2e4b7d9f0a15"


def _with_first_party(data: dict[str, object]) -> dict[str, object]:
    apps = list(data.get("apps", []) or [])  # type: ignore[call-overload]
    present = {a.get("name") for a in apps if isinstance(a, dict)}
    for name, client_id, uris in _FIRST_PARTY:
        if name not in present:
            apps.append(
                {"name": name, "client_id": client_id, "identifier_uris": uris,
                 "first_party": True, "access_token_accepted_version": 1}
            )
    return {**data, "apps": apps}


def _default_data() -> dict[str, object]:
    tenant_roles = [
        {"value": "Tenants.Read", "display_name": "Read tenants and runs"},
        {"value": "Tenants.Write", "display_name": "Onboard tenants, retry and cancel runs"},
        {"value": "Tenants.Delete", "display_name": "Offboard tenants"},
        {"value": "Audit.Read", "display_name": "Read the audit trail"},
    ]
    return {
        "tenant_id": DEFAULT_TENANT_ID,
        "apps": [
            {
                "name": "tenantops-api",
                "client_id": API_CLIENT_ID,
                "identifier_uris": [f"api://{API_CLIENT_ID}"],
                "app_roles": tenant_roles,
                "access_token_accepted_version": 1,
            },
            {
                "name": "billing-api",
                "client_id": "0b7c4e2d-6f1a-4d3b-8c5e-9a2f1e7d4b60",
                "identifier_uris": ["api://billing"],
                "app_roles": [{"value": "Billing.Read", "allowed_member_types": ["Application"]}],
                "access_token_accepted_version": 2,
                "assignment_required": True,
            },
            {
                "name": "tenantops-dashboard",
                "client_id": "3c2b1a09-8e7d-4c6b-a5f4-e3d2c1b0a987",
                "client_secrets": ["dashboard-local-secret"],
                "redirect_uris": ["http://localhost/auth/callback", "http://127.0.0.1/auth/callback"],
            },
            {
                "name": "tenantops-cli",
                "client_id": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
                "public_client": True,
                "redirect_uris": ["http://localhost", "http://127.0.0.1"],
            },
            {
                "name": "ci-pipeline",
                "client_id": "4d3c2b1a-0f9e-4d8c-b7a6-5f4e3d2c1b0a",
                "client_secrets": ["ci-local-secret"],
            },
        ],
        "identities": [
            {"name": "aa-onboarding", "kind": "system"},
            {"name": "uami-no-role", "kind": "user"},
            {"name": "uami-reader", "kind": "user"},
            {"name": "aa-auditor", "kind": "system"},  # a SIEM export job: Audit.Read only
            # Terminal identities for people trying tenantops locally ('tenantops emulator
            # env --identity ops-admin --runtime app-service'): every role, and read only.
            {"name": "ops-admin", "kind": "system"},
            {"name": "ops-reader", "kind": "system"},
        ],
        "users": [
            {"username": "operator@contoso.test", "display_name": "Olive Operator",
             "password": "operator"},
            {"username": "reader@contoso.test", "display_name": "Reid Reader",
             "password": "reader"},
        ],
        "assignments": [
            {"principal": "aa-onboarding", "resource": "tenantops-api", "role": "Tenants.Read"},
            {"principal": "aa-onboarding", "resource": "tenantops-api", "role": "Tenants.Write"},
            {"principal": "uami-reader", "resource": "tenantops-api", "role": "Tenants.Read"},
            {"principal": "aa-auditor", "resource": "tenantops-api", "role": "Audit.Read"},
            {"principal": "ops-admin", "resource": "tenantops-api", "role": "Tenants.Read"},
            {"principal": "ops-admin", "resource": "tenantops-api", "role": "Tenants.Write"},
            {"principal": "ops-admin", "resource": "tenantops-api", "role": "Tenants.Delete"},
            {"principal": "ops-reader", "resource": "tenantops-api", "role": "Tenants.Read"},
            {"principal": "ci-pipeline", "resource": "tenantops-api", "role": "Tenants.Read"},
            {"principal": "ci-pipeline", "resource": "tenantops-api", "role": "Tenants.Write"},
            {"principal": "operator@contoso.test", "resource": "tenantops-api",
             "role": "Tenants.Read"},
            {"principal": "operator@contoso.test", "resource": "tenantops-api",
             "role": "Tenants.Write"},
            {"principal": "operator@contoso.test", "resource": "tenantops-api",
             "role": "Tenants.Delete"},
            {"principal": "operator@contoso.test", "resource": "tenantops-api",
             "role": "Audit.Read"},
            {"principal": "reader@contoso.test", "resource": "tenantops-api",
             "role": "Tenants.Read"},
        ],
    }


def _build(data: dict[str, object], source: str) -> Directory:
    try:
        return Directory.model_validate(_with_first_party(data))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}"
            f"{' = ' + repr(err['input']) if not isinstance(err['input'], dict) else ''}"
            f": {err['msg']}"
            for err in exc.errors()
        )
        raise DirectoryError(f"invalid emulator directory {source}: {problems}") from exc


def _with_federation(data: dict[str, object]) -> dict[str, object]:
    """The built-in workload-identity examples: an AKS cluster and GitHub Actions, played by
    the emulator, and the identities that trust them."""
    apps = list(data.get("apps", []) or [])  # type: ignore[call-overload]
    identities = list(data.get("identities", []) or [])  # type: ignore[call-overload]
    assignments = list(data.get("assignments", []) or [])  # type: ignore[call-overload]
    identities.append({
        "name": "uami-aks-onboarding", "kind": "user",
        "federated_credentials": [{
            "name": "aks-tenantops-onboarding", "issuer": "aks",
            "subject": "system:serviceaccount:tenantops:onboarding"}],
    })
    apps.append({
        "name": "github-deploy",
        "client_id": "6e5d4c3b-2a19-4f08-8e7d-6c5b4a392817",
        "federated_credentials": [{
            "name": "contoso-tenantops-main", "issuer": "github-actions",
            "subject": "repo:contoso/tenantops:ref:refs/heads/main"}],
    })
    assignments += [
        {"principal": "uami-aks-onboarding", "resource": "tenantops-api", "role": "Tenants.Read"},
        {"principal": "uami-aks-onboarding", "resource": "tenantops-api",
         "role": "Tenants.Write"},
        {"principal": "github-deploy", "resource": "tenantops-api", "role": "Tenants.Read"},
    ]
    issuers = [*(data.get("issuers", []) or []),  # type: ignore[misc]
               {"name": "aks"}, {"name": "github-actions"}]
    return {**data, "apps": apps, "identities": identities, "assignments": assignments,
            "issuers": issuers}


def default_directory() -> Directory:
    """The built-in directory used by the demo and the tests (see docs/emulator.md)."""
    return _build(_with_federation(_default_data()), "(built-in default)")


def _relative_to(data: dict[str, Any], folder: Path) -> dict[str, Any]:
    """File paths in a TOML directory (certificate_file, jwks_file) are relative to its folder."""
    def resolve(entry: object, key: str) -> None:
        if isinstance(entry, dict) and isinstance(entry.get(key), str):
            entry[key] = str(folder / entry[key])

    for app in data.get("apps", []) or []:
        for credential in (app.get("certificates", []) if isinstance(app, dict) else []) or []:
            resolve(credential, "certificate_file")
    for issuer in data.get("issuers", []) or []:
        resolve(issuer, "jwks_file")
    return data


def load_directory(path: Path) -> Directory:
    """Read a directory from TOML; every error names the entry, the field and the rule."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise DirectoryError(f"emulator directory file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise DirectoryError(f"emulator directory file {path} is not valid TOML: {exc}") from exc
    return _build(_relative_to(data, path.parent), str(path))


def describe(directory: Directory, authority: str) -> dict[str, object]:
    """The directory as ``tenantops emulator show`` prints it (no secrets, no passwords)."""
    def roles(principal: str) -> list[str]:
        return [a.role for a in directory.assignments if a.principal == principal]

    def assignments(principal: str) -> list[dict[str, str]]:
        return [{"resource": a.resource, "role": a.role}
                for a in directory.assignments if a.principal == principal]

    return {
        "tenant_id": directory.tenant_id,
        "authority": authority,
        "apps": [
            {
                "name": app.name,
                "client_id": app.client_id,
                "service_principal_id": app.service_principal_id,
                "identifier_uris": app.identifier_uris,
                "app_roles": [
                    {"value": r.value, "id": r.id, "allowed_member_types": r.allowed_member_types}
                    for r in app.app_roles
                ],
                "access_token_accepted_version": app.access_token_accepted_version,
                "assignment_required": app.assignment_required,
                "redirect_uris": app.redirect_uris,
                "public_client": app.public_client,
                "has_client_secret": bool(app.client_secrets),
                "certificates": [
                    {"thumbprint": c.thumbprint, "thumbprint_sha256": c.thumbprint_sha256,
                     "display_name": c.display_name, "has_certificate": bool(c.certificate)}
                    for c in app.certificates],
                "federated_credentials": [fic.model_dump() for fic in app.federated_credentials],
                "optional_claims": app.optional_claims,
                "first_party": app.first_party,
                "roles": roles(app.name),
                "role_assignments": assignments(app.name),
            }
            for app in directory.apps
        ],
        "identities": [
            {
                "name": mi.name,
                "kind": mi.kind,
                "client_id": mi.client_id,
                "principal_id": mi.principal_id,
                "resource_id": mi.resource_id,
                "federated_credentials": [fic.model_dump() for fic in mi.federated_credentials],
                "roles": roles(mi.name),
                "role_assignments": assignments(mi.name),
            }
            for mi in directory.identities
        ],
        "users": [
            {"username": u.username, "display_name": u.display_name, "object_id": u.object_id,
             "roles": roles(u.username), "role_assignments": assignments(u.username)}
            for u in directory.users
        ],
        "issuers": [
            {"name": i.name, "url": i.url or f"{authority}/issuers/{i.name}",
             "hosted": i.hosted}
            for i in directory.issuers
        ],
    }
