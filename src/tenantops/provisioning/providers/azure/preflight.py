"""``tenantops azure check``: a read-only preflight of what the Azure providers will need.

For each Azure provider named in the configuration it checks, with GET requests only:

1. a token for Azure Resource Manager can be had from the configured identity;
2. the resources exist and the identity can read them (the web app, each configured DNS zone,
   the SQL server and its elastic pool, the flexible server; a page of the vault's secrets);
3. the identity holds the actions the provider will perform there, as ARM computes them from
   its role assignments (``Microsoft.Authorization/permissions``, which includes roles
   inherited from the resource group and subscription). The actions come from `permissions`,
   the table the tests' ARM fake enforces too.

Every failed check is a `Finding` with what failed and the fix: usually an
``az role assignment create`` naming the built-in role, the identity and the scope.
Nothing is created, changed or deleted.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from azure.core.pipeline.policies import BearerTokenCredentialPolicy, RetryPolicy
from azure.core.rest import HttpRequest
from azure.mgmt.core import ARMPipelineClient

from tenantops.config import Settings
from tenantops.errors import TenantOpsError
from tenantops.identity import decode_token
from tenantops.provisioning.providers.azure.connection import AzureConnection
from tenantops.provisioning.providers.azure.errors import translate_azure_error
from tenantops.provisioning.providers.azure.permissions import actions_for
from tenantops.provisioning.providers.azure.resource_ids import resource_id

__all__ = ["ARM_SCOPE", "Finding", "run_preflight"]

ARM_SCOPE = "https://management.azure.com/.default"
_PERMISSIONS_API = "2022-04-01"


@dataclass(frozen=True)
class Finding:
    """One check: ``ok``, what was checked and seen, and (when not ok) how to fix it."""

    check: str
    ok: bool
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class _Target:
    label: str
    scope: str
    read_path: str
    api_version: str
    actions: tuple[str, ...]
    role: str


class _Preflight:
    def __init__(self, settings: Settings, connection: AzureConnection) -> None:
        self.settings = settings
        self.connection = connection
        self.findings: list[Finding] = []
        self.principal = "<principal-id of the identity>"
        self._arm: ARMPipelineClient[HttpRequest, Any] = ARMPipelineClient(
            base_url=connection.arm_endpoint,
            policies=[BearerTokenCredentialPolicy(connection.credential, ARM_SCOPE),
                      RetryPolicy(retry_total=connection.retries)],
            **({"transport": connection.transport} if connection.transport else {}))

    def add(self, check: str, ok: bool, detail: str, fix: str = "") -> bool:
        self.findings.append(Finding(check, ok, detail, fix))
        return ok

    def get(self, path: str, api_version: str) -> tuple[int, Any]:
        request = HttpRequest("GET", f"{self.connection.arm_endpoint}{path}",
                              params={"api-version": api_version})
        response = self._arm.send_request(request)
        try:
            body = response.json()
        except ValueError:
            body = None
        return response.status_code, body

    def token(self) -> bool:
        try:
            token = self.connection.credential.get_token(ARM_SCOPE)
        except TenantOpsError as exc:
            return self.add("token for Azure Resource Manager", False, str(exc),
                            "set [azure] identity_source/identity to an identity that exists "
                            "here (the Function App's managed identity in Azure)")
        except Exception as exc:
            refused = translate_azure_error(exc, doing="get a token for Azure Resource Manager")
            return self.add("token for Azure Resource Manager", False, str(refused),
                            "sign in (az login) or configure [azure] identity_source")
        try:
            claims = decode_token(token.token).claims
            self.principal = str(claims.get("oid") or self.principal)
            who = f"principal {claims.get('oid')} (app {claims.get('appid') or claims.get('azp')})"
        except TenantOpsError:
            who = "the configured identity"
        return self.add("token for Azure Resource Manager", True, f"issued to {who}")

    def target(self, target: _Target) -> None:
        try:
            status, body = self.get(target.read_path, target.api_version)
        except Exception as exc:
            error = translate_azure_error(exc, doing=f"read {target.label}")
            self.add(f"read {target.label}", False, str(error), "check network access to ARM")
            return
        if status == 404:
            self.add(f"read {target.label}", False, f"{target.read_path} does not exist (404)",
                     "check the name and resource group in the [providers] configuration")
            return
        if status == 403:
            self.add(f"read {target.label}", False,
                     f"the identity may not read {target.read_path} (403)", self._grant(target))
            return
        if status >= 400:
            self.add(f"read {target.label}", False, f"ARM answered {status} {_arm_error(body)}",
                     "see ARM's message")
            return
        self.add(f"read {target.label}", True, target.read_path)
        self._permissions(target)

    def _permissions(self, target: _Target) -> None:
        status, body = self.get(f"{target.scope}/providers/Microsoft.Authorization/permissions",
                                _PERMISSIONS_API)
        if status >= 400:
            self.add(f"roles on {target.label}", False,
                     f"cannot read the identity's permissions ({status} {_arm_error(body)})",
                     "grant Reader (Microsoft.Authorization/permissions/read) at the scope")
            return
        entries = body.get("value", []) if isinstance(body, dict) else []
        missing = [a for a in target.actions if not _allowed(a, entries)]
        if missing:
            self.add(f"roles on {target.label}", False,
                     f"the identity lacks {', '.join(missing)}", self._grant(target))
        else:
            self.add(f"roles on {target.label}", True,
                     f"holds {', '.join(target.actions)}")

    def _grant(self, target: _Target) -> str:
        return (f'az role assignment create --assignee-object-id {self.principal} '
                f'--assignee-principal-type ServicePrincipal --role "{target.role}" '
                f'--scope {target.scope}')


def _arm_error(body: Any) -> str:
    if isinstance(body, dict):
        error = body.get("error") if isinstance(body.get("error"), dict) else body
        assert isinstance(error, dict)
        return f"{error.get('code') or error.get('Code')}: " \
               f"{error.get('message') or error.get('Message')}"
    return ""


def _matches(pattern: str, action: str) -> bool:
    return fnmatch.fnmatchcase(action.lower(), pattern.lower())


def _allowed(action: str, entries: Sequence[Any]) -> bool:
    """ARM's rule: an action is allowed when some role assignment lists it in ``actions``
    and does not exclude it in that same assignment's ``notActions``."""
    return any(
        any(_matches(a, action) for a in entry.get("actions", []))
        and not any(_matches(n, action) for n in entry.get("notActions", []))
        for entry in entries if isinstance(entry, dict))


