"""``[[providers.database.servers]]`` and ``[plans]``: what is refused when the settings load,
each error naming the setting, the value and the rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from tenantops.config import DEFAULT_PLANS, load_settings
from tenantops.errors import ConfigError


def load(tmp_path: Path, toml: str) -> object:
    path = tmp_path / "tenantops.toml"
    path.write_text(toml, encoding="utf-8")
    return load_settings(path)


def refused(tmp_path: Path, toml: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, toml)
    return str(caught.value)


PG = '[providers.database]\nname = "postgres"\n'


def test_without_servers_there_is_one_named_default_and_the_three_plans(
        tmp_path: Path) -> None:
    settings = load(tmp_path, PG)
    servers = settings.providers.database.server_list()  # type: ignore[attr-defined]
    assert [(s.name, s.pool, s.admin_url) for s in servers] == [
        ("default", "default", "postgresql://tenantops_admin@127.0.0.1:5432/postgres")]
    assert tuple(settings.plans) == DEFAULT_PLANS  # type: ignore[attr-defined]


def test_servers_beside_the_providers_own_server_are_refused(tmp_path: Path) -> None:
    message = refused(tmp_path, PG + '[providers.database.postgres]\nadmin_url = '
                      '"postgresql://a@h/postgres"\n[[providers.database.servers]]\n'
                      'name = "pg-1"\nadmin_url = "postgresql://a@h1/postgres"\n')
    assert ("providers.database.postgres.admin_url is set and providers.database.servers "
            "lists servers: the list replaces the provider's own server; give that server "
            "an entry (name it 'default' to keep the tenants placed on it)") in message


def test_repeated_server_names_and_fields_the_provider_does_not_read_are_refused(
        tmp_path: Path) -> None:
    entry = '[[providers.database.servers]]\nname = "pg-1"\nadmin_url = "postgresql://a@h"\n'
    assert "servers: names must be unique; pg-1 repeats" in refused(tmp_path, PG + entry * 2)
    message = refused(tmp_path, PG + entry + 'directory = "/srv/x"\n')
    assert ("servers[0].directory is not read by the postgres provider "
            "(providers.database.name); its servers take admin_url, admin_password") in message
    message = refused(tmp_path, PG + '[[providers.database.servers]]\nname = "pg-1"\n')
    assert "servers[0] (pg-1) needs admin_url: the postgres provider reaches its servers" \
        in message


def test_a_server_entrys_password_is_not_shown_in_an_error(tmp_path: Path) -> None:
    message = refused(tmp_path, PG + '[[providers.database.servers]]\nname = "Bad Name"\n'
                      'admin_url = "postgresql://a@h"\nadmin_password = "hunter2-secret"\n')
    assert "hunter2-secret" not in message
    assert "name" in message


def test_a_plan_no_server_can_serve_is_refused_naming_it(tmp_path: Path) -> None:
    message = refused(tmp_path, PG + '[plans.premium.database]\npool = "dedicated"\n')
    assert ("plans.premium.database.pool = 'dedicated': no server is in that pool (pools: "
            "default: default); add a [[providers.database.servers]] entry with pool = "
            "'dedicated'") in message
    message = refused(tmp_path, '[plans.free.database]\nmode = "schema"\n')
    assert ("plans.free.database.mode = 'schema': the sqlite provider gives each tenant its "
            "own database only") in message
    message = refused(tmp_path, '[plans.free.database]\nsku = "S0"\n')
    assert "plans.free.database.sku is for the azure-sql provider; providers.database.name " \
        "is 'sqlite'" in message
    message = refused(tmp_path, '[plans.Gold]\n')
    assert "plans.Gold: a plan's name must be 1-16 of a-z, 0-9 and '-'" in message


def test_azure_postgres_servers_reach_sql_all_or_none(tmp_path: Path) -> None:
    azure = '[azure]\nsubscription_id = "s"\nresource_group = "rg"\n' \
            '[providers.database]\nname = "azure-postgres"\n'
    one = '[[providers.database.servers]]\nname = "one"\nserver = "pg-one"\n' \
          'admin_url = "postgresql://admin@pg-one.postgres.database.azure.com/postgres"\n'
    two = '[[providers.database.servers]]\nname = "two"\nserver = "pg-two"\n'
    message = refused(tmp_path, azure + one + two)
    assert ("servers two have no admin_url while other azure-postgres servers do: tenantops "
            "reaches all of them over SQL or none") in message
    settings = load(tmp_path, azure + one + two.replace(
        '"pg-two"\n', '"pg-two"\nadmin_url = "postgresql://admin@pg-two/postgres"\n'))
    servers = settings.providers.database.server_list()  # type: ignore[attr-defined]
    assert [(s.name, s.server) for s in servers] == [("one", "pg-one"), ("two", "pg-two")]


def test_an_entra_admin_with_a_password_is_refused(tmp_path: Path) -> None:
    azure = '[azure]\nsubscription_id = "s"\nresource_group = "rg"\n' \
            '[providers.database]\nname = "azure-postgres"\n' \
            '[providers.database.azure_postgres]\nserver = "pg"\nadmin_auth = "entra"\n' \
            'admin_url = "postgresql://mi@pg/postgres"\n'
    message = refused(tmp_path, azure + 'admin_password = "hunter2-secret"\n')
    assert "admin_password is set with admin_auth = 'entra'" in message
    assert "hunter2-secret" not in message
