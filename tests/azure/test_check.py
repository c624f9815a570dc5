"""``tenantops azure check`` against the ARM fake: read-only, each missing access or role
reported with the fix that names the role, the identity and the scope."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tenantops.cli.azure import make_app
from tenantops.cli.context import CliContext
from tenantops.config import Settings
from tenantops.provisioning.providers.azure import AzureConnection
from tenantops.provisioning.providers.azure.preflight import run_preflight
from tests.azure.conftest import APP, PG_SERVER, RESOURCE_GROUP, SQL_SERVER, ZONE, build_world
from tests.azure_fake import SUBSCRIPTION, FakeAzure

PRINCIPAL = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
RG_SCOPE = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}"


def settings_for(database: str = "azure-sql") -> Settings:
    return Settings.model_validate({
        "azure": {"subscription_id": SUBSCRIPTION, "resource_group": RESOURCE_GROUP},
        "providers": {
            "webhost": {"name": "azure-app-service", "azure_app_service": {"app_name": APP}},
            "dns": {"name": "azure-dns", "zones": [ZONE]},
            "database": {"name": database,
                         "azure_sql": {"server": SQL_SERVER, "elastic_pool": "tenants"},
                         "azure_postgres": {"server": PG_SERVER}},
        },
    })


@pytest.fixture
def azure() -> FakeAzure:
    fake = FakeAzure()
    build_world(fake, grant=False)
    return fake


def connection(fake: FakeAzure) -> AzureConnection:
    return AzureConnection(fake.credential(principal=PRINCIPAL), SUBSCRIPTION, RESOURCE_GROUP,
                           transport=fake)


def test_everything_passes_with_the_roles_granted_and_only_gets_are_sent(
    azure: FakeAzure,
) -> None:
    azure.authorization.grant(RG_SCOPE, "Website Contributor")
    azure.authorization.grant(RG_SCOPE, "DNS Zone Contributor")
    azure.authorization.grant(f"{RG_SCOPE}/providers/Microsoft.Sql/servers/{SQL_SERVER}",
                              "SQL DB Contributor")

    findings = run_preflight(settings_for(), connection(azure))

    assert [(f.check, f.ok) for f in findings] == [
        ("token for Azure Resource Manager", True),
        (f"read web app {APP}", True), (f"roles on web app {APP}", True),
        (f"read certificates in resource group {RESOURCE_GROUP}", True),
        (f"roles on certificates in resource group {RESOURCE_GROUP}", True),
        (f"read DNS zone {ZONE}", True), (f"roles on DNS zone {ZONE}", True),
        (f"read SQL server {SQL_SERVER}", True), (f"roles on SQL server {SQL_SERVER}", True),
    ]
    assert f"principal {PRINCIPAL}" in findings[0].detail
    assert {r.method for r in azure.requests} == {"GET"}


def test_a_missing_role_is_reported_with_the_az_command_that_grants_it(
    azure: FakeAzure,
) -> None:
    azure.authorization.grant(RG_SCOPE, "Website Contributor")
    azure.authorization.grant(RG_SCOPE, "Reader")

    findings = {f.check: f for f in run_preflight(settings_for(), connection(azure))}

    dns = findings[f"roles on DNS zone {ZONE}"]
    assert not dns.ok
    assert "lacks Microsoft.Network/dnsZones/CNAME/write" in dns.detail
    assert dns.fix == (
        f"az role assignment create --assignee-object-id {PRINCIPAL} "
        '--assignee-principal-type ServicePrincipal --role "DNS Zone Contributor" --scope '
        f"{RG_SCOPE}/providers/Microsoft.Network/dnsZones/{ZONE}")
    assert findings[f"roles on web app {APP}"].ok


def test_not_actions_take_an_action_away(azure: FakeAzure) -> None:
    azure.authorization.grant(RG_SCOPE, "Contributor",
                              not_actions=["Microsoft.Web/certificates/*"])

    findings = {f.check: f for f in run_preflight(settings_for(), connection(azure))}

    certificates = findings[f"roles on certificates in resource group {RESOURCE_GROUP}"]
    assert not certificates.ok
    assert "Microsoft.Web/certificates/write" in certificates.detail
    assert findings[f"roles on DNS zone {ZONE}"].ok


def test_a_missing_server_is_reported_with_where_to_look(azure: FakeAzure) -> None:
    azure.authorization.grant(RG_SCOPE, "Contributor")

    findings = {f.check: f for f in run_preflight(settings_for("azure-postgres"),
                                                  connection(azure))}
    assert findings[f"read flexible server {PG_SERVER}"].ok
    azure.postgres.servers.clear()

    findings = {f.check: f for f in run_preflight(settings_for("azure-postgres"),
                                                  connection(azure))}
    missing = findings[f"read flexible server {PG_SERVER}"]
    assert not missing.ok
    assert "does not exist (404)" in missing.detail
    assert "check the name and resource group" in missing.fix


def test_the_command_prints_each_problem_with_its_fix_and_exits_1(azure: FakeAzure) -> None:
    azure.authorization.grant(RG_SCOPE, "Reader")
    app = make_app(connect=lambda _settings: connection(azure))

    result = CliRunner().invoke(app, ["check"], obj=CliContext(settings_for()))

    assert result.exit_code == 1
    assert "ok   token for Azure Resource Manager" in result.output
    assert f"FAIL roles on web app {APP}: the identity lacks " \
           "Microsoft.Web/sites/hostNameBindings/write" in result.output
    assert '     fix: az role assignment create' in result.output
    assert "9 checks, 4 failed" in result.output


def test_the_command_exits_0_when_all_pass(azure: FakeAzure) -> None:
    azure.authorization.grant(f"/subscriptions/{SUBSCRIPTION}", "Contributor")
    app = make_app(connect=lambda _settings: connection(azure))

    result = CliRunner().invoke(app, ["check"], obj=CliContext(settings_for()))

    assert result.exit_code == 0, result.output
    assert "9 checks, all passed" in result.output


def test_the_command_is_registered_on_the_tenantops_cli() -> None:
    from tenantops.cli.main import app

    result = CliRunner().invoke(app, ["azure", "check", "--help"])

    assert result.exit_code == 0
    assert "Read-only preflight" in result.output


def test_every_listed_sql_server_is_checked(azure: FakeAzure) -> None:
    """With [[providers.database.servers]] (a move needs two), each logical server tenants
    may be placed on is read and its roles checked; one without the pool fails."""
    azure.sql.add_server("tenantops-sql-b", RESOURCE_GROUP, pools=("other",))
    azure.authorization.grant(RG_SCOPE, "Contributor")
    values = settings_for().model_dump(exclude_unset=True)
    values["providers"]["database"]["azure_sql"] = {"elastic_pool": "tenants"}
    values["providers"]["database"]["servers"] = [
        {"name": "a", "server": SQL_SERVER}, {"name": "b", "server": "tenantops-sql-b"}]

    findings = {f.check: f for f in run_preflight(Settings.model_validate(values),
                                                  connection(azure))}

    assert findings[f"read SQL server {SQL_SERVER}"].ok
    assert findings[f"roles on SQL server {SQL_SERVER}"].ok
    assert not findings["read SQL server tenantops-sql-b"].ok
    assert "elasticPools/tenants" in findings["read SQL server tenantops-sql-b"].detail