def _targets(settings: Settings, connection: AzureConnection) -> list[_Target]:
    sub = connection.subscription_id
    providers = settings.providers
    targets: list[_Target] = []

    def group(override: str | None) -> str:
        return override or connection.resource_group

    if providers.webhost.name == "azure-app-service":
        web = providers.webhost.azure_app_service
        rg = group(web.resource_group)
        site = resource_id(sub, rg, "Microsoft.Web", "sites", str(web.app_name))
        targets.append(_Target(
            f"web app {web.app_name}", site, site, "2025-05-01",
            actions_for("azure-app-service"), "Website Contributor"))
        rg_scope = f"/subscriptions/{sub}/resourceGroups/{rg}"
        targets.append(_Target(
            f"certificates in resource group {rg}", rg_scope, site, "2025-05-01",
            actions_for("azure-app-service", "resource-group"), "Website Contributor"))
    if providers.dns.name == "azure-dns":
        rg = group(providers.dns.azure.resource_group)
        for zone in providers.dns.zones:
            zone_id = resource_id(sub, rg, "Microsoft.Network", "dnsZones", zone.rstrip("."))
            targets.append(_Target(
                f"DNS zone {zone}", zone_id, zone_id, "2018-05-01",
                actions_for("azure-dns", writes_only=True), "DNS Zone Contributor"))
    if providers.database.name == "azure-sql":
        sql = providers.database.azure_sql
        for entry in providers.database.server_list():  # each logical server tenants go on
            server = resource_id(sub, group(entry.resource_group or sql.resource_group),
                                 "Microsoft.Sql", "servers", str(entry.server))
            targets.append(_Target(
                f"SQL server {entry.server}", server,
                f"{server}/elasticPools/{sql.elastic_pool}", "2025-01-01",
                actions_for("azure-sql"), "SQL DB Contributor"))
    if providers.database.name == "azure-postgres":
        pg = providers.database.azure_postgres
        server = resource_id(sub, group(pg.resource_group), "Microsoft.DBforPostgreSQL",
                             "flexibleServers", str(pg.server))
        targets.append(_Target(
            f"flexible server {pg.server}", server, server, "2026-10-01",
            actions_for("azure-postgres"), "Contributor"))
    return targets


