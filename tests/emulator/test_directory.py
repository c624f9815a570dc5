"""The directory model: the built-in default, TOML files, and errors that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from tenantops.emulator.directory import Directory, describe, load_directory
from tenantops.errors import DirectoryError


def test_default_directory_has_what_the_demo_and_tests_rely_on(directory: Directory) -> None:
    api = directory.app_by_name("tenantops-api")
    assert api is not None
    assert [r.value for r in api.app_roles] == ["Tenants.Read", "Tenants.Write", "Tenants.Delete",
                                               "Audit.Read"]
    assert api.identifier_uris == [f"api://{api.client_id}"]
    assert "Tenants.Write" in directory.roles_of("aa-onboarding", api)
    assert directory.roles_of("uami-no-role", api) == []
    dashboard = directory.app_by_name("tenantops-dashboard")
    assert dashboard is not None
    assert dashboard.redirect_uris
    users = {u.username: directory.roles_of(u.username, api) for u in directory.users}
    assert users == {
        "operator@contoso.test": ["Tenants.Read", "Tenants.Write", "Tenants.Delete",
                                  "Audit.Read"],
        "reader@contoso.test": ["Tenants.Read"],
    }
    arm = directory.app_for_resource("https://management.core.windows.net")
    assert arm is not None
    assert arm.first_party


def test_resource_matching_ignores_case_and_trailing_slash(directory: Directory) -> None:
    api = directory.app_by_name("tenantops-api")
    assert api is not None
    assert api.matches_resource(f"API://{api.client_id.upper()}/")
    assert not api.matches_resource(f"api://{api.client_id}/Tenants.Write")


def test_describe_has_the_documented_keys_and_no_secrets(directory: Directory) -> None:
    shown = describe(directory, "https://127.0.0.1:7443")
    assert {"tenant_id", "authority", "apps", "identities"} <= set(shown)
    app = shown["apps"][0]  # type: ignore[index]
    assert {"name", "client_id", "identifier_uris", "app_roles"} <= set(app)
    identity = shown["identities"][0]  # type: ignore[index]
    assert {"name", "client_id", "principal_id", "resource_id", "roles"} <= set(identity)
    assert "ci-local-secret" not in str(shown)
    assert all("password" not in user for user in shown["users"])  # type: ignore[attr-defined]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "directory.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_toml_directory_loads_with_stable_generated_ids(tmp_path: Path) -> None:
    text = ('tenant_id = "t-1"\n[[apps]]\nname = "api"\n[[apps.app_roles]]\nvalue = "R"\n'
            '[[identities]]\nname = "job"\nkind = "user"\n'
            '[[assignments]]\nprincipal = "job"\nresource = "api"\nrole = "R"\n')
    first = load_directory(write(tmp_path, text))
    second = load_directory(write(tmp_path, text))
    assert first.app_by_name("api") == second.app_by_name("api")
    job = first.identity_by_name("job")
    assert job is not None
    assert job.resource_id.endswith("/userAssignedIdentities/job")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('tenant_id = "t"\n[[assignments]]\nprincipal = "x"\nresource = "nope"\nrole = "R"\n',
         "assignments[0].resource = 'nope': no such app"),
        ('tenant_id = "t"\n[[apps]]\nname = "api"\n[[apps.app_roles]]\nvalue = "R"\n'
         '[[assignments]]\nprincipal = "api"\nresource = "api"\nrole = "W"\n',
         "assignments[0].role = 'W': app 'api' defines ['R']"),
        ('tenant_id = "t"\n[[apps]]\nname = "api"\naccess_token_accepted_version = 3\n',
         "apps.0.access_token_accepted_version = 3"),
        ('tenant_id = "t"\n[[apps]]\nname = "a"\ncolour = "blue"\n', "apps.0.colour = 'blue'"),
        ("tenant_id = \n", "is not valid TOML"),
    ],
    ids=["unknown-app", "unknown-role", "bad-version", "unknown-field", "bad-toml"],
)
def test_invalid_directory_error_names_entry_field_and_rule(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(DirectoryError) as error:
        load_directory(write(tmp_path, text))
    assert message in str(error.value)
    assert str(tmp_path) in str(error.value)
