from __future__ import annotations

from pathlib import Path

import pytest

from tenantops.config import load_settings
from tenantops.errors import ConfigError


def test_defaults_run_fully_embedded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TENANTOPS_CONFIG", raising=False)
    settings = load_settings()
    assert settings.data_dir == Path(".tenantops")
    assert settings.emulator.host == "127.0.0.1"


def test_environment_overrides_toml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "tenantops.toml"
    config.write_text('[auth]\nclient_id = "from-file"\ntenant_id = "t-file"\n', encoding="utf-8")
    monkeypatch.setenv("TENANTOPS_AUTH__CLIENT_ID", "from-env")
    settings = load_settings(config)
    assert settings.auth.client_id == "from-env"
    assert settings.auth.tenant_id == "t-file"


def test_invalid_value_names_setting_value_and_rule(tmp_path: Path) -> None:
    config = tmp_path / "tenantops.toml"
    config.write_text("[emulator]\nport = 70000\n", encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_settings(config)
    message = str(error.value)
    assert "emulator.port = 70000" in message
    assert "less than or equal to 65535" in message
    assert str(config) in message


def test_unknown_setting_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "tenantops.toml"
    config.write_text('[auth]\nclient_idd = "x"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"auth\.client_idd = 'x': Extra inputs"):
        load_settings(config)


def test_missing_explicit_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")
