"""The app roles are declared alike wherever they are: the app manifest for the az CLI
(deploy/app-roles.json), the Graph Bicep template, and the emulator's default directory."""

from __future__ import annotations

import json
from pathlib import Path

from tenantops.emulator.directory import default_directory
from tests.azure.test_deploy import parse

ROLES = ["Tenants.Read", "Tenants.Write", "Tenants.Delete", "Audit.Read"]


def test_the_app_roles_are_the_same_in_deploy_the_bicep_and_the_emulator() -> None:
    manifest = json.loads((Path(__file__).parents[1] / "deploy" / "app-roles.json").read_text())
    graph = parse("graph.bicep")
    api = default_directory().app_by_name("tenantops-api")
    assert api is not None
    assert [r["value"] for r in manifest] == ROLES
    assert [r["value"] for r in graph["resources"]["api"]["config"]["appRoles"]] == ROLES
    assert [r.value for r in api.app_roles] == ROLES
    ids = {r["value"]: r["id"] for r in manifest}
    assert graph["variables"]["auditRead"]["value"] == ids["Audit.Read"]
    assert len(set(ids.values())) == len(ROLES)
