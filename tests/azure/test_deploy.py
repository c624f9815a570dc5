"""deploy/: the Bicep files parse (pycep, a Bicep parser; the Bicep CLI is not installable
from the registries this project uses) and say what docs/azure.md and issue #7 promise:
Easy Auth returning 401 with both audience forms and the allowed applications, an anonymous
Function App on an always-ready plan, PostgreSQL for the engine, the managed identity's roles,
and the Tenants.Write app role assignment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pycep import BicepParser

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def parse(name: str) -> dict[str, Any]:
    parsed: dict[str, Any] = dict(BicepParser().parse(file_path=DEPLOY / name))
    return parsed


@pytest.fixture(scope="module")
def main() -> dict[str, Any]:
    return parse("main.bicep")


def resource(template: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = template["resources"][name]
    return found


@pytest.mark.parametrize("name", ["main.bicep", "dns-access.bicep", "graph.bicep"])
def test_every_bicep_file_parses(name: str) -> None:
    assert parse(name)["resources"]


def test_easy_auth_returns_401_and_accepts_both_audience_forms(main: dict[str, Any]) -> None:
    auth = resource(main, "easyAuth")
    assert auth["type"] == "Microsoft.Web/sites/config"
    assert auth["config"]["name"] == "authsettingsV2"
    props = auth["config"]["properties"]
    assert props["platform"] == {"enabled": True}
    assert props["globalValidation"]["unauthenticatedClientAction"] == "Return401"
    assert props["globalValidation"]["requireAuthentication"] is True
    assert props["globalValidation"]["excludedPaths"] == [
        "/api/health", "/api/health/ready", "/api/meta"]
    aad = props["identityProviders"]["azureActiveDirectory"]
    assert aad["registration"]["clientId"] == "apiClientId"
    assert aad["validation"]["allowedAudiences"] == ["apiClientId", "api://${apiClientId}"]
    policy = aad["validation"]["defaultAuthorizationPolicy"]["operator"]["operands"]
    assert policy["condition"]["function"] == {
        "type": "empty", "parameters": {"item_to_test": "allowedClientApplications"}}
    assert policy["true_value"] is None  # no list: no policy (an empty one admits nobody)
    assert policy["false_value"] == {"allowedApplications": "allowedClientApplications"}


def test_function_app_runs_python_with_a_managed_identity_and_an_always_ready_instance(
    main: dict[str, Any],
) -> None:
    app = resource(main, "functionApp")["config"]
    assert app["kind"] == "functionapp,linux"
    assert app["identity"] == {"type": "SystemAssigned"}
    site = app["properties"]["siteConfig"]
    assert site["linuxFxVersion"] == "PYTHON|3.11"
    assert site["minimumElasticInstanceCount"] == 1
    plan = resource(main, "plan")["config"]
    assert plan["sku"] == {"name": "EP1", "tier": "ElasticPremium"}
    settings = {s["name"]: s["value"] for s in site["appSettings"]}
    assert settings["FUNCTIONS_WORKER_RUNTIME"] == "python"
    allowed = settings["TENANTOPS_AUTH__ALLOWED_APPLICATIONS"]["operator"]["operands"]
    assert allowed["true_value"] == "null"  # unset, not an empty list that admits nobody
    assert settings["TENANTOPS_AZURE__IDENTITY_SOURCE"] == "managed-identity"
    assert settings["TENANTOPS_ENGINE__SYSTEM_DATABASE_URL"].startswith("@Microsoft.KeyVault(")
    assert settings["TENANTOPS_PROVIDERS__WEBHOST__NAME"] == "azure-app-service"
    assert settings["TENANTOPS_PROVIDERS__DNS__NAME"] == "azure-dns"
    assert settings["TENANTOPS_PROVIDERS__SECRETS__NAME"] == "key-vault"
    assert "AzureWebJobsStorage__accountName" in settings


def test_app_settings_name_real_configuration_keys(main: dict[str, Any]) -> None:
    from pydantic import BaseModel

    from tenantops.config import Settings

    site = resource(main, "functionApp")["config"]["properties"]["siteConfig"]
    names = [s["name"] for s in site["appSettings"] if s["name"].startswith("TENANTOPS_")]
    assert len(names) >= 10
    for name in names:
        model: type[BaseModel] = Settings
        *sections, leaf = name.removeprefix("TENANTOPS_").lower().split("__")
        for section in sections:
            annotation = model.model_fields[section].annotation
            assert isinstance(annotation, type), name
            assert issubclass(annotation, BaseModel), name
            model = annotation
        assert leaf in model.model_fields, f"{name}: {model.__name__} has no {leaf!r}"


def test_postgres_serves_the_engine_with_entra_and_password_auth(main: dict[str, Any]) -> None:
    server = resource(main, "postgres")["config"]["properties"]
    assert server["version"] == "16"
    assert server["authConfig"]["activeDirectoryAuth"] == "Enabled"
    databases = {resource(main, n)["config"]["name"] for n in ("engineDb", "catalogDb")}
    assert databases == {"engineDatabase", "catalogDatabase"}


def test_the_identity_gets_the_roles_the_providers_need(main: dict[str, Any]) -> None:
    assignments = [n for n, r in main["resources"].items()
                   if r["type"] == "Microsoft.Authorization/roleAssignments"]
    assert set(assignments) == {"blobOwner", "queueContributor", "tableContributor",
                                "secretsOfficer", "websiteContributor", "postgresContributor"}
    roles = main["variables"]["roles"]["value"]
    assert roles["websiteContributor"] == "de139f84-1756-47ae-9be6-808fbbe84772"
    assert roles["dnsZoneContributor"] == "befefa01-2a29-4197-83a8-272ff33ce314"
    assert roles["keyVaultSecretsOfficer"] == "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"
    dns = parse("dns-access.bicep")
    assert dns["resources"]["zone"]["existing"] is True
    assert "dnsAccess" in main["modules"]


def test_graph_template_defines_the_app_roles_and_assigns_tenants_write() -> None:
    graph = parse("graph.bicep")
    assert "microsoftGraphV1" in str(graph["extensions"])
    api = graph["resources"]["api"]["config"]
    assert [r["value"] for r in api["appRoles"]] == ["Tenants.Read", "Tenants.Write",
                                                     "Tenants.Delete", "Audit.Read"]
    assert all("Application" in r["allowedMemberTypes"] for r in api["appRoles"])
    writers = graph["resources"]["writers"]
    assert writers["type"] == "Microsoft.Graph/appRoleAssignedTo"
    assert "tenantsWrite" in str(writers)