def run_preflight(
    settings: Settings, connection: AzureConnection | None = None, *,
    key_vault_probe: Callable[[], None] | None = None,
) -> list[Finding]:
    """Every check for ``settings`` (see the module docstring); reads only.
    ``key_vault_probe`` lists a page of the vault's secrets (built from settings when None)."""
    connection = connection or AzureConnection.from_settings(settings.azure)
    preflight = _Preflight(settings, connection)
    if not preflight.token():
        return preflight.findings
    targets = _targets(settings, connection)
    if settings.providers.dns.name == "azure-dns" and not settings.providers.dns.zones:
        preflight.add("DNS zones", False, "providers.dns.zones is empty, so the zones cannot "
                      "be checked ahead", "list the Azure DNS zones tenants' domains live in")
    for target in targets:
        preflight.target(target)
    if settings.providers.secrets.name == "key-vault":
        _check_vault(preflight, settings, connection, key_vault_probe)
    if settings.providers.database.name == "azure-postgres":
        _check_postgres_admins(preflight, settings, connection)
    if not targets and settings.providers.secrets.name != "key-vault":
        preflight.add("Azure providers", True, "no Azure provider is configured; nothing to "
                      "check beyond the token")
    return preflight.findings


def _check_postgres_admins(preflight: _Preflight, settings: Settings,
                           connection: AzureConnection) -> None:
    """With ``admin_url``: each flexible server's admin role signs in (with its password or
    an Entra ID token) and may create roles and databases."""
    from tenantops.provisioning.providers.database.azure_postgres import check_admins

    entra = settings.providers.database.azure_postgres.admin_auth == "entra"
    for server, problem in check_admins(settings, connection):
        preflight.add(
            f"SQL on flexible server {server}", problem is None,
            problem or "the admin role signs in and may create roles and databases",
            "" if problem is None else (
                "make the managed identity a Microsoft Entra administrator of the server (or "
                "a role made with pgaadauth_create_principal, given CREATEROLE and CREATEDB)"
                if entra else "check admin_url and admin_password; the role needs "
                "CREATEROLE and CREATEDB (ALTER ROLE <role> CREATEROLE CREATEDB)"))


def _check_vault(preflight: _Preflight, settings: Settings, connection: AzureConnection,
                 probe: Callable[[], None] | None) -> None:
    url = settings.providers.secrets.key_vault.vault_url
    if probe is None:
        from azure.keyvault.secrets import SecretClient

        client = SecretClient(str(url), connection.credential, **connection.client_options())

        def probe() -> None:
            next(iter(client.list_properties_of_secrets(max_page_size=1)), None)

    try:
        probe()
    except Exception as exc:
        error = translate_azure_error(exc, doing=f"list secrets in {url}")
        preflight.add(f"secrets in {url}", False, str(error),
                      f'az role assignment create --assignee-object-id {preflight.principal} '
                      '--assignee-principal-type ServicePrincipal --role "Key Vault Secrets '
                      'Officer" --scope <the vault\'s resource ID>')
        return
    preflight.add(f"secrets in {url}", True, "the identity can list secrets")
